# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify's inputs: the options of a verify run (the access_probe module's non-policy options),
validated against the policy, the user's own cases, and the policy back from its plain-data form.

``normalize_options(policy, raw)`` returns an ``Options`` record or raises ``VerifyError`` with
every problem at once, each with its path (``cases[0] (x).expect: ...``).
``policy_from_built(built)`` turns the ``policy`` result of egress_resources into a ``Policy``.

Not for: deriving the test cases (matrix.py) or anything that talks to a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import (
    API_KEYS, GATEWAY_KEYS, HTTP_METHODS, MESH_KEYS, NETPOL_KEYS, RULE_KEYS, TOP_KEYS)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import (
    InputError, host_problem, identity_text, is_dns_label, is_dns_subdomain)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.case import new_case
from ansible_collections.meshguard.egress.plugins.module_utils.verify.reach import allowed_by_any, rule_allows

EXPECTATIONS = ("allowed", "denied", "blocked")
DEFAULT_PROBE_IMAGE = "docker.io/curlimages/curl:8.11.1"
DEFAULT_UNLISTED_HOST = "example.com"
DEFAULT_TIMEOUT = 10
_USER_CASE_KEYS = ("name", "identity", "host", "port", "scheme", "method", "path", "expect", "via_gateway")


class VerifyError(InputError):
    """The verify options are invalid."""

    SUBJECT = "verify options"


def _parse_identity(errs, where, value):
    """('ns', 'sa' or None) from 'ns', 'ns/sa' or {namespace, service_account}."""
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
            errs.append("%s: %r: write 'namespace' or 'namespace/service_account'" % (where, value))
            return None
        namespace, service_account = parts[0], (parts[1] if len(parts) == 2 else None)
    elif isinstance(value, dict):
        unknown = sorted(set(value) - {"namespace", "service_account"}, key=str)
        if unknown:
            errs.append("%s: unknown key %r (allowed: namespace, service_account)" % (where, unknown[0]))
            return None
        namespace, service_account = value.get("namespace"), value.get("service_account") or None
    else:
        errs.append("%s: must be 'namespace/service_account' or a mapping, got %r" % (where, value))
        return None
    if not is_dns_label(namespace):
        errs.append("%s.namespace: %r is not a valid namespace" % (where, namespace))
        return None
    if service_account is not None and not is_dns_subdomain(service_account):
        errs.append("%s.service_account: %r is not a valid service account name" % (where, service_account))
        return None
    return namespace, service_account


class Options:
    """Validated verify options (the access_probe module's non-policy options)."""

    __slots__ = ("denied_identity", "unlisted_host", "cases", "exclude", "timeout", "namespace_service_account",
                 "sources", "probe_pods", "probe_image", "probe_pod_lifetime", "probe_revision")

    def __init__(self, **kwargs):
        for key in self.__slots__:
            setattr(self, key, kwargs.get(key))


def normalize_options(policy, raw):
    """Validate the verify options against `policy`; return Options or raise VerifyError."""
    raw = dict(raw or {})
    errs = []
    timeout = raw.get("timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600:
        errs.append("timeout: %r must be an integer number of seconds (1-600)" % (timeout,))
        timeout = DEFAULT_TIMEOUT

    ns_sa = raw.get("namespace_service_account") or "default"
    if not is_dns_subdomain(ns_sa):
        errs.append("namespace_service_account: %r is not a valid service account name" % (ns_sa,))

    unlisted = raw.get("unlisted_host") or DEFAULT_UNLISTED_HOST
    problem = host_problem(unlisted)
    if problem:
        errs.append("unlisted_host: %r: %s" % (unlisted, problem))
    elif any(unlisted in rule.hosts for rule in policy.rules):
        errs.append("unlisted_host: %r is a host of rule %s; it must be in no rule"
                    % (unlisted, [r.name for r in policy.rules if unlisted in r.hosts][0]))

    denied = _denied_identity(errs, policy, raw, ns_sa)
    sources = _sources(errs, raw.get("sources") or [])

    exclude = raw.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(x, str) and x for x in exclude):
        errs.append("exclude: must be a list of case names (shell-style patterns allowed)")
        exclude = []

    lifetime = raw.get("probe_pod_lifetime") or 900
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 60:
        errs.append("probe_pod_lifetime: %r must be an integer of at least 60 seconds" % (lifetime,))
    revision = raw.get("probe_revision") or policy.mesh.get("revision")
    if revision is not None and not is_dns_label(revision):
        errs.append("probe_revision: %r is not a valid revision" % (revision,))

    options = Options(denied_identity=denied, unlisted_host=unlisted, cases=[], exclude=list(exclude),
                      timeout=timeout, namespace_service_account=ns_sa, sources=sources,
                      probe_pods=bool(raw.get("probe_pods", True)),
                      probe_image=raw.get("probe_image") or DEFAULT_PROBE_IMAGE,
                      probe_pod_lifetime=lifetime, probe_revision=revision)
    options.cases = _user_cases(errs, raw.get("cases") or [], options)
    if errs:
        raise VerifyError(errs)
    return options


def _denied_identity(errs, policy, raw, ns_sa):
    """(namespace, service_account) of the identity in no allow list: the user's, checked, or derived."""
    if not raw.get("denied_identity"):
        return default_denied_identity(policy, ns_sa)
    denied = _parse_identity(errs, "denied_identity", raw["denied_identity"])
    if denied is not None:
        run_as = denied[1] or ns_sa
        if allowed_by_any(policy, denied[0], run_as):
            rules = [r.name for r in policy.rules if rule_allows(r, denied[0], run_as)]
            errs.append("denied_identity: %s is allowed by rule %s; the denied probe must be in no allow list"
                        % (identity_text(denied[0], run_as), ", ".join(rules)))
        denied = (denied[0], run_as)
    return denied


def _sources(errs, raw_sources):
    """The user's sources (existing pods per identity), each {namespace, service_account, labels, pod, container}."""
    sources = []
    for index, src in enumerate(raw_sources):
        where = "sources[%d]" % index
        if not isinstance(src, dict):
            errs.append("%s: must be a mapping (namespace, service_account, labels or pod, container)" % where)
            continue
        unknown = sorted(set(src) - {"namespace", "service_account", "labels", "pod", "container"}, key=str)
        if unknown:
            errs.append("%s: unknown key %r (allowed: namespace, service_account, labels, pod, container)"
                        % (where, unknown[0]))
            continue
        ident = _parse_identity(errs, where, {"namespace": src.get("namespace"),
                                              "service_account": src.get("service_account")})
        if ident is None:
            continue
        labels, pod = src.get("labels"), src.get("pod")
        if bool(labels) == bool(pod):
            errs.append("%s: give exactly one of labels (a pod selector) or pod (a pod name)" % where)
            continue
        if labels is not None and (not isinstance(labels, dict)
                                   or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
            errs.append("%s.labels: must be a mapping of label names to string values" % where)
            continue
        if pod is not None and not is_dns_subdomain(pod):
            errs.append("%s.pod: %r is not a valid pod name" % (where, pod))
            continue
        sources.append({"namespace": ident[0], "service_account": ident[1], "labels": labels, "pod": pod,
                        "container": src.get("container") or None})
    return sources


def default_denied_identity(policy, namespace_service_account="default"):
    """One identity in no allow list: the namespace service account of the first client namespace
    where it is allowed by no rule, else of namespace `default`."""
    for namespace in policy.client_namespaces() + ["default"]:
        if not allowed_by_any(policy, namespace, namespace_service_account):
            return namespace, namespace_service_account
    return None


def _user_cases(errs, raw_cases, options):
    """The user's cases (Case records of kind `user`), each checked on its own."""
    if not isinstance(raw_cases, list):
        errs.append("cases: must be a list")
        return []
    cases = []
    for index, raw in enumerate(raw_cases):
        case = _user_case(errs, "cases[%d]" % index, raw, options)
        if case is not None:
            cases.append(case)
    return cases


def _user_case(errs, where, raw, options):
    """One user case, or None after adding its first problem to `errs`."""
    if not isinstance(raw, dict):
        errs.append("%s: must be a mapping" % where)
        return None
    where = "%s (%s)" % (where, raw.get("name")) if raw.get("name") else where
    unknown = sorted(set(raw) - set(_USER_CASE_KEYS), key=str)
    if unknown:
        errs.append("%s: unknown key %r (allowed: %s)" % (where, unknown[0], ", ".join(_USER_CASE_KEYS)))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        errs.append("%s.name: is required" % where)
        return None
    ident = _parse_identity(errs, where + ".identity", raw.get("identity"))
    host = raw.get("host")
    problem = host_problem(host) if host else "is required"
    if problem and not (isinstance(host, str) and is_dns_subdomain(host)):
        errs.append("%s.host: %r: %s" % (where, host, problem))
        return None
    scheme = raw.get("scheme") or "http"
    if scheme not in ("http", "https"):
        errs.append("%s.scheme: %r is not http or https" % (where, scheme))
        return None
    port = raw.get("port") or (443 if scheme == "https" else 80)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errs.append("%s.port: %r is out of range (1-65535)" % (where, port))
        return None
    method = raw.get("method") or "GET"
    if method not in HTTP_METHODS or method in ("CONNECT", "HEAD"):
        errs.append("%s.method: %r is not a method a probe can send" % (where, method))
        return None
    path = raw.get("path") or "/"
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        errs.append("%s.path: %r must start with '/' and contain no whitespace" % (where, path))
        return None
    expect = raw.get("expect")
    if expect not in EXPECTATIONS:
        errs.append("%s.expect: %r is not one of %s" % (where, expect, ", ".join(EXPECTATIONS)))
        return None
    if ident is None:
        return None
    via = raw.get("via_gateway")
    return new_case(kind="user", rule=None, namespace=ident[0], service_account=ident[1],
                    run_as=ident[1] or options.namespace_service_account, host=host, port=port, scheme=scheme,
                    method=method, path=path, expect=expect, via_gateway=True if via is None else bool(via),
                    note="added by the user", name=name.strip())


def _without_none(value):
    if isinstance(value, dict):
        return dict((k, _without_none(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def policy_from_built(built):
    """The Policy back from its plain-data form (``Policy.as_dict()``, the ``policy`` result of
    egress_resources and of the meshguard.egress.policy role), validated again. Derived keys of
    that form (gateway_host, hosts, network_policy.covered, ...) are dropped; the section key
    lists of policy.py decide what is input."""
    if not isinstance(built, dict):
        raise VerifyError(["policy: must be the `policy` result of meshguard.egress.egress_resources (a mapping)"])
    sections = {"gateway": GATEWAY_KEYS, "mesh": MESH_KEYS, "api_versions": API_KEYS, "network_policy": NETPOL_KEYS}
    raw = {}
    for key, value in built.items():
        if key not in TOP_KEYS or value is None:
            continue
        value = _without_none(value)
        if key in sections and isinstance(value, dict):
            value = dict((k, v) for k, v in value.items() if k in sections[key])
        elif key == "rules" and isinstance(value, list):
            value = [dict((k, v) for k, v in r.items() if k in RULE_KEYS) if isinstance(r, dict) else r
                     for r in value]
        raw[key] = value
    netpol = built.get("network_policy")
    if "network_policy_discovered" not in raw and isinstance(netpol, dict) and netpol.get("discovered"):
        raw["network_policy_discovered"] = list(netpol["discovered"])
    return normalize_policy(raw)
