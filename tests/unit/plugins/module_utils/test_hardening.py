# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One test per hole of the security review (issue "Harden the emitted Istio configuration",
docs/security.md). Each one fails on the builder output before the fix."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils import builder
from ansible_collections.meshguard.egress.plugins.module_utils.policy import PolicyError, normalize_policy
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils import authz_eval

SEED = {"rules": [{"name": "baidu", "hosts": ["www.baidu.com"], "tls": "originate",
                   "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]}]}
GATEWAY_LABELS = {"app": "istio-egressgateway", "istio": "egressgateway"}


def _objs(raw):
    return builder.build_resources(normalize_policy(copy.deepcopy(raw)))


def _kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def _visible_in(obj, namespace):
    export = obj["spec"].get("exportTo") or ["*"]
    return "*" in export or namespace in export or ("." in export and obj["metadata"]["namespace"] == namespace)


def test_1_originate_tls_port_is_visible_to_the_gateway_namespace_only():
    objs = _objs(SEED)
    entries = _kind(objs, "ServiceEntry")
    for namespace, want in (("bookinfo", [("www.baidu.com", 80)]),
                            ("istio-system", [("www.baidu.com", 80), ("www.baidu.com.egress.meshguard.internal", 443)])):
        seen = sorted((h, p["number"]) for se in entries if _visible_in(se, namespace)
                      for h in se["spec"]["hosts"] for p in se["spec"]["ports"])
        assert seen == want, namespace
    private = [se for se in entries if se["spec"]["exportTo"] == ["."]][0]
    assert private["metadata"]["namespace"] == "istio-system"
    assert private["spec"]["endpoints"] == [{"address": "www.baidu.com"}]
    # the gateway routes to the alias; no route a sidecar sees leads to port 443
    routes = [(vs["spec"]["exportTo"], r["route"][0]["destination"]) for vs in _kind(objs, "VirtualService")
              for r in vs["spec"].get("http", [])]
    assert [d for export, d in routes if export == ["*"] and d["port"]["number"] == 443] == []
    assert {"host": "www.baidu.com.egress.meshguard.internal", "port": {"number": 443}} in [d for e, d in routes]


def test_1_the_gateway_strips_internal_headers_before_the_request_leaves():
    for tls in ("originate", "none"):
        vs = [o for o in _kind(_objs({"rules": [dict(SEED["rules"][0], tls=tls)]}), "VirtualService")
              if o["spec"]["gateways"] != ["mesh"]][0]
        removed = vs["spec"]["http"][0]["headers"]["request"]["remove"]
        assert "x-forwarded-client-cert" in removed and "x-forwarded-for" in removed


def test_2_network_policies_cover_every_namespace_but_the_gateways_and_allow_no_relay():
    raw = dict(SEED, network_policy={"enabled": True, "namespace_selector": {}},
               network_policy_discovered=["bookinfo", "default", "istio-system", "kube-system", "ci"])
    objs = _kind(_objs(raw), "NetworkPolicy")
    assert [o["metadata"]["namespace"] for o in objs] == ["bookinfo", "ci", "default"]
    for obj in objs:
        for rule in obj["spec"]["egress"]:
            for peer in rule["to"]:
                # never `namespaceSelector: {}` (any pod of any namespace, an uncovered one included)
                assert peer.get("namespaceSelector") != {}, peer
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["cidr"].split("/")[1] != "0"
        covered = obj["spec"]["egress"][0]["to"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
        assert covered == ["bookinfo", "ci", "default"]


def test_2_render_says_which_namespaces_are_covered_and_that_others_can_bypass():
    policy = normalize_policy(dict(SEED, network_policy={"enabled": True, "namespaces": ["bookinfo"]}))
    line = builder.summary_lines(policy, builder.build_resources(policy))[0]
    assert "cover bookinfo" in line and "any other namespace" in line and "can still bypass" in line
    with pytest.raises(PolicyError, match="covers nothing"):
        normalize_policy(dict(SEED, network_policy={"enabled": True}))


def test_3_origination_checks_the_servers_name():
    for extra in ({}, {"credential_name": "client-cert"}):
        rule = dict(SEED["rules"][0], **extra)
        drs = [o for o in _kind(_objs({"rules": [rule]}), "DestinationRule") if o["spec"].get("workloadSelector")]
        tls = drs[0]["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]
        assert tls["sni"] == "www.baidu.com" and tls["subjectAltNames"] == ["www.baidu.com"], tls


def test_4_passthrough_hosts_get_one_gateway_server_each():
    raw = {"rules": [{"name": "git", "tls": "passthrough", "hosts": ["a.example.com", "b.example.com"],
                      "allow": ["ci"]}]}
    servers = _kind(_objs(raw), "Gateway")[0]["spec"]["servers"]
    assert [s["hosts"] for s in servers] == [["./a.example.com"], ["./b.example.com"]]
    names = [s["port"]["name"] for s in servers]
    assert len(set(names)) == len(names)


def test_5_two_policies_with_the_same_rule_names_build_disjoint_objects():
    def identities(name):
        return set((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
                   for o in _objs(dict(SEED, policy_name=name))
                   if o["metadata"]["labels"]["egress.meshguard.io/component"] != "gateway")
    default, team = identities("default"), identities("team")
    assert not default & team
    assert ("AuthorizationPolicy", "istio-system", "meshguard-allow-nothing") in default  # the seed stays readable
    assert ("AuthorizationPolicy", "istio-system", "meshguard-team--allow-nothing") in team
    assert ("ServiceEntry", "istio-system", "meshguard-team--baidu") in team


@pytest.mark.parametrize("field, value", [("policy_name", "a--b"), ("name_prefix", "x--")])
def test_5_the_name_separator_is_reserved(field, value):
    with pytest.raises(PolicyError, match=field):
        normalize_policy(dict(SEED, **{field: value}))


@pytest.mark.parametrize("name", ["a--b", "allow-nothing", "anti-bypass", "outbound-policy"])
def test_5_rule_names_that_would_collide_are_refused(name):
    with pytest.raises(PolicyError, match=r"rules\[0\] \(%s\)\.name" % name):
        normalize_policy({"rules": [dict(SEED["rules"][0], name=name)]})


def test_6_gateway_servers_bind_only_virtual_services_of_their_namespace():
    for tls in ("originate", "passthrough", "none"):
        rule = dict(SEED["rules"][0], tls=tls)
        for server in _kind(_objs({"rules": [rule]}), "Gateway")[0]["spec"]["servers"]:
            assert all(h.startswith("./") for h in server["hosts"]), server


def test_7_whole_namespace_callers_keep_the_trust_domain():
    raw = {"trust_domain": "Corp.Example", "rules": [dict(SEED["rules"][0], allow=["reports"])]}
    ap = [o for o in _kind(_objs(raw), "AuthorizationPolicy") if o["spec"].get("rules")][0]
    assert ap["spec"]["rules"][0]["from"] == [{"source": {"principals": ["corp.example/ns/reports/sa/*"]}}]
    request = {"protocol": "http", "port": 8080, "host": "www.baidu.com", "method": "GET", "path": "/",
               "namespace": "reports", "principal": "corp.example/ns/reports/sa/app"}
    assert authz_eval.allowed([ap], request, GATEWAY_LABELS)
    assert not authz_eval.allowed([ap], dict(request, principal="other.example/ns/reports/sa/app"), GATEWAY_LABELS)


def test_8_host_match_is_exact_for_the_host_with_any_port_and_no_other_host():
    ap = [o for o in _kind(_objs(SEED), "AuthorizationPolicy") if o["spec"].get("rules")][0]
    assert ap["spec"]["rules"][0]["to"][0]["operation"]["hosts"] == ["www.baidu.com", "www.baidu.com:*"]
    base = {"protocol": "http", "port": 8080, "method": "GET", "path": "/", "namespace": "bookinfo",
            "principal": "cluster.local/ns/bookinfo/sa/bookinfo-productpage"}
    for host, allowed in (("www.baidu.com", True), ("WWW.BAIDU.COM", True), ("www.baidu.com:80", True),
                          ("www.baidu.com:443", True), ("www.baidu.com.evil.example", False),
                          ("evil.www.baidu.com", False), ("www.baidu.community", False), ("xwww.baidu.com", False)):
        assert authz_eval.allowed([ap], dict(base, host=host), GATEWAY_LABELS) is allowed, host


def test_the_gateway_namespace_is_reserved_for_the_gateway():
    with pytest.raises(PolicyError, match=r"rules\[0\] \(baidu\)\.allow.*reserved for the gateway"):
        normalize_policy({"rules": [dict(SEED["rules"][0], allow=["istio-system/app"])]})


def test_an_empty_policy_needs_an_explicit_opt_in():
    with pytest.raises(PolicyError, match="allow_empty"):
        normalize_policy({})
    with pytest.raises(PolicyError, match="allow_empty"):
        normalize_policy({"rules": []})
    assert normalize_policy({"rules": [], "allow_empty": True}).rules == []


def test_1_no_rule_may_name_a_host_under_the_gateways_alias_domain():
    with pytest.raises(PolicyError, match=r"hosts\[0\].*egress.meshguard.internal"):
        normalize_policy({"rules": [dict(SEED["rules"][0], hosts=["www.baidu.com.egress.meshguard.internal"])]})
