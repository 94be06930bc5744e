# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How meshguard.egress talks to a Kubernetes API server: ``Client``, a small thread-safe JSON
client, and the errors it raises.

For: JSON requests (``get``, ``list``, ``apply`` (server-side apply), ``patch``, ``create``,
``delete``, ``request``) with a timeout and a request counter; no OpenAPI model
(de)serialisation and no discovery for the kinds this collection manages
(``KNOWN_RESOURCES``; other kinds are looked up once per client in their group's discovery
document). Errors: ``K8sApiError`` (the API server answered with an error, with its HTTP status
and message, or did not answer: status 0), ``K8sLibraryError`` (the kubernetes Python library
failed by itself: a bug or a version we do not support, never reported as an unreachable
server), ``ClientError`` (the connection could not be configured).
Not for: building the connection from module options (``k8s_module.py``, the one room that
imports Ansible, does it with kubernetes.core's ``get_api_client`` and hands the result in here),
nor exec into pods (verify/runner.py builds its own ``CoreV1Api`` per thread from
``Client.api_client``).

The one interface to the library is ``kubernetes.dynamic.DynamicClient.request(method, path,
body, serialize=False, query_params=..., header_params=..., content_type=...,
_request_timeout=...)``: the same signature and the raw urllib3 response from kubernetes 24.2
to 37.x, because kubernetes.core's own modules run on it (37.0 regenerated ``ApiClient`` with
the pydantic generator and changed ``call_api`` to ``(method, url, header_params, body,
post_params, _request_timeout)``; the DynamicClient was adapted to it). The oldest library we
support is ``MIN_KUBERNETES``: 24.2 cannot send a server-side apply body (its REST layer only
serialises JSON content types and refuses ``application/apply-patch+yaml``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import traceback

from ansible_collections.meshguard.egress.plugins.module_utils.kinds import KINDS

try:
    import kubernetes
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
    # The request was sent and failed on the way or was answered with an error: the server's part.
    _NO_GOOD_ANSWER = (ApiException, urllib3.exceptions.HTTPError, OSError)
except ImportError:
    kubernetes = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    _NO_GOOD_ANSWER = (OSError,)
    ConfigException = None

FIELD_MANAGER = "meshguard-egress"

# The oldest kubernetes library meshguard.egress supports and tests (make test-oldest-client).
MIN_KUBERNETES = "25.3.0"

# Exceptions that mean the library's own code broke (or does not fit how we call it) while it
# built a client: reported as K8sLibraryError, not as a connection problem.
LIBRARY_FAULTS = (TypeError, AttributeError, ImportError, NameError)

# (API group, kind) -> (resource plural, namespaced), from the table of kinds (kinds.py): every
# kind the collection creates or reads. Anything else is discovered (one request per group/version
# and client).
KNOWN_RESOURCES = dict((k.group_kind, (k.plural, k.namespaced)) for k in KINDS)


def kubernetes_version():
    """The installed kubernetes library's version string, or None when it is missing."""
    return getattr(kubernetes, "__version__", None) if HAS_KUBERNETES else None


def _version_key(text):
    key = []
    for part in (text or "").split(".")[:3]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        key.append(int(digits or 0))
    return tuple(key)


def library_version_problem(version=None):
    """Why the installed kubernetes library cannot be used (too old), or None."""
    version = version or kubernetes_version()
    if version and _version_key(version) < _version_key(MIN_KUBERNETES):
        return ("the kubernetes Python library %s is older than %s, the oldest meshguard.egress supports "
                "(pip install 'kubernetes>=%s')" % (version, MIN_KUBERNETES, MIN_KUBERNETES))
    return None


class ClientError(Exception):
    """The API client could not be configured (no kubeconfig, bad credentials file, ...)."""


class K8sLibraryError(Exception):
    """The kubernetes Python library failed by itself (TypeError, AttributeError, ImportError, ...):
    a library bug or a version this collection does not support, not an answer of the API server.
    ``version`` is the library's version, ``traceback`` the original traceback (or None)."""

    def __init__(self, message, original=None):
        self.version = kubernetes_version()
        self.original = original
        self.traceback = None
        if original is not None:
            self.traceback = "".join(traceback.format_exception(type(original), original, original.__traceback__))
            message = ("%s: the kubernetes Python library %s failed (%s: %s). This is a fault of the library "
                       "or of how meshguard.egress calls it, not of the API server; meshguard.egress supports "
                       "kubernetes>=%s" % (message, self.version, type(original).__name__, original, MIN_KUBERNETES))
        super(K8sLibraryError, self).__init__(message)


class K8sApiError(Exception):
    """An API request failed. ``status`` is the HTTP status (0: no response at all)."""

    def __init__(self, method, path, status, reason, body=None):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.body = body if isinstance(body, dict) else {}
        message = self.body.get("message") or reason or "no response"
        self.api_message = message
        if status:
            text = "%s %s: HTTP %d %s: %s" % (method, path, status, self.body.get("reason") or reason or "", message)
        else:
            text = "%s %s: %s" % (method, path, message)
        super(K8sApiError, self).__init__(text)

    @property
    def not_found(self):
        return self.status == 404

    @property
    def conflict(self):
        return self.status == 409

    @property
    def forbidden(self):
        return self.status == 403


def split_api_version(api_version):
    """'networking.istio.io/v1' -> ('networking.istio.io', 'v1'); 'v1' -> ('', 'v1')."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def _parse_body(raw):
    """An error body (bytes or str, a metav1.Status as JSON or plain text) as a dict."""
    if not raw:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"message": raw}
    return parsed if isinstance(parsed, dict) else {"message": raw}


def _no_answer_error(method, path, exc):
    """K8sApiError for an error answer (ApiException and the DynamicClient's subclasses) or for
    no answer at all (urllib3 and socket errors: status 0)."""
    status = getattr(exc, "status", 0) or 0
    reason = getattr(exc, "reason", None) or exc
    return K8sApiError(method, path, status, str(reason), _parse_body(getattr(exc, "body", None)))


class Client:
    """A small thread-safe JSON client over a ``kubernetes.dynamic.DynamicClient``."""

    # Seconds a request may take (connect and read): a stopped or unreachable API server fails
    # the task instead of hanging it.
    DEFAULT_TIMEOUT = 60

    def __init__(self, dynamic_client, timeout=None):
        self.dynamic_client = dynamic_client
        self.timeout = timeout or self.DEFAULT_TIMEOUT
        self._lock = threading.Lock()
        self._discovered = {}
        self.requests = 0  # number of API requests sent (for tests and diagnostics)

    @classmethod
    def from_api_client(cls, api_client, timeout=None):
        """A Client on a ``kubernetes.client.ApiClient`` built elsewhere (tests, benchmarks).

        The library's DynamicClient reads the server's version and API groups once (cached in a
        file by the library); modules get theirs from kubernetes.core instead (k8s_module.py)."""
        from kubernetes.dynamic import DynamicClient  # pylint: disable=import-outside-toplevel
        return cls(DynamicClient(api_client), timeout)

    @property
    def api_client(self):
        """The ``kubernetes.client.ApiClient`` underneath (its configuration and default headers
        build the probe runner's CoreV1Api instances for exec)."""
        return self.dynamic_client.client

    # --- paths ---------------------------------------------------------------------------

    def resource_info(self, api_version, kind):
        """(plural, namespaced) of a kind; KNOWN_RESOURCES or the group's discovery document."""
        group, version = split_api_version(api_version)
        known = KNOWN_RESOURCES.get((group, kind))
        if known is not None:
            return known
        key = (group, version)
        with self._lock:
            found = self._discovered.get(key)
        if found is None:
            path = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
            doc = self.request("GET", path)
            found = dict((r["kind"], (r["name"], bool(r.get("namespaced"))))
                         for r in doc.get("resources", []) if "/" not in r.get("name", ""))
            with self._lock:
                self._discovered[key] = found
        if kind not in found:
            raise K8sApiError("GET", api_version, 404, "NotFound",
                              {"message": "the server has no kind %s in %s" % (kind, api_version)})
        return found[kind]

    def path(self, api_version, kind, namespace=None, name=None):
        """The REST path of a collection (name None) or an object; namespace None = all namespaces."""
        group, version = split_api_version(api_version)
        plural, namespaced = self.resource_info(api_version, kind)
        parts = ["/api/%s" % version if not group else "/apis/%s/%s" % (group, version)]
        if namespaced and namespace:
            parts.append("namespaces/%s" % namespace)
        parts.append(plural)
        if name:
            parts.append(name)
        return "/".join(parts)

    # --- requests ------------------------------------------------------------------------

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None):
        """One API request; returns the decoded JSON body (a dict).

        Raises K8sApiError (an error answer, or none: status 0), ClientError (the credentials
        could not be refreshed) or K8sLibraryError (the library failed by itself)."""
        params = {"serialize": False, "query_params": list((query or {}).items()),
                  "header_params": {"Accept": "application/json"}, "_request_timeout": timeout or self.timeout}
        if body is not None:
            params["content_type"] = content_type or "application/json"
        with self._lock:
            self.requests += 1
        try:
            response = self.dynamic_client.request(method, path, body=body, **params)
            try:
                data = response.data
            finally:
                response.release_conn()
        except _NO_GOOD_ANSWER as exc:
            raise _no_answer_error(method, path, exc)
        except Exception as exc:  # pylint: disable=broad-except
            if ConfigException is not None and isinstance(exc, ConfigException):
                raise ClientError("%s %s: the Kubernetes credentials could not be loaded: %s" % (method, path, exc))
            raise K8sLibraryError("%s %s" % (method, path), exc)
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError:
            raise K8sApiError(method, path, response.status, "not JSON",
                              {"message": "the API server answered with a body that is not JSON: %r" % data[:200]})

    def get(self, api_version, kind, name, namespace=None):
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except K8sApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, api_version, kind, namespace=None, label_selector=None):
        """Items of a kind (namespace None: all namespaces), following continue tokens."""
        items = []
        query = {"limit": 500}
        if label_selector:
            query["labelSelector"] = label_selector
        path = self.path(api_version, kind, namespace)
        while True:
            page = self.request("GET", path, query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query["continue"] = token

    def apply(self, obj, force=False, dry_run=False, field_manager=FIELD_MANAGER, validation="Strict"):
        """Server-side apply of one object; returns the object as the server holds it."""
        meta = obj["metadata"]
        query = {"fieldManager": field_manager, "fieldValidation": validation}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return self.request("PATCH", path, query, obj, "application/apply-patch+yaml")

    def patch(self, api_version, kind, name, namespace, patch, patch_type="merge", dry_run=False,
              field_manager=FIELD_MANAGER):
        """A JSON merge ('merge') or JSON ('json') patch."""
        content_type = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                        "strategic": "application/strategic-merge-patch+json"}[patch_type]
        query = {"fieldManager": field_manager, "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", self.path(api_version, kind, namespace, name), query, patch, content_type)

    def create(self, obj, dry_run=False, field_manager=FIELD_MANAGER):
        meta = obj["metadata"]
        query = {"fieldManager": field_manager, "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], meta.get("namespace")), query, obj)

    def delete(self, api_version, kind, name, namespace=None, uid=None, dry_run=False,
               propagation="Background"):
        """Delete one object (only the one with `uid` when given); False when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name), None, body)
        except K8sApiError as exc:
            if exc.not_found:
                return False
            raise
        return True
