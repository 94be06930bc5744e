# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input fails before anything is built, with a message naming the rule and the field."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils.policy import PolicyError, normalize_policy


def _rule(**overrides):
    rule = {"name": "baidu", "hosts": ["www.baidu.com"],
            "allow": [{"namespace": "bookinfo", "service_account": "productpage"}]}
    rule.update(overrides)
    return rule


def _policy(*rules, **top):
    policy = {"rules": list(rules) if rules else [_rule()]}
    policy.update(top)
    return policy


GOOD = _rule()
OTHER = _rule(name="github", hosts=["api.github.com"])

# (id, policy, where the problem is, words the message must contain)
BAD_INPUTS = [
    ("duplicate-rule-name", _policy(GOOD, _rule(hosts=["example.com"])), "rules[1] (baidu).name",
     "duplicate rule name"),
    ("rule-name-uppercase", _policy(_rule(name="Baidu")), "rules[0] (Baidu).name", "DNS-1123 label"),
    ("rule-name-trailing-newline", _policy(_rule(name="baidu\n")), "rules[0] (baidu\n).name", "DNS-1123 label"),
    ("allow-namespace-trailing-newline", _policy(_rule(allow=[{"namespace": "bookinfo\n"}])),
     "rules[0] (baidu).allow[0].namespace", "not a valid namespace"),
    ("gateway-label-trailing-newline", _policy(gateway={"labels": {"istio": "egress\n"}}), "gateway.labels.istio",
     "not a valid label value"),
    ("rule-name-missing", _policy({"hosts": ["www.baidu.com"], "allow": ["bookinfo"]}), "rules[0].name",
     "is required"),
    ("rule-name-too-long", _policy(_rule(name="a" * 64)), "rules[0] (%s).name" % ("a" * 64), "at most 63"),
    ("hosts-missing", _policy({"name": "baidu", "allow": ["bookinfo"]}), "rules[0] (baidu).hosts", "is required"),
    ("hosts-empty", _policy(_rule(hosts=[])), "rules[0] (baidu).hosts", "must not be empty"),
    ("hosts-not-a-list", _policy(_rule(hosts="www.baidu.com")), "rules[0] (baidu).hosts", "must be a list"),
    ("host-wildcard", _policy(_rule(hosts=["*.baidu.com"])), "rules[0] (baidu).hosts[0]", "wildcard"),
    ("host-star", _policy(_rule(hosts=["*"])), "rules[0] (baidu).hosts[0]", "wildcard"),
    ("host-with-scheme", _policy(_rule(hosts=["https://www.baidu.com"])), "rules[0] (baidu).hosts[0]",
     "without scheme"),
    ("host-with-port", _policy(_rule(hosts=["www.baidu.com:443"])), "rules[0] (baidu).hosts[0]", "use `port`"),
    ("host-ip", _policy(_rule(hosts=["10.1.2.3"])), "rules[0] (baidu).hosts[0]", "IP addresses"),
    ("host-single-label", _policy(_rule(hosts=["localhost"])), "rules[0] (baidu).hosts[0]",
     "fully qualified"),
    ("host-in-cluster", _policy(_rule(hosts=["reviews.bookinfo.svc.cluster.local"])),
     "rules[0] (baidu).hosts[0]", "in-cluster"),
    ("host-trailing-dot", _policy(_rule(hosts=["www.baidu.com."])), "rules[0] (baidu).hosts[0]", "trailing dot"),
    ("host-uppercase", _policy(_rule(hosts=["WWW.baidu.com"])), "rules[0] (baidu).hosts[0]", "lowercase"),
    ("host-bad-label", _policy(_rule(hosts=["-www.baidu.com"])), "rules[0] (baidu).hosts[0]", "label"),
    ("host-duplicate", _policy(_rule(hosts=["www.baidu.com", "www.baidu.com"])), "rules[0] (baidu).hosts[1]",
     "duplicate host"),
    ("host-two-rules-different-tls", _policy(GOOD, _rule(name="baidu-tls", tls="passthrough")),
     "rules[1] (baidu-tls).hosts", "one host has one tls mode"),
    ("host-two-rules-same-tls", _policy(GOOD, _rule(name="baidu-again")), "rules[1] (baidu-again).hosts",
     "already declared by rules[0] (baidu)"),
    ("tls-unknown", _policy(_rule(tls="mtls")), "rules[0] (baidu).tls", "not one of originate, passthrough, none"),
    ("port-zero", _policy(_rule(port=0)), "rules[0] (baidu).port", "out of range"),
    ("port-too-big", _policy(_rule(port=70000)), "rules[0] (baidu).port", "out of range"),
    ("port-not-a-number", _policy(_rule(port="https")), "rules[0] (baidu).port", "must be an integer"),
    ("port-boolean", _policy(_rule(port=True)), "rules[0] (baidu).port", "boolean"),
    ("originate-on-port-80", _policy(_rule(port=80)), "rules[0] (baidu).port", "application-facing"),
    ("allow-empty", _policy(_rule(allow=[])), "rules[0] (baidu).allow", "must not be empty"),
    ("allow-missing", _policy({"name": "baidu", "hosts": ["www.baidu.com"]}), "rules[0] (baidu).allow",
     "is required"),
    ("sa-without-namespace", _policy(_rule(allow=[{"service_account": "productpage"}])),
     "rules[0] (baidu).allow[0].namespace", "only meaningful inside a namespace"),
    ("sa-string-without-namespace", _policy(_rule(allow=["/productpage"])), "rules[0] (baidu).allow[0].namespace",
     "only meaningful inside a namespace"),
    ("allow-namespace-wildcard", _policy(_rule(allow=["*"])), "rules[0] (baidu).allow[0].namespace",
     "wildcards are not allowed"),
    ("allow-sa-wildcard", _policy(_rule(allow=["bookinfo/*"])), "rules[0] (baidu).allow[0].service_account",
     "wildcards are not allowed"),
    ("allow-bad-namespace", _policy(_rule(allow=[{"namespace": "Book_Info"}])),
     "rules[0] (baidu).allow[0].namespace", "not a valid namespace"),
    ("allow-too-many-slashes", _policy(_rule(allow=["a/b/c"])), "rules[0] (baidu).allow[0]",
     "'namespace/service_account'"),
    ("allow-duplicate", _policy(_rule(allow=["bookinfo/productpage", {"namespace": "bookinfo",
                                                                      "service_account": "productpage"}])),
     "rules[0] (baidu).allow[1]", "duplicate entry"),
    ("allow-entry-wrong-type", _policy(_rule(allow=[42])), "rules[0] (baidu).allow[0]", "must be a mapping"),
    ("l7-with-passthrough", _policy(_rule(tls="passthrough", http={"methods": ["GET"]})), "rules[0] (baidu).http",
     "passthrough"),
    ("method-lowercase", _policy(_rule(http={"methods": ["get"]})), "rules[0] (baidu).http.methods[0]",
     "not an HTTP method"),
    ("methods-empty", _policy(_rule(http={"methods": []})), "rules[0] (baidu).http.methods", "must not be empty"),
    ("path-star", _policy(_rule(http={"paths": ["*"]})), "rules[0] (baidu).http.paths[0]", "every path"),
    ("path-relative", _policy(_rule(http={"paths": ["api/v1"]})), "rules[0] (baidu).http.paths[0]",
     "must start with '/'"),
    ("path-inner-star", _policy(_rule(http={"paths": ["/api/*/items"]})), "rules[0] (baidu).http.paths[0]",
     "only allowed once"),
    ("path-query", _policy(_rule(http={"paths": ["/s?wd=x"]})), "rules[0] (baidu).http.paths[0]", "query"),
    ("unknown-rule-key", _policy(_rule(hostz=["x.com"])), "rules[0] (baidu)", "unknown key 'hostz'"),
    ("unknown-allow-key", _policy(_rule(allow=[{"namespace": "bookinfo", "sa": "productpage"}])),
     "rules[0] (baidu).allow[0]", "unknown key 'sa'"),
    ("unknown-http-key", _policy(_rule(http={"headers": {"x": "y"}})), "rules[0] (baidu).http",
     "unknown key 'headers'"),
    ("unknown-top-level-key", _policy(gateways={}), "policy", "unknown key 'gateways'"),
    ("dry-run-not-bool", _policy(_rule(dry_run="maybe")), "rules[0] (baidu).dry_run", "must be a boolean"),
    ("credential-with-passthrough", _policy(_rule(tls="passthrough", credential_name="client-cert")),
     "rules[0] (baidu).credential_name", "need tls originate"),
    ("ca-with-passthrough", _policy(_rule(tls="passthrough", ca_certificates="/etc/ca.pem")),
     "rules[0] (baidu).ca_certificates", "needs tls originate"),
    ("ca-with-credential", _policy(_rule(credential_name="client-cert", ca_certificates="/etc/ca.pem")),
     "rules[0] (baidu).ca_certificates", "Istio rejects both together"),
    ("ca-relative-path", _policy(_rule(ca_certificates="certs/ca.pem")), "rules[0] (baidu).ca_certificates",
     "absolute file path"),
    ("rules-not-a-list", {"rules": {"name": "baidu"}}, "rules", "must be a list"),
    ("rule-not-a-mapping", {"rules": ["baidu"]}, "rules[0]", "must be a mapping"),
    ("gateway-bad-label-value", _policy(gateway={"labels": {"istio": "egress gateway"}}), "gateway.labels.istio",
     "not a valid label value"),
    ("gateway-bad-label-key", _policy(gateway={"labels": {"bad key": "x"}}), "gateway.labels.bad key",
     "not a valid label key"),
    ("gateway-empty-labels", _policy(gateway={"labels": {}}), "gateway.labels", "must not be empty"),
    ("gateway-same-container-ports", _policy(gateway={"container_ports": {"http": 8443, "https": 8443}}),
     "gateway.container_ports", "must be different ports"),
    ("gateway-port-range", _policy(gateway={"service_ports": {"http": 0}}), "gateway.service_ports.http",
     "out of range"),
    ("gateway-unknown-key", _policy(gateway={"selector": {"istio": "egress"}}), "gateway", "unknown key 'selector'"),
    ("gateway-bad-name", _policy(gateway={"name": "Egress_GW"}), "gateway.name", "DNS-1123 label"),
    ("gateway-negative-replicas", _policy(gateway={"replicas": -1}), "gateway.replicas", "out of range"),
    ("mesh-configmap-with-namespaces", _policy(mesh={"scope": "namespaces", "namespaces": ["bookinfo"]}),
     "mesh.scope", "use method 'sidecar'"),
    ("mesh-namespaces-empty", _policy(mesh={"method": "sidecar", "scope": "namespaces"}), "mesh.namespaces",
     "at least one namespace"),
    ("mesh-namespace-not-a-string",
     _policy(mesh={"method": "sidecar", "scope": "namespaces", "namespaces": ["bookinfo", 3]}),
     "mesh.namespaces[1]", "must be a string"),
    ("netpol-namespace-invalid", _policy(network_policy={"enabled": True, "namespaces": ["Batch_Jobs"]}),
     "network_policy.namespaces[0]", "not a valid namespace"),
    ("mesh-bad-policy", _policy(mesh={"outbound_policy": "DENY_ALL"}), "mesh.outbound_policy",
     "not one of REGISTRY_ONLY, ALLOW_ANY"),
    ("api-version-unknown", _policy(api_versions={"networking": "networking.istio.io/v2"}),
     "api_versions.networking", "not one of"),
    ("trust-domain-spiffe", _policy(trust_domain="spiffe://cluster.local"), "trust_domain", "without spiffe://"),
    ("netpol-gateway-namespace", _policy(_rule(allow=["istio-system"]), network_policy={"enabled": True}),
     "rules[0] (baidu).allow", "gateway's namespace"),
    ("name-prefix-bad", _policy(name_prefix="Mesh_"), "name_prefix", "lowercase"),
]


@pytest.mark.parametrize("policy, where, words", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_rule_and_field(policy, where, words):
    with pytest.raises(PolicyError) as info:
        normalize_policy(copy.deepcopy(policy))
    matching = [e for e in info.value.errors if e.startswith(where + ": ") and words in e]
    assert matching, "no error at %r mentioning %r in:\n%s" % (where, words, "\n".join(info.value.errors))
    assert str(info.value).startswith("invalid meshguard.egress policy")


def test_at_least_thirty_distinct_bad_inputs():
    assert len(set(c[0] for c in BAD_INPUTS)) >= 30


def test_every_problem_is_reported_at_once():
    policy = _policy(_rule(hosts=["*.a.com"], port=0, allow=[]))
    with pytest.raises(PolicyError) as info:
        normalize_policy(policy)
    fields = sorted(e.split(":")[0] for e in info.value.errors)
    assert fields == ["rules[0] (baidu).allow", "rules[0] (baidu).hosts[0]", "rules[0] (baidu).port"]


def test_input_is_not_modified():
    policy = _policy(_rule(allow=["bookinfo/productpage"]))
    before = copy.deepcopy(policy)
    normalize_policy(policy)
    assert policy == before


def test_defaults():
    policy = normalize_policy({"rules": [{"name": "baidu", "hosts": ["www.baidu.com"], "allow": ["bookinfo"]}]})
    rule = policy.rules[0]
    assert (rule.tls, rule.port, rule.app_port, rule.dry_run) == ("originate", 443, 80, False)
    assert policy.gateway["name"] == "istio-egressgateway"
    assert policy.gateway["labels"] == {"app": "istio-egressgateway", "istio": "egressgateway"}
    assert policy.gateway["container_ports"] == {"http": 8080, "https": 8443}
    assert policy.mesh["configmap"] == "istio"
    assert policy.api_versions == {"networking": "networking.istio.io/v1", "security": "security.istio.io/v1"}


def test_ca_bundle_defaults_to_the_os_bundle_for_simple_origination_only():
    rules = normalize_policy({"rules": [
        _rule(name="a", hosts=["a.example.com"]),
        _rule(name="b", hosts=["b.example.com"], ca_certificates="/etc/pki/corp.pem"),
        _rule(name="c", hosts=["c.example.com"], credential_name="client-cert"),
        _rule(name="d", hosts=["d.example.com"], tls="passthrough")]}).rules
    assert [r.ca_certificates for r in rules] == ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/corp.pem",
                                                  None, None]


def test_port_defaults_follow_tls_mode():
    rules = normalize_policy({"rules": [
        _rule(name="a", hosts=["a.example.com"], tls="passthrough"),
        _rule(name="b", hosts=["b.example.com"], tls="none")]}).rules
    assert [(r.name, r.port, r.app_port) for r in rules] == [("a", 443, 443), ("b", 80, 80)]


def test_string_forms_are_accepted():
    rule = normalize_policy(_policy(_rule(port="8443", dry_run="yes",
                                          allow=["shop/checkout", "reports", {"namespace": "ci"}]))).rules[0]
    assert rule.port == 8443 and rule.dry_run is True
    assert [i.text() for i in rule.allow] == ["ci", "reports", "shop/checkout"]


def test_revision_selects_configmap():
    policy = normalize_policy(_policy(gateway={"revision": "canary"}))
    assert policy.mesh["configmap"] == "istio-canary"
    assert normalize_policy(_policy(mesh={"revision": "1-24"})).mesh["configmap"] == "istio-1-24"


def test_gateway_labels_default_from_name():
    gw = normalize_policy(_policy(gateway={"name": "egress"})).gateway
    assert gw["labels"] == {"app": "egress", "istio": "egress"}


def test_an_identity_is_shown_one_way():
    """Messages and the render summary print a whole namespace as `ns/*`, as verify's cases do."""
    from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources, summary_lines

    with pytest.raises(PolicyError) as err:
        normalize_policy(_policy(_rule(allow=["ci", {"namespace": "ci"}])))
    assert "rules[0] (baidu).allow[1]: duplicate entry 'ci/*'" in err.value.errors
    policy = normalize_policy(_policy(_rule(allow=["shop/checkout", "ci"])))
    assert summary_lines(policy, build_resources(policy))[1].endswith("<- ci/*, shop/checkout")


def test_http_limits_name_each_bad_or_repeated_item():
    with pytest.raises(PolicyError) as err:
        normalize_policy(_policy(_rule(http={"methods": ["GET", "get", "GET"], "paths": ["/a", "a", "/a", "/b*"]})))
    assert err.value.errors == [
        "rules[0] (baidu).http.methods[1]: 'get' is not an HTTP method (one of %s, uppercase)"
        % "CONNECT, DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, TRACE",
        "rules[0] (baidu).http.methods[2]: duplicate method 'GET'",
        "rules[0] (baidu).http.paths[1]: 'a': must start with '/' (or '*' for a suffix match)",
        "rules[0] (baidu).http.paths[2]: duplicate path '/a'",
    ]


def test_an_outbound_policy_that_fails_open_is_refused_unless_meant():
    """ALLOW_ANY with rules, or a namespace scope that leaves an allowed namespace out, lets pods
    reach hosts around the gateway (issue 13, item 6)."""
    with pytest.raises(PolicyError) as err:
        normalize_policy(_policy(_rule(), mesh={"outbound_policy": "ALLOW_ANY"}))
    assert err.value.errors == [
        "mesh.outbound_policy: ALLOW_ANY with rules fails open: every pod can still reach every host (the "
        "rules' hosts too, by address) without the egress gateway, so the rules restrict nothing; use "
        "REGISTRY_ONLY, or set mesh.allow_fail_open: true if that is what you mean (e.g. while migrating)"]
    scoped = {"method": "sidecar", "scope": "namespaces", "namespaces": ["shop"]}
    with pytest.raises(PolicyError) as err:
        normalize_policy(_policy(_rule(allow=["shop/checkout", "ci", "reports/app"]), mesh=scoped))
    assert err.value.errors == [
        "mesh.namespaces: does not cover ci, reports, which rules[0] (baidu) allows: pods there stay ALLOW_ANY "
        "and reach every host without the egress gateway; add them, or set mesh.allow_fail_open: true if that "
        "is what you mean (e.g. while migrating)"]
    # meant: accepted as written
    assert normalize_policy(_policy(_rule(), mesh={"outbound_policy": "ALLOW_ANY", "allow_fail_open": "yes"}))
    policy = normalize_policy(_policy(_rule(allow=["shop/checkout", "ci"]), mesh=dict(scoped, allow_fail_open=True)))
    assert policy.mesh["allow_fail_open"] is True
    # covered, or no rules: nothing to refuse
    assert normalize_policy(_policy(_rule(allow=["shop/checkout"]), mesh=scoped)).mesh["allow_fail_open"] is False
    assert normalize_policy({"rules": [], "allow_empty": True, "mesh": {"outbound_policy": "ALLOW_ANY"}})
