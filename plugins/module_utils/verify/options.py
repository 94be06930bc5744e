# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify's inputs: the options of a verify run (the access_probe module's non-policy options),
validated against the policy, the user's own cases, and the policy back from its plain-data form.

``normalize_options(policy, raw)`` returns an ``Options`` record or raises ``VerifyError`` with
every problem at once, each with its path (``cases[0] (x).expect: ...``).
``policy_from_built(built)`` turns the ``policy`` result of egress_resources into a ``Policy``.

Identities, coercion and the error collector are validation.py's (the same rules as the policy's
allow entries); the policy's own checks are policy.py's.

Not for: deriving the test cases (matrix.py) or anything that talks to a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import (
    API_KEYS, GATEWAY_KEYS, HTTP_METHODS, MESH_KEYS, NETPOL_KEYS, RULE_KEYS, TOP_KEYS)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import (
    Errors, InputError, as_bool, as_list, as_str, check_label, enum, host_problem, identity_text,
    is_dns_subdomain, parse_identity, unknown_keys)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.case import new_case
from ansible_collections.meshguard.egress.plugins.module_utils.verify.reach import allowed_by_any, rule_allows

EXPECTATIONS = ("allowed", "denied", "blocked")
SCHEMES = ("http", "https")
DEFAULT_PROBE_IMAGE = "docker.io/curlimages/curl:8.11.1"
DEFAULT_UNLISTED_HOST = "example.com"
DEFAULT_TIMEOUT = 10
DEFAULT_PROBE_POD_LIFETIME = 900
_USER_CASE_KEYS = ("name", "identity", "host", "port", "scheme", "method", "path", "expect", "via_gateway")
_SOURCE_KEYS = ("namespace", "service_account", "labels", "pod", "container")


class VerifyError(InputError):
    """The verify options are invalid."""

    SUBJECT = "verify options"


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
    errs = Errors()
    timeout = raw.get("timeout")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600:
        errs.add("timeout", "%r must be an integer number of seconds (1-600)" % (timeout,))
        timeout = DEFAULT_TIMEOUT

    ns_sa = raw.get("namespace_service_account") or "default"
    if not is_dns_subdomain(ns_sa):
        errs.add("namespace_service_account", "%r is not a valid service account name" % (ns_sa,))
    unlisted = _unlisted_host(errs, policy, raw.get("unlisted_host") or DEFAULT_UNLISTED_HOST)
    denied = _denied_identity(errs, policy, raw, ns_sa)
    sources = _sources(errs, raw.get("sources"))
    exclude = _exclude(errs, raw.get("exclude"))

    lifetime = raw.get("probe_pod_lifetime") or DEFAULT_PROBE_POD_LIFETIME
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 60:
        errs.add("probe_pod_lifetime", "%r must be an integer of at least 60 seconds" % (lifetime,))
    revision = check_label(errs, "probe_revision", raw.get("probe_revision") or policy.mesh.get("revision"),
                           "revision")

    options = Options(denied_identity=denied, unlisted_host=unlisted, cases=[], exclude=exclude,
                      timeout=timeout, namespace_service_account=ns_sa, sources=sources,
                      probe_pods=as_bool(errs, "probe_pods", raw.get("probe_pods"), True),
                      probe_image=as_str(errs, "probe_image", raw.get("probe_image"), DEFAULT_PROBE_IMAGE),
                      probe_pod_lifetime=lifetime, probe_revision=revision)
    options.cases = _user_cases(errs, raw.get("cases"), options)
    if errs.items:
        raise VerifyError(errs.items)
    return options


def _unlisted_host(errs, policy, unlisted):
    """The host in no rule that the `unlisted` cases probe: an external FQDN that no rule lists."""
    problem = host_problem(unlisted)
    if problem:
        errs.add("unlisted_host", "%r: %s" % (unlisted, problem))
    elif any(unlisted in rule.hosts for rule in policy.rules):
        errs.add("unlisted_host", "%r is a host of rule %s; it must be in no rule"
                 % (unlisted, [r.name for r in policy.rules if unlisted in r.hosts][0]))
    return unlisted


def _exclude(errs, value):
    """The names (shell-style patterns) of the cases not to run."""
    patterns = []
    for index, pattern in enumerate(as_list(errs, "exclude", value)):
        if isinstance(pattern, str) and pattern:
            patterns.append(pattern)
        else:
            errs.add("exclude[%d]" % index, "%r is not a case name (a non-empty string; shell-style patterns "
                                            "allowed)" % (pattern,))
    return patterns


def _denied_identity(errs, policy, raw, ns_sa):
    """(namespace, service_account) of the identity in no allow list: the user's, checked, or derived."""
    if not raw.get("denied_identity"):
        return default_denied_identity(policy, ns_sa)
    denied = parse_identity(errs, "denied_identity", raw["denied_identity"])
    if denied is not None:
        run_as = denied[1] or ns_sa
        if allowed_by_any(policy, denied[0], run_as):
            rules = [r.name for r in policy.rules if rule_allows(r, denied[0], run_as)]
            errs.add("denied_identity", "%s is allowed by rule %s; the denied probe must be in no allow list"
                     % (identity_text(denied[0], run_as), ", ".join(rules)))
        denied = (denied[0], run_as)
    return denied


def _sources(errs, raw_sources):
    """The user's sources (existing pods per identity), each {namespace, service_account, labels, pod, container}."""
    sources = []
    for index, src in enumerate(as_list(errs, "sources", raw_sources)):
        source = _source(errs, "sources[%d]" % index, src)
        if source is not None:
            sources.append(source)
    return sources


def _source(errs, where, src):
    """One source, or None when it has a problem (every problem of it is recorded)."""
    if not isinstance(src, dict):
        errs.add(where, "must be a mapping (namespace, service_account, labels or pod, container)")
        return None
    found = len(errs.items)
    unknown_keys(errs, where, src, _SOURCE_KEYS)
    ident = parse_identity(errs, where, {"namespace": src.get("namespace"),
                                         "service_account": src.get("service_account")})
    labels, pod = src.get("labels"), src.get("pod")
    if bool(labels) == bool(pod):
        errs.add(where, "give exactly one of labels (a pod selector) or pod (a pod name)")
    elif labels is not None and (not isinstance(labels, dict)
                                 or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        errs.add(where + ".labels", "must be a mapping of label names to string values")
    elif pod is not None and not is_dns_subdomain(pod):
        errs.add(where + ".pod", "%r is not a valid pod name" % (pod,))
    container = as_str(errs, where + ".container", src.get("container"))
    if len(errs.items) > found:
        return None
    return {"namespace": ident[0], "service_account": ident[1], "labels": labels, "pod": pod,
            "container": container}


def default_denied_identity(policy, namespace_service_account="default"):
    """One identity in no allow list: the namespace service account of the first client namespace
    where it is allowed by no rule, else of namespace `default`."""
    for namespace in policy.client_namespaces() + ["default"]:
        if not allowed_by_any(policy, namespace, namespace_service_account):
            return namespace, namespace_service_account
    return None


def _user_cases(errs, raw_cases, options):
    """The user's cases (Case records of kind `user`), each checked on its own."""
    cases = []
    for index, raw in enumerate(as_list(errs, "cases", raw_cases)):
        case = _user_case(errs, "cases[%d]" % index, raw, options)
        if case is not None:
            cases.append(case)
    return cases


def _user_case(errs, where, raw, options):
    """One user case, or None when it has a problem (every problem of it is recorded)."""
    if not isinstance(raw, dict):
        errs.add(where, "must be a mapping")
        return None
    where = "%s (%s)" % (where, raw.get("name")) if raw.get("name") else where
    found = len(errs.items)
    unknown_keys(errs, where, raw, _USER_CASE_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        errs.add(where + ".name", "is required")
    if raw.get("identity") in (None, ""):
        errs.add(where + ".identity", "is required ('namespace', 'namespace/service_account' or a mapping)")
        ident = None
    else:
        ident = parse_identity(errs, where + ".identity", raw["identity"])
    request = _user_request(errs, where, raw)
    expect = raw.get("expect")
    if expect in (None, ""):
        errs.add(where + ".expect", "is required (one of %s)" % ", ".join(EXPECTATIONS))
    else:
        expect = enum(errs, where + ".expect", expect, EXPECTATIONS, None)
    via = as_bool(errs, where + ".via_gateway", raw.get("via_gateway"), True)
    if len(errs.items) > found:
        return None
    return new_case(kind="user", rule=None, namespace=ident[0], service_account=ident[1],
                    run_as=ident[1] or options.namespace_service_account, host=request["host"],
                    port=request["port"], scheme=request["scheme"], method=request["method"], path=request["path"],
                    expect=expect, via_gateway=via, note="added by the user", name=name.strip())


def _user_request(errs, where, raw):
    """The request of a user case: {host, port, scheme, method, path}, each field checked."""
    host = raw.get("host")
    if host in (None, ""):
        errs.add(where + ".host", "is required")
    else:
        problem = host_problem(host)
        if problem and not (isinstance(host, str) and is_dns_subdomain(host)):
            errs.add(where + ".host", "%r: %s" % (host, problem))
    scheme = enum(errs, where + ".scheme", raw.get("scheme"), SCHEMES, "http")
    port = raw.get("port") or (443 if scheme == "https" else 80)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errs.add(where + ".port", "%r is out of range (1-65535)" % (port,))
    method = raw.get("method") or "GET"
    if method not in HTTP_METHODS or method in ("CONNECT", "HEAD"):
        errs.add(where + ".method", "%r is not a method a probe can send" % (method,))
    path = raw.get("path") or "/"
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        errs.add(where + ".path", "%r must start with '/' and contain no whitespace" % (path,))
    return {"host": host, "port": port, "scheme": scheme, "method": method, "path": path}


def _without_none(value):
    if isinstance(value, dict):
        return dict((k, _without_none(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def policy_from_built(built):
    """The Policy back from its plain-data form (``Policy.as_dict()``, the ``policy`` result of
    egress_resources and of the meshguard.egress.policy role), validated again. Derived keys of
    that form (gateway_host, hosts, network_policy.covered, ...) are dropped; the key lists of
    policy_model.py (TOP_KEYS, RULE_KEYS and one per section) decide what is input."""
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
