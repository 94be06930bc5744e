# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where meshguard.egress modules connect to a Kubernetes API server.

The connection options are kubernetes.core's own (``AUTH_ARG_SPEC``, documented by the doc
fragment ``kubernetes.core.k8s_auth_options``) and the client is built by kubernetes.core's
``get_api_client``, so kubeconfig, context, host/api_key, ``K8S_AUTH_*`` environment variables
and AWX/Automation Platform OpenShift-or-Kubernetes credentials behave exactly as they do for
``kubernetes.core.k8s``.

Stable API for the collection's modules (egress_apply, access_probe):

- ``AUTH_ARG_SPEC``: merge into a module's argument_spec (a copy; safe to extend).
- ``HAS_KUBERNETES`` / ``KUBERNETES_IMPORT_ERROR``: for ``missing_required_lib``.
- ``get_api_client(module)``: a raw ``kubernetes.client.ApiClient`` (e.g. for
  ``kubernetes.stream.stream`` exec calls through ``kubernetes.client.CoreV1Api``).
- ``get_client(module)``: a ``Client``, a small thread-safe JSON client: ``get``, ``list``,
  ``apply`` (server-side apply), ``patch``, ``delete``, ``request``; errors are
  ``K8sApiError`` with the HTTP status and the API server's message.
- ``ClientError``: the connection could not be configured (bad kubeconfig, ...).

Requests go through the ApiClient's urllib3 pool with ``_preload_content=False`` and are
decoded with ``json``: no OpenAPI model (de)serialisation, no discovery for the kinds this
collection manages (``KNOWN_RESOURCES``); other kinds are looked up once per client through
the API group's discovery document.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import threading
import traceback

from ansible_collections.meshguard.egress.plugins.module_utils.kinds import KINDS

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        AUTH_ARG_SPEC as _CORE_AUTH_ARG_SPEC)
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        get_api_client as _core_get_api_client)
    HAS_KUBERNETES_CORE = True
    KUBERNETES_CORE_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    _CORE_AUTH_ARG_SPEC = {}
    _core_get_api_client = None
    HAS_KUBERNETES_CORE = False
    KUBERNETES_CORE_IMPORT_ERROR = traceback.format_exc()

try:
    import kubernetes  # noqa: F401 pylint: disable=unused-import
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

FIELD_MANAGER = "meshguard-egress"

AUTH_ARG_SPEC = copy.deepcopy(_CORE_AUTH_ARG_SPEC)

# (API group, kind) -> (resource plural, namespaced), from the table of kinds (kinds.py): every
# kind the collection creates or reads. Anything else is discovered (one request per group/version
# and client).
KNOWN_RESOURCES = dict((k.group_kind, (k.plural, k.namespaced)) for k in KINDS)


class ClientError(Exception):
    """The API client could not be configured (no kubeconfig, bad credentials file, ...)."""


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


def auth_params(params):
    """The connection options out of a module's params (unset ones omitted)."""
    return dict((key, params.get(key)) for key in AUTH_ARG_SPEC if params.get(key) is not None)


def get_api_client(module=None, params=None):
    """A raw ``kubernetes.client.ApiClient`` configured the kubernetes.core way.

    ``params`` defaults to ``module.params``; either may hold the AUTH_ARG_SPEC options.
    Raises ClientError when the configuration cannot be loaded.
    """
    if not HAS_KUBERNETES_CORE:
        raise ClientError("the kubernetes.core collection is required: %s" % KUBERNETES_CORE_IMPORT_ERROR)
    if not HAS_KUBERNETES:
        raise ClientError("the kubernetes Python library is required: %s" % KUBERNETES_IMPORT_ERROR)
    if params is None:
        params = module.params if module is not None else {}
    try:
        # module=None: kubernetes.core's helper then reads the options from keyword arguments
        # (and K8S_AUTH_* variables for unset ones) and works with a plain AnsibleModule.
        core_client = _core_get_api_client(None, **auth_params(params))
    except Exception as exc:  # kubernetes.core raises CoreException, kubernetes ConfigException, IOError...
        raise ClientError("Could not create the Kubernetes API client: %s" % exc)
    # K8SClient -> K8SDynamicClient -> kubernetes.client.ApiClient
    return core_client.client.client


def get_client(module=None, params=None, api_client=None):
    """A ``Client`` on the connection described by the module's (or the given) params."""
    return Client(api_client if api_client is not None else get_api_client(module, params))


class Client:
    """A small thread-safe JSON client over a ``kubernetes.client.ApiClient``."""

    # Seconds a request may take (connect and read): a stopped or unreachable API server fails
    # the task instead of hanging it.
    DEFAULT_TIMEOUT = 60

    def __init__(self, api_client, timeout=None):
        self.api_client = api_client
        self.timeout = timeout or self.DEFAULT_TIMEOUT
        self._lock = threading.Lock()
        self._discovered = {}
        self.requests = 0  # number of API requests sent (for tests and diagnostics)

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
        """One API request; returns the decoded JSON body (a dict) or raises K8sApiError."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        with self._lock:
            self.requests += 1
        try:
            response = self.api_client.call_api(
                path, method, query_params=list((query or {}).items()), header_params=headers,
                body=body, auth_settings=["BearerToken"], _preload_content=False,
                _return_http_data_only=True, _request_timeout=timeout or self.timeout)
            data = response.data
        except Exception as exc:
            status = getattr(exc, "status", 0) or 0
            raw = getattr(exc, "body", None)
            parsed = None
            if raw:
                try:
                    parsed = json.loads(raw)
                except (TypeError, ValueError):
                    parsed = {"message": raw if isinstance(raw, str) else raw.decode("utf-8", "replace")}
            reason = getattr(exc, "reason", None) or str(exc)
            raise K8sApiError(method, path, status, reason, parsed)
        if not data:
            return {}
        return json.loads(data)

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
