# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live access tests derived from a meshguard.egress policy (the ``verify`` playbook).

Pure Python, no cluster and no Ansible imports. The exec runner (probe_exec.py) and the
``access_probe`` module use it; the tests use it on recorded probe outputs.

* ``build_matrix(policy, options)`` derives the test cases from a normalised ``Policy``
  (``policy.normalize_policy``): nothing is typed twice.
* ``curl_command(case, timeout)`` is the command a probe pod runs for a case.
* ``classify(case, outcome)`` turns what came back from the exec call into one of
  ``allowed`` / ``denied`` / ``blocked`` / ``unexpected`` / ``broken`` and a cause.
  A broken probe (no pod, no sidecar, no curl, exec refused) is never "denied".
* ``report(...)`` renders the table, the JSON document and the JUnit XML.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re
import shlex
import xml.etree.ElementTree as ET

from ansible_collections.meshguard.egress.plugins.module_utils.labels import LABEL_COMPONENT, LABEL_MANAGED_BY, \
    LABEL_POLICY, MANAGED_BY, policy_labels
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import API_KEYS, GATEWAY_KEYS, \
    HTTP_METHODS, MESH_KEYS, NETPOL_KEYS, RULE_KEYS, TOP_KEYS, short_hash
from ansible_collections.meshguard.egress.plugins.module_utils.validation import InputError, host_problem, \
    identity_text, is_dns_label, is_dns_subdomain

EXPECTATIONS = ("allowed", "denied", "blocked")
OBSERVATIONS = ("allowed", "denied", "blocked", "unexpected", "broken")
KINDS = ("allowed", "denied", "unlisted", "bypass", "l7-method", "l7-path", "user")

# Verify's own component label for probe pods (not an object the builder renders).
COMPONENT_VERIFY_PROBE = "verify-probe"
PROBE_CONTAINER = "probe"
SIDECAR_CONTAINER = "istio-proxy"
DEFAULT_PROBE_IMAGE = "docker.io/curlimages/curl:8.11.1"
DEFAULT_UNLISTED_HOST = "example.com"
DEFAULT_TIMEOUT = 10
# curl -w output, on a line of its own after the body; parsed by parse_curl_output().
CURL_MARKER = "meshguard-probe:"
_CURL_WRITE_OUT = "\\n" + CURL_MARKER + " http_code=%{http_code} tls=%{time_appconnect} ip=%{remote_ip}\\n"
_MARKER_RE = re.compile(re.escape(CURL_MARKER) + r" http_code=(\d{3}) tls=([0-9.]+) ip=(\S*)$")
RBAC_DENIED_BODY = "RBAC: access denied"
SNIPPET_CHARS = 240

# curl exit codes (curl(1) "EXIT CODES") and what they mean for a probe.
CURL_DNS = 6            # could not resolve host
CURL_CONNECT = 7        # failed to connect
CURL_TIMEOUT = 28       # operation timed out (--max-time)
CURL_RESETS = (35, 52, 56)  # TLS connect error, empty reply, failure receiving (reset)
NOT_FOUND_EXITS = (126, 127)  # shell/runtime: command not executable / not found
_NOT_FOUND_TEXT = ("executable file not found", "no such file or directory", "command not found", "not found in $path")
# Alternatives for an L7 "outside the limits" probe, in order of preference (never CONNECT/TRACE/HEAD:
# curl -X HEAD waits for a body that never comes).
_METHOD_PREFERENCE = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_DENIED_PATH_CANDIDATES = ("/meshguard-egress-denied-path", "/meshguard-egress/denied", "/.meshguard-egress-denied")


class VerifyError(InputError):
    """The verify options are invalid."""

    SUBJECT = "verify options"


# --------------------------------------------------------------------------------------------
# Identities and who a rule allows

def rule_allows(rule, namespace, service_account):
    """True when `rule` allows a workload running as namespace/service_account."""
    for ident in rule.allow:
        if ident.namespace == namespace and (ident.service_account is None or ident.service_account == service_account):
            return True
    return False


def allowed_by_any(policy, namespace, service_account):
    return any(rule_allows(rule, namespace, service_account) for rule in policy.rules)


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


# --------------------------------------------------------------------------------------------
# Options

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

    denied = None
    if raw.get("denied_identity"):
        denied = _parse_identity(errs, "denied_identity", raw["denied_identity"])
        if denied is not None:
            run_as = denied[1] or ns_sa
            if allowed_by_any(policy, denied[0], run_as):
                rules = [r.name for r in policy.rules if rule_allows(r, denied[0], run_as)]
                errs.append("denied_identity: %s is allowed by rule %s; the denied probe must be in no allow list"
                            % (identity_text(denied[0], run_as), ", ".join(rules)))
            denied = (denied[0], run_as)
    else:
        denied = default_denied_identity(policy, ns_sa)

    sources = []
    for index, src in enumerate(raw.get("sources") or []):
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


def default_denied_identity(policy, namespace_service_account="default"):
    """One identity in no allow list: the namespace service account of the first client namespace
    where it is allowed by no rule, else of namespace `default`."""
    for namespace in policy.client_namespaces() + ["default"]:
        if not allowed_by_any(policy, namespace, namespace_service_account):
            return namespace, namespace_service_account
    return None


def _user_cases(errs, raw_cases, options):
    cases = []
    if not isinstance(raw_cases, list):
        errs.append("cases: must be a list")
        return cases
    keys = ("name", "identity", "host", "port", "scheme", "method", "path", "expect", "via_gateway")
    for index, raw in enumerate(raw_cases):
        where = "cases[%d]" % index
        if not isinstance(raw, dict):
            errs.append("%s: must be a mapping" % where)
            continue
        where = "%s (%s)" % (where, raw.get("name")) if raw.get("name") else where
        unknown = sorted(set(raw) - set(keys), key=str)
        if unknown:
            errs.append("%s: unknown key %r (allowed: %s)" % (where, unknown[0], ", ".join(keys)))
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            errs.append("%s.name: is required" % where)
            continue
        ident = _parse_identity(errs, where + ".identity", raw.get("identity"))
        host = raw.get("host")
        problem = host_problem(host) if host else "is required"
        if problem and not (isinstance(host, str) and is_dns_subdomain(host)):
            errs.append("%s.host: %r: %s" % (where, host, problem))
            continue
        scheme = raw.get("scheme") or "http"
        if scheme not in ("http", "https"):
            errs.append("%s.scheme: %r is not http or https" % (where, scheme))
            continue
        port = raw.get("port") or (443 if scheme == "https" else 80)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            errs.append("%s.port: %r is out of range (1-65535)" % (where, port))
            continue
        method = raw.get("method") or "GET"
        if method not in HTTP_METHODS or method in ("CONNECT", "HEAD"):
            errs.append("%s.method: %r is not a method a probe can send" % (where, method))
            continue
        path = raw.get("path") or "/"
        if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
            errs.append("%s.path: %r must start with '/' and contain no whitespace" % (where, path))
            continue
        expect = raw.get("expect")
        if expect not in EXPECTATIONS:
            errs.append("%s.expect: %r is not one of %s" % (where, expect, ", ".join(EXPECTATIONS)))
            continue
        if ident is None:
            continue
        run_as = ident[1] or options.namespace_service_account
        via = raw.get("via_gateway")
        cases.append(_case("user", None, ident[0], ident[1], run_as, host, port, scheme, method, path, expect,
                           via_gateway=True if via is None else bool(via), name=name.strip(),
                           note="added by the user"))
    return cases


# --------------------------------------------------------------------------------------------
# The matrix

def _case(kind, rule, namespace, service_account, run_as, host, port, scheme, method, path, expect,
          via_gateway, note, name=None):
    ident = identity_text(namespace, service_account)
    if name is None:
        name = "%s %s -> %s" % (kind, ident, host)
        if kind == "bypass":
            name += ":%d" % port
        if kind in ("l7-method", "l7-path"):
            name += " %s %s" % (method, path)
    return {
        "name": name, "kind": kind, "rule": rule,
        "identity": ident, "namespace": namespace, "service_account": run_as,
        "host": host, "port": port, "scheme": scheme, "method": method, "path": path,
        "via_gateway": via_gateway, "expect": expect, "note": note,
    }


def path_matches(pattern, path):
    """Istio's AuthorizationPolicy path match: exact, prefix `p*`, suffix `*s`."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def inside_path(rule):
    """A path the rule's L7 limits allow ("/" without path limits)."""
    if not rule.paths:
        return "/"
    pattern = rule.paths[0]
    if pattern.endswith("*"):
        return pattern[:-1] + ("" if pattern[:-1].endswith("/") else "/") + "meshguard-probe"
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return "/meshguard-probe" + ("" if suffix.startswith(("/", ".")) else "/") + suffix
    return pattern


def outside_path(rule):
    """A path no limit of the rule matches, or None (e.g. a prefix `/*` matches every path)."""
    for path in _DENIED_PATH_CANDIDATES:
        if not any(path_matches(p, path) for p in rule.paths or ()):
            return path
    return None


def inside_method(rule):
    if not rule.methods or "GET" in rule.methods:
        return "GET"
    for method in _METHOD_PREFERENCE:
        if method in rule.methods:
            return method
    return None  # only HEAD/CONNECT/TRACE allowed: nothing a probe sends


def outside_method(rule):
    if not rule.methods:
        return None
    for method in _METHOD_PREFERENCE:
        if method not in rule.methods:
            return method
    return None


def registry_only_for(policy, namespace):
    """True when the outbound policy REGISTRY_ONLY applies to pods of `namespace`."""
    mesh = policy.mesh
    if mesh.get("outbound_policy") != "REGISTRY_ONLY":
        return False
    return mesh.get("scope") == "mesh" or namespace in (mesh.get("namespaces") or [])


def build_matrix(policy, options):
    """The test cases for `policy` (a normalised Policy) and `options` (normalize_options).

    Returns (cases, excluded, notes): cases in a stable order, excluded case names, and notes about
    derived cases that could not be built (e.g. no path outside the L7 limits)."""
    cases, notes = [], []
    ns_sa = options.namespace_service_account

    def run_as(ident):
        return ident.service_account or ns_sa

    # 1. every allowed identity -> each host of its rule
    for rule in policy.rules:
        method, path = inside_method(rule), inside_path(rule)
        if method is None:
            notes.append("rule %s: allows only %s, which a probe cannot send; no allowed case"
                         % (rule.name, ", ".join(rule.methods)))
            continue
        for ident in rule.allow:
            for host in rule.hosts:
                if rule.dry_run:
                    expect, note = "denied", ("rule %s is dry-run: its AuthorizationPolicy is logged, not enforced, so "
                                              "the gateway's allow-nothing denies" % rule.name)
                else:
                    expect, note = "allowed", "allowed by rule %s" % rule.name
                cases.append(_case("allowed", rule.name, ident.namespace, ident.service_account, run_as(ident), host,
                                   rule.app_port, "http" if rule.is_http else "https", method, path,
                                   expect, True, note))

    # 2. identities outside a rule's allow list -> its hosts: the probe identity to every host, and each
    #    allowed identity to the hosts of the rules that do not list it
    denied_ids = []
    if options.denied_identity is not None:
        denied_ids.append((options.denied_identity[0], options.denied_identity[1], options.denied_identity[1]))
    else:
        notes.append("no identity outside every allow list found; set denied_identity")
    seen = set()
    for rule in policy.rules:
        for ident in rule.allow:
            key = (ident.namespace, ident.service_account)
            if key not in seen:
                seen.add(key)
                denied_ids.append((ident.namespace, ident.service_account, run_as(ident)))
    for namespace, service_account, as_sa in denied_ids:
        for rule in policy.rules:
            if rule_allows(rule, namespace, as_sa):
                continue
            method, path = inside_method(rule) or "GET", inside_path(rule)
            for host in rule.hosts:
                cases.append(_case("denied", rule.name, namespace, service_account, as_sa, host, rule.app_port,
                                   "http" if rule.is_http else "https", method, path, "denied", True,
                                   "%s is in no allow list of rule %s" % (identity_text(namespace, as_sa), rule.name)))

    # 3. an allowed identity -> a host in no rule: blocked by REGISTRY_ONLY
    caller = _first_caller(policy, lambda ns: registry_only_for(policy, ns))
    if caller is None:
        notes.append("no unlisted-host case: REGISTRY_ONLY does not apply to any allowed identity's namespace "
                     "(outbound_policy %s)" % policy.mesh.get("outbound_policy"))
    else:
        cases.append(_case("unlisted", None, caller.namespace, caller.service_account, run_as(caller),
                           options.unlisted_host, 80, "http", "GET", "/", "blocked", False,
                           "host in no rule: REGISTRY_ONLY sends it to the BlackHole"))

    # 4. an allowed identity straight to the host over TLS, skipping the gateway
    for rule in policy.rules:
        if not rule.is_http:
            continue  # passthrough: the app's TLS already goes through the gateway
        tls_port = rule.port if rule.tls == "originate" else 443
        if rule.tls == "none" and rule.port == 443:
            continue
        ident = next((i for i in rule.allow if registry_only_for(policy, i.namespace)), None)
        why = "REGISTRY_ONLY: only the gateway may reach the TLS port"
        if ident is None and policy.network_policy.get("enabled"):
            ident = rule.allow[0]
            why = "anti-bypass NetworkPolicy (needs a CNI that enforces it)"
        if ident is None:
            notes.append("rule %s: no bypass case: neither REGISTRY_ONLY nor anti-bypass NetworkPolicies cover its "
                         "callers" % rule.name)
            continue
        for host in rule.hosts:
            cases.append(_case("bypass", rule.name, ident.namespace, ident.service_account, run_as(ident), host,
                               tls_port, "https", "GET", "/", "blocked", False,
                               "direct TLS to the host, skipping the gateway; closed by " + why))

    # 5. L7 limits: a method and a path outside them
    for rule in policy.rules:
        if not rule.is_http or not (rule.methods or rule.paths) or rule.dry_run:
            continue
        ident = rule.allow[0]
        method, path = inside_method(rule), inside_path(rule)
        if method is None:
            continue
        bad_method, bad_path = outside_method(rule), outside_path(rule)
        for host in rule.hosts:
            if bad_method:
                cases.append(_case("l7-method", rule.name, ident.namespace, ident.service_account, run_as(ident),
                                   host, rule.app_port, "http", bad_method, path, "denied", True,
                                   "method %s is outside rule %s's methods %s" % (bad_method, rule.name,
                                                                                  ", ".join(rule.methods))))
            if rule.paths and bad_path:
                cases.append(_case("l7-path", rule.name, ident.namespace, ident.service_account, run_as(ident),
                                   host, rule.app_port, "http", method, bad_path, "denied", True,
                                   "path %s is outside rule %s's paths %s" % (bad_path, rule.name,
                                                                              ", ".join(rule.paths))))
        if rule.paths and not bad_path:
            notes.append("rule %s: every path matches its limits; no l7-path case" % rule.name)

    # 6. the user's cases, then exclusions by name (shell-style patterns)
    names = set(c["name"] for c in cases)
    problems = []
    for case in options.cases:
        if case["name"] in names:
            problems.append("cases: name %r is already a derived case; exclude it or choose another name"
                            % case["name"])
        names.add(case["name"])
        cases.append(case)
    if problems:
        raise VerifyError(problems)
    kept, excluded = [], []
    used = set()
    for case in cases:
        hits = [p for p in options.exclude if fnmatch.fnmatchcase(case["name"], p)]
        used.update(hits)
        (excluded if hits else kept).append(case)
    for pattern in options.exclude:
        if pattern not in used:
            notes.append("exclude: %r matches no case" % pattern)
    return kept, [c["name"] for c in excluded], notes


def _first_caller(policy, predicate):
    for rule in policy.rules:
        for ident in rule.allow:
            if predicate(ident.namespace):
                return ident
    return None


# --------------------------------------------------------------------------------------------
# Where probes run

def probe_identities(cases):
    """The (namespace, service_account) pairs the cases run as, in first-use order."""
    seen = []
    for case in cases:
        key = (case["namespace"], case["service_account"])
        if key not in seen:
            seen.append(key)
    return seen


def source_for(options, namespace, service_account):
    """The user's source (existing pods) for an identity, or None."""
    for src in options.sources:
        if src["namespace"] == namespace and (src["service_account"] is None
                                              or src["service_account"] == service_account):
            return src
    return None


def probe_pod_name(policy, namespace, service_account):
    """A stable, unique name for the probe pod of one identity of one policy."""
    base = "meshguard-probe-%s" % service_account
    suffix = "-" + short_hash("%s/%s/%s" % (policy.policy_name, namespace, service_account))
    return base[:63 - len(suffix)].rstrip("-.") + suffix


def probe_pod_labels(policy):
    labels = policy_labels(policy.policy_name)
    labels[LABEL_COMPONENT] = COMPONENT_VERIFY_PROBE
    return labels


def probe_pod_selector(policy):
    return ",".join("%s=%s" % (k, v) for k, v in sorted(probe_pod_labels(policy).items()))


def probe_pod_manifest(policy, options, namespace, service_account):
    """A short-lived, sidecar-injected probe pod running as namespace/service_account."""
    labels = probe_pod_labels(policy)
    labels["app"] = "meshguard-egress-probe"
    if options.probe_revision:
        labels["istio.io/rev"] = options.probe_revision
    else:
        labels["sidecar.istio.io/inject"] = "true"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": probe_pod_name(policy, namespace, service_account), "namespace": namespace, "labels": labels,
            # Start the app only when Envoy is ready (else the first probe can race the sidecar).
            "annotations": {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"},
        },
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            # Gone by itself even if the play that made it is killed before its cleanup step.
            "activeDeadlineSeconds": options.probe_pod_lifetime,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": PROBE_CONTAINER, "image": options.probe_image,
                "command": ["sleep", str(options.probe_pod_lifetime)],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def plan_probe_pods(policy, options, cases):
    """Manifests of the probe pods the cases need (identities without a user source)."""
    if not options.probe_pods:
        return []
    return [probe_pod_manifest(policy, options, ns, sa) for ns, sa in probe_identities(cases)
            if source_for(options, ns, sa) is None]


def _containers(pod):
    spec = pod.get("spec") or {}
    return spec.get("containers") or [], spec.get("initContainers") or []


def has_sidecar(pod):
    containers, init = _containers(pod)
    return any(c.get("name") == SIDECAR_CONTAINER for c in containers + init)


def pick_pod(pods, namespace, service_account, where, container=None):
    """Choose the pod a probe runs in. Returns (target, problem): target is {pod, namespace, container}
    and problem (a "probe broken" cause) is None when the pod can run probes."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        return None, "no pod %s in namespace %s" % (where, namespace)
    running = [p for p in live if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        pod = live[0]
        return None, "pod %s/%s is %s, not Running" % (namespace, pod["metadata"]["name"],
                                                       (pod.get("status") or {}).get("phase") or "Unknown")
    matching = [p for p in running if ((p.get("spec") or {}).get("serviceAccountName") or "default") == service_account]
    if not matching:
        pod = running[0]
        return None, ("pod %s/%s runs as service account %s, not %s: it would probe another identity"
                      % (namespace, pod["metadata"]["name"],
                         (pod.get("spec") or {}).get("serviceAccountName") or "default", service_account))
    injected = [p for p in matching if has_sidecar(p)]
    if not injected:
        return None, ("pod %s/%s has no %s sidecar (not injected): its traffic would not pass the mesh"
                      % (namespace, matching[0]["metadata"]["name"], SIDECAR_CONTAINER))
    pod = sorted(injected, key=lambda p: p["metadata"]["name"])[0]
    containers, dummy = _containers(pod)
    names = [c.get("name") for c in containers]
    if container is None:
        app = [n for n in names if n != SIDECAR_CONTAINER]
        if not app:
            return None, "pod %s/%s has no application container" % (namespace, pod["metadata"]["name"])
        container = app[0]
    elif container not in names:
        return None, "pod %s/%s has no container %s" % (namespace, pod["metadata"]["name"], container)
    statuses = dict((s.get("name"), s) for s in (pod.get("status") or {}).get("containerStatuses") or [])
    state = (statuses.get(container) or {}).get("state") or {}
    if statuses and "running" not in state:
        return None, "container %s of pod %s/%s is not running" % (container, namespace, pod["metadata"]["name"])
    return {"pod": pod["metadata"]["name"], "namespace": namespace, "container": container}, None


# --------------------------------------------------------------------------------------------
# The probe command and what came back

def url(case):
    default = 443 if case["scheme"] == "https" else 80
    port = "" if case["port"] == default else ":%d" % case["port"]
    return "%s://%s%s%s" % (case["scheme"], case["host"], port, case["path"])


def curl_command(case, timeout):
    """The argv a probe runs: body and a -w marker line to stdout, errors to stderr."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "--noproxy", "*", "-A", "meshguard-egress-verify",
            "-w", _CURL_WRITE_OUT]
    if case["scheme"] == "https":
        # Reachability, not the server's certificate, is under test (the gateway verifies it when it
        # originates TLS); a completed handshake means the connection got through.
        argv.append("--insecure")
    if case["method"] != "GET":
        argv += ["-X", case["method"]]
    argv.append(url(case))
    return argv


def command_text(argv):
    return " ".join(shlex.quote(a) for a in argv)


def parse_curl_output(stdout):
    """(http_code int or None, tls_handshake_seconds float or None, remote_ip, body) from a probe's stdout.

    The -w marker line is the last one curl writes; without it everything is body (and code/tls None)."""
    text = stdout or ""
    idx = text.rfind(CURL_MARKER)
    while idx > 0 and text[idx - 1] != "\n":
        idx = text.rfind(CURL_MARKER, 0, idx)
    match = _MARKER_RE.match(text[idx:].split("\n", 1)[0]) if idx >= 0 else None
    if match is None:
        return None, None, None, text
    body = text[:idx - 1] if idx > 0 else ""
    return (int(match.group(1)) or None), float(match.group(2)), match.group(3), body


def snippet(text, limit=SNIPPET_CHARS):
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def classify(case, outcome):
    """What a probe saw, as (observed, cause).

    `outcome` is what the runner recorded: pod_problem (pick_pod), exec_status (HTTP status of a
    failed exec call: 403 = forbidden by RBAC), exec_error, deadline (the exec did not return in
    time), rc (exit code from the error channel), stdout, stderr."""
    if outcome.get("pod_problem"):
        return "broken", outcome["pod_problem"]
    status = outcome.get("exec_status")
    if status == 403:
        return "broken", "exec forbidden by RBAC (pods/exec create): %s" % snippet(outcome.get("exec_error"), 160)
    if status == 404:
        return "broken", "pod not found when exec started: %s" % snippet(outcome.get("exec_error"), 160)
    rc, stderr = outcome.get("rc"), outcome.get("stderr") or ""
    error_text = (stderr + " " + (outcome.get("exec_error") or "")).lower()
    if rc in NOT_FOUND_EXITS or (rc is None and any(t in error_text for t in _NOT_FOUND_TEXT)) \
            or (rc not in (None, 0) and "executable file not found" in error_text):
        why = snippet(stderr or outcome.get("exec_error"), 160)
        return "broken", "no curl in the container (exit %s): %s" % (rc, why)
    if outcome.get("exec_error"):
        return "broken", "exec failed: %s" % snippet(outcome["exec_error"], 200)
    if outcome.get("deadline"):
        return "broken", ("the exec call did not return within %ss (curl's own --max-time had passed): "
                          "the API server or node is not answering" % outcome["deadline"])
    if rc is None:
        return "broken", "no exit code from the exec call"
    code, tls, ip, body = parse_curl_output(outcome.get("stdout"))
    https = case["scheme"] == "https"
    if rc == 0 and code is None and not https:
        why = snippet(outcome.get("stdout"), 120)
        return "broken", "curl output not understood (not curl, or an old curl?): %s" % why
    if https and tls:
        return "allowed", "TLS handshake with the server completed%s" % (" (HTTP %d)" % code if code else "")
    if rc == 0 and not https:
        if 200 <= code < 400:
            return "allowed", "HTTP %d" % code
        if code == 403 and RBAC_DENIED_BODY in body:
            return "denied", "HTTP 403 %s" % RBAC_DENIED_BODY
        if code in (502, 503, 504):
            return "blocked", "HTTP %d %s" % (code, snippet(body, 80) or "(no body)")
        if code == 403:
            why = snippet(body, 80)
            return "unexpected", "HTTP 403 without '%s' (not the mesh's denial): %s" % (RBAC_DENIED_BODY, why)
        return "unexpected", "HTTP %d: %s" % (code, snippet(body, 80))
    if rc == CURL_DNS:
        return "blocked", "DNS resolution failed (curl exit 6)"
    if rc == CURL_CONNECT:
        return "blocked", "connection failed (curl exit 7)"
    if rc == CURL_TIMEOUT:
        return "blocked", "timeout: no answer within %ss (curl exit 28)" % outcome.get("timeout", "?")
    if rc in CURL_RESETS:
        if https and case.get("via_gateway"):
            return "denied", ("connection closed during the TLS handshake (curl exit %d): the gateway's RBAC "
                              "refuses a TLS connection this way" % rc)
        return "blocked", "connection reset / no TLS handshake (curl exit %d)" % rc
    if rc == 0:
        return "unexpected", "TLS probe got no handshake (HTTP %s)" % code
    return "broken", "curl exit %d: %s" % (rc, snippet(stderr, 160))


def verdict(case, observed):
    if observed == "broken":
        return "broken"
    return "pass" if observed == case["expect"] else "fail"


# --------------------------------------------------------------------------------------------
# The report

def result_row(case, target, argv, outcome):
    """One case with its probe result (the module's results[] item)."""
    observed, cause = classify(case, outcome)
    code, dummy, dummy2, body = parse_curl_output(outcome.get("stdout"))
    row = dict(case)
    row.update({
        "pod": (target or {}).get("pod"), "container": (target or {}).get("container"),
        "command": command_text(argv), "exit_code": outcome.get("rc"), "http_status": code,
        "response": snippet(body), "stderr": snippet(outcome.get("stderr")),
        "duration": round(outcome.get("duration") or 0.0, 3),
        "observed": observed, "cause": cause, "verdict": verdict(case, observed),
    })
    return row


def mismatch_lines(rows):
    """One line per case that did not pass, naming identity, host, expectation and observation."""
    lines = []
    for row in rows:
        if row["verdict"] == "pass":
            continue
        lines.append("%s: %s -> %s expected %s, observed %s (%s)%s" % (
            "PROBE BROKEN" if row["verdict"] == "broken" else "MISMATCH", row["identity"],
            "%s %s" % (row["host"], row["path"]) if row["kind"].startswith("l7") else row["host"],
            row["expect"], row["observed"], row["cause"], " [case %s]" % row["name"]))
    return lines


def summary(rows):
    counts = {"cases": len(rows), "pass": 0, "fail": 0, "broken": 0}
    for row in rows:
        counts[row["verdict"]] += 1
    counts["passed"] = counts["pass"] == counts["cases"]
    return counts


def table(rows, planned=False):
    """The readable table for the play output (one string per line)."""
    if planned:
        head = ("case", "request", "expected")
        data = [(r["name"], "%s %s" % (r["method"], url(r)), r["expect"]) for r in rows]
    else:
        head = ("verdict", "identity", "request", "expected", "observed")
        data = [(r["verdict"].upper(), _ident_cell(r), "%s %s" % (r["method"], url(r)), r["expect"],
                 "%s: %s" % (r["observed"], r["cause"])) for r in rows]
    widths = [max([len(head[i])] + [len(d[i]) for d in data]) for i in range(len(head) - 1)]
    lines = []
    for values in [head] + data:
        lines.append("  ".join([v.ljust(widths[i]) for i, v in enumerate(values[:-1])] + [values[-1]]).rstrip())
        if values is head:
            lines.append("  ".join("-" * w for w in widths + [len(head[-1])]))
    return lines


def _ident_cell(row):
    if row["identity"].endswith("/*"):
        return "%s (as %s)" % (row["identity"], row["service_account"])
    return row["identity"]


def junit_xml(rows, suite_name):
    """JUnit XML: one testcase per case; failure for a mismatch, error for a broken probe."""
    counts = summary(rows)
    suite = ET.Element("testsuite", name=suite_name, tests=str(counts["cases"]), failures=str(counts["fail"]),
                       errors=str(counts["broken"]), skipped="0",
                       time="%.3f" % sum(r.get("duration") or 0.0 for r in rows))
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname="meshguard.egress.verify.%s" % row["kind"],
                             name=row["name"], time="%.3f" % (row.get("duration") or 0.0))
        detail = "identity %s, %s %s, expected %s, observed %s: %s\ncommand: %s\nexit code: %s\nstderr: %s" % (
            row["identity"], row["method"], url(row), row["expect"], row["observed"], row["cause"],
            row.get("command"), row.get("exit_code"), row.get("stderr"))
        if row["verdict"] == "fail":
            ET.SubElement(case, "failure", message="expected %s, observed %s" % (row["expect"], row["observed"]),
                          type="mismatch").text = detail
        elif row["verdict"] == "broken":
            ET.SubElement(case, "error", message="probe broken: %s" % row["cause"], type="probe-broken").text = detail
        ET.SubElement(case, "system-out").text = detail
    suites = ET.Element("testsuites", name="meshguard.egress verify")
    suites.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def report(policy, rows, excluded=(), notes=()):
    """{text: [lines], json: {...}, junit: str, mismatches: [lines], summary: {...}}."""
    counts = summary(rows)
    head = "meshguard.egress verify, policy %s: %d cases, %d pass, %d fail, %d probe broken -> %s" % (
        policy.policy_name, counts["cases"], counts["pass"], counts["fail"], counts["broken"],
        "PASSED" if counts["passed"] else "FAILED")
    mismatches = mismatch_lines(rows)
    text = [head] + table(rows) + (["", "mismatches:"] + ["  " + m for m in mismatches] if mismatches else [])
    if excluded:
        text.append("excluded: " + ", ".join(excluded))
    doc = {"policy": policy.policy_name, "summary": counts, "cases": rows, "excluded": list(excluded),
           "notes": list(notes), "mismatches": mismatches}
    return {"text": text, "json": doc, "junit": junit_xml(rows, "meshguard.egress verify %s" % policy.policy_name),
            "mismatches": mismatches, "summary": counts}


def is_probe_pod(obj, policy_name):
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return (labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_POLICY) == policy_name
            and labels.get(LABEL_COMPONENT) == COMPONENT_VERIFY_PROBE)


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
