# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property: for random valid policies, the (identity, host[, method, path]) requests the
emitted AuthorizationPolicies allow are exactly the declared ones, and no emitted policy
has an empty rule, an empty `from`, or a source that matches everyone.

The expectation is computed from the raw generated input, and the decision from the
emitted objects by an independent evaluator of Istio's semantics (authz_eval.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils import authz_eval
from ansible_collections.meshguard.egress.tests.unit.property_runs import examples

NAMESPACES = ["bookinfo", "shop", "ci", "team-x"]
ACCOUNTS = ["default", "productpage", "checkout", "runner"]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]
PATH_PATTERNS = ["/s", "/api/*", "/v1/latest", "*.json", "/status/*", "/"]
LABEL_WORDS = ["www", "api", "files", "edge", "x1", "cdn-2"]
PRINCIPAL = re.compile(r"[a-z0-9.-]+/ns/[a-z0-9-]+/sa/([a-z0-9.-]+|\*)")
TLDS = ["com", "org", "io", "example"]


@st.composite
def identities(draw):
    entries = draw(st.lists(st.tuples(st.sampled_from(NAMESPACES), st.none() | st.sampled_from(ACCOUNTS)),
                            min_size=1, max_size=4, unique=True))
    result = []
    for namespace, account in entries:
        form = draw(st.sampled_from(["dict", "string"]))
        if form == "string":
            result.append(namespace + ("/" + account if account else ""))
        else:
            entry = {"namespace": namespace}
            if account:
                entry["service_account"] = account
            result.append(entry)
    return result


@st.composite
def policies(draw):
    count = draw(st.integers(min_value=0, max_value=4))
    rules = []
    for index in range(count):
        tls = draw(st.sampled_from(["originate", "passthrough", "none"]))
        hosts = draw(st.lists(st.sampled_from(LABEL_WORDS), min_size=1, max_size=3, unique=True))
        tld = draw(st.sampled_from(TLDS))
        rule = {"name": "rule-%d" % index,
                # the rule index in the domain keeps hosts unique across rules
                "hosts": ["%s.svc%d.%s" % (h, index, tld) for h in hosts],
                "tls": tls, "allow": draw(identities())}
        if draw(st.booleans()):
            rule["port"] = draw(st.sampled_from([443, 8443, 9000] if tls != "none" else [80, 8080]))
        if tls != "passthrough" and draw(st.booleans()):
            http = {}
            if draw(st.booleans()):
                http["methods"] = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True))
            if draw(st.booleans()):
                http["paths"] = draw(st.lists(st.sampled_from(PATH_PATTERNS), min_size=1, max_size=3, unique=True))
            rule["http"] = http
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            rule["dry_run"] = True
        rules.append(rule)
    policy = {"rules": rules, "allow_empty": not rules,
              "trust_domain": draw(st.sampled_from(["cluster.local", "corp.example", "Corp.Example"]))}
    if draw(st.booleans()):
        policy["gateway"] = {"container_ports": draw(st.sampled_from([{"http": 80, "https": 443},
                                                                      {"http": 8080, "https": 8443}])),
                             "labels": {"istio": "egress", "team": draw(st.sampled_from(["a", "b"]))}}
    return policy


def _identity_of(entry):
    if isinstance(entry, str):
        namespace, dummy, account = entry.partition("/")
        return namespace, account or None
    return entry["namespace"], entry.get("service_account")


def _container_ports(raw):
    return (raw.get("gateway") or {}).get("container_ports") or {"http": 8080, "https": 8443}


def _pod_labels(raw):
    return dict((raw.get("gateway") or {}).get("labels") or {"app": "istio-egressgateway", "istio": "egressgateway"})


def _app_port(rule):
    if rule["tls"] == "originate":
        return 80
    return rule.get("port", 443 if rule["tls"] == "passthrough" else 80)


def _trust_domain(raw):
    return raw["trust_domain"].lower()


def _candidate_identities(raw):
    ids = set([("outsider", "default"), ("outsider", None)])
    for rule in raw["rules"]:
        for entry in rule["allow"]:
            namespace, account = _identity_of(entry)
            ids.add((namespace, account or "some-workload"))
            ids.add((namespace, "other-sa"))
            ids.add(("elsewhere", account or "default"))
    return sorted(ids, key=lambda i: (i[0], i[1] or ""))


def _concrete_paths(raw):
    paths = set(["/unlisted", "/"])
    for rule in raw["rules"]:
        for pattern in (rule.get("http") or {}).get("paths", []):
            if pattern.startswith("*"):
                paths.add("/x" + pattern[1:])
            elif pattern.endswith("*"):
                paths.add(pattern[:-1] + "deep/er")
            else:
                paths.add(pattern)
    return sorted(paths)


def _requests(raw):
    ports = _container_ports(raw)
    hosts = ["not-declared.example.org"]
    for rule in raw["rules"]:
        hosts.extend(rule["hosts"])
        # hosts that merely look like a declared one: the match must be exact for the host
        for host in rule["hosts"]:
            hosts.extend([host + ".evil.example", "x" + host, host + "x", "evil." + host])
    methods = sorted(set(METHODS[:2]) | set(m for r in raw["rules"] for m in (r.get("http") or {}).get("methods", [])))
    app_ports = sorted(set([80, 443] + [_app_port(r) for r in raw["rules"]]))
    callers = [(namespace, "%s/ns/%s/sa/%s" % (trust_domain, namespace, account or "default"))
               for namespace, account in _candidate_identities(raw)
               for trust_domain in (_trust_domain(raw), "other.example")]
    for namespace, principal in callers:
        identity = {"namespace": namespace, "principal": principal}
        for host in hosts:
            for port_kind in ("http", "https"):
                port = ports[port_kind]
                yield dict(identity, protocol="tcp", port=port, sni=host)
                for header in [host, host + ":12345"] + ["%s:%d" % (host, p) for p in app_ports]:
                    for method in methods:
                        for path in _concrete_paths(raw):
                            yield dict(identity, protocol="http", port=port, host=header, sni=host,
                                       method=method, path=path)


def _host_header_is(header, host):
    """Host header `header` names `host`, with or without a port."""
    return header == host or (header.startswith(host + ":") and header[len(host) + 1:].isdigit())


def _declared(raw, request, dry_run):
    """Is the request one the input declares (for enforced or for dry-run rules)?"""
    ports = _container_ports(raw)
    ns = request["namespace"]
    account = request["principal"].rsplit("/", 1)[1]
    if not request["principal"].startswith(_trust_domain(raw) + "/"):
        return False  # only identities of the mesh's own trust domain are ever declared
    for rule in raw["rules"]:
        if bool(rule.get("dry_run")) != dry_run:
            continue
        if rule["tls"] == "passthrough":
            # (identity, host) by SNI on the gateway's TLS port, whatever the framing inside
            if request["port"] != ports["https"] or request["sni"] not in rule["hosts"]:
                continue
        else:
            if request["protocol"] != "http" or request["port"] != ports["http"]:
                continue
            # the declared host, with or without a port (any port: the route, not the Host
            # header's port, decides where the request goes)
            if not any(_host_header_is(request["host"], h) for h in rule["hosts"]):
                continue
            http = rule.get("http") or {}
            if "methods" in http and request["method"] not in http["methods"]:
                continue
            if "paths" in http and not any(authz_eval.string_match(p, request["path"]) for p in http["paths"]):
                continue
        for entry in rule["allow"]:
            e_ns, e_sa = _identity_of(entry)
            if e_ns == ns and (e_sa is None or e_sa == account):
                return True
    return False


def _authorization_policies(raw):
    objs = build_resources(normalize_policy(copy.deepcopy(raw)))
    return [o for o in objs if o["kind"] == "AuthorizationPolicy"]


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_emitted_policies_allow_exactly_the_declared_requests(raw):
    aps = _authorization_policies(raw)
    labels = _pod_labels(raw)
    has_dry_run = any(r.get("dry_run") for r in raw["rules"])
    for request in _requests(raw):
        assert authz_eval.allowed(aps, request, labels) == _declared(raw, request, dry_run=False), request
        if has_dry_run:
            assert authz_eval.allowed(aps, request, labels, dry_run=True) == _declared(raw, request, True), request


@settings(max_examples=examples(200), deadline=None)
@given(policies())
def test_no_policy_has_an_empty_rule_from_or_catch_all_source(raw):
    aps = _authorization_policies(raw)
    enforced = [p for p in aps if not authz_eval.is_dry_run(p)]
    assert enforced, "the gateway must always carry an enforced ALLOW policy (default deny)"
    for policy in aps:
        spec = policy["spec"]
        assert spec["action"] == "ALLOW"
        assert spec["selector"]["matchLabels"], "a policy without selector applies to the whole namespace"
        for rule in spec.get("rules", []):
            assert rule, "empty rule {} matches every request"
            assert rule.get("from"), "a rule without `from` matches every caller"
            assert rule.get("to"), "a rule without `to` matches every host"
            for source in rule["from"]:
                fields = source.get("source") or {}
                assert fields and all(fields.values()), "empty source matches every caller"
                assert set(fields) == set(["principals"]), "only principals keep the trust domain: %r" % fields
                for value in fields["principals"]:
                    # a wildcard only as the whole-namespace form <td>/ns/<ns>/sa/*
                    assert PRINCIPAL.fullmatch(value), "principal %r" % value
                    assert value.startswith(_trust_domain(raw) + "/ns/")


def test_no_rules_means_the_gateway_denies_everything():
    aps = _authorization_policies({"rules": [], "allow_empty": True, "trust_domain": "cluster.local"})
    request = {"protocol": "http", "port": 8080, "host": "www.baidu.com", "namespace": "bookinfo",
               "principal": "cluster.local/ns/bookinfo/sa/productpage", "method": "GET", "path": "/"}
    labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
    assert not authz_eval.allowed(aps, request, labels)


def test_evaluator_can_tell_allow_from_deny():
    """The evaluator is not vacuous: it allows the declared caller and denies the others."""
    raw = {"rules": [{"name": "baidu", "hosts": ["www.baidu.com"], "allow": ["bookinfo/productpage"],
                      "http": {"methods": ["GET"]}}], "trust_domain": "cluster.local"}
    aps = _authorization_policies(raw)
    labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
    ok = {"protocol": "http", "port": 8080, "host": "www.baidu.com", "namespace": "bookinfo",
          "principal": "cluster.local/ns/bookinfo/sa/productpage", "method": "GET", "path": "/s"}
    assert authz_eval.allowed(aps, ok, labels)
    assert not authz_eval.allowed(aps, dict(ok, principal="cluster.local/ns/bookinfo/sa/reviews"), labels)
    assert not authz_eval.allowed(aps, dict(ok, method="POST"), labels)
    assert not authz_eval.allowed(aps, dict(ok, host="www.google.com"), labels)
    assert not authz_eval.allowed(aps, dict(ok, port=8443), labels)
    # and the generic semantics it models: no ALLOW policy at all allows everything
    assert authz_eval.allowed([], ok, labels)


def _identities(objs):
    return set((o["apiVersion"].split("/")[0], o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
               for o in objs)


def _subsets(objs):
    return set(s["name"] for o in objs if o["kind"] == "DestinationRule" for s in o["spec"].get("subsets", []))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(policies(), min_size=2, max_size=4),
       st.lists(st.sampled_from(["default", "team-a", "team-a-b", "team", "a", "b-default"]),
                min_size=4, max_size=4, unique=True))
def test_independently_named_policies_never_share_an_object_identity(raws, names):
    """Policies written independently (same rule names, same gateway, both with their
    allow-nothing) build disjoint objects and disjoint gateway subsets, so applying or pruning
    one never overwrites or deletes another's. Host clashes between policies are refused at
    apply time, so each policy gets its own hosts here."""
    seen, seen_subsets = {}, {}
    for index, (raw, name) in enumerate(zip(raws, names)):
        raw = copy.deepcopy(raw)
        raw["policy_name"] = name
        for rule in raw["rules"]:
            rule["hosts"] = ["p%d-%s" % (index, host) for host in rule["hosts"]]
        objs = build_resources(normalize_policy(raw))
        objs = [o for o in objs if o["metadata"]["labels"]["egress.meshguard.io/component"] != "gateway"]
        for ident in _identities(objs):
            assert ident not in seen, "%r built by policies %s and %s" % (ident, seen[ident], name)
            seen[ident] = name
        for subset in _subsets(objs):
            assert subset not in seen_subsets, "subset %s of policies %s and %s" % (subset, seen_subsets[subset], name)
            seen_subsets[subset] = name


@settings(max_examples=examples(150), deadline=None)
@given(policies())
def test_no_client_visible_service_entry_exposes_a_tls_port_for_an_originate_host(raw):
    """A TLS port of an originate host visible outside the gateway's namespace gives every
    sidecar a direct TLS route to the host, skipping the gateway (docs/security.md)."""
    policy = normalize_policy(copy.deepcopy(raw))
    originate_hosts = set(h for rule in policy.rules if rule.tls == "originate" for h in rule.hosts)
    for obj in build_resources(policy):
        if obj["kind"] != "ServiceEntry" or not originate_hosts & set(obj["spec"]["hosts"]):
            continue
        tls_ports = [p for p in obj["spec"]["ports"] if p["protocol"] in ("HTTPS", "TLS")]
        if obj["spec"]["exportTo"] != ["."]:
            assert not tls_ports, obj
        else:
            assert obj["metadata"]["namespace"] == policy.gateway["namespace"]
