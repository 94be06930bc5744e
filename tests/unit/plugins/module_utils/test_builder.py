# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The builder emits Istio's documented shapes, with ownership labels, deterministically."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import os
import random
import re

import yaml

from ansible_collections.meshguard.egress.plugins.module_utils import builder
from ansible_collections.meshguard.egress.plugins.module_utils.apply import meshconfig
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.render import render_files

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "seed-baidu.expected.txt")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _build(raw):
    return builder.build_resources(normalize_policy(copy.deepcopy(raw)))


def _by_kind(objs, kind):
    """Objects of a kind; for AuthorizationPolicy only the per-rule ones (not allow-nothing)."""
    return [o for o in objs if o["kind"] == kind
            and not (kind == "AuthorizationPolicy" and "egress.meshguard.io/rule" not in o["metadata"]["labels"])]


def _rule(**kw):
    rule = {"name": "r", "hosts": ["h.example.com"], "allow": ["ns1/sa1"]}
    rule.update(kw)
    return rule


def test_seed_scenario_matches_hand_written_golden(example):
    with open(GOLDEN) as handle:
        text = handle.read()
    # The subset name convention: <rule>-<first host label>-<sha256(policy/rule/host)[:10]>.
    subset = "baidu-www-" + hashlib.sha256(b"default/baidu/www.baidu.com").hexdigest()[:10]
    expected = list(yaml.safe_load_all(text.replace("SUBSET", subset)))
    groups = dict(builder.build_groups(normalize_policy(example("baidu"))))
    assert groups["rules/baidu"] == expected


def test_seed_scenario_gateway_is_injected_istio_gateway(example):
    groups = dict(builder.build_groups(normalize_policy(example("baidu"))))
    objs = groups["gateway/istio-egressgateway"]
    assert [o["kind"] for o in objs] == ["ServiceAccount", "Role", "RoleBinding", "Service", "Deployment"]
    deployment = objs[-1]
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {"inject.istio.io/templates": "gateway"}
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["labels"]["istio"] == "egressgateway"
    container = template["spec"]["containers"][0]
    assert container["image"] == "auto"
    assert sorted(p["containerPort"] for p in container["ports"]) == [8080, 8443, 15090]
    service = objs[3]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http2", 80, 8080), ("https", 443, 8443)]
    assert "securityContext" not in template["spec"]  # no privileged ports, no sysctl


def test_privileged_container_ports_get_the_unprivileged_port_sysctl():
    objs = _build({"rules": [_rule()], "gateway": {"container_ports": {"http": 80, "https": 443}}})
    pod = _by_kind(objs, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
    policy = _by_kind(objs, "AuthorizationPolicy")[0]
    assert policy["spec"]["rules"][0]["to"][0]["operation"]["ports"] == ["80"]


def test_passthrough_routes_by_sni_and_authorizes_by_sni():
    objs = _build({"rules": [_rule(tls="passthrough", hosts=["api.github.com"])]})
    assert not [o for o in _by_kind(objs, "DestinationRule") if o["spec"]["host"] == "api.github.com"]
    se = _by_kind(objs, "ServiceEntry")[0]["spec"]
    assert se["ports"] == [{"number": 443, "name": "tls", "protocol": "TLS"}]
    gw = _by_kind(objs, "Gateway")[0]["spec"]["servers"][0]
    assert gw["port"]["number"] == 443 and gw["port"]["protocol"] == "TLS"
    assert gw["hosts"] == ["./api.github.com"]
    assert gw["tls"] == {"mode": "ISTIO_MUTUAL"}
    mesh_vs, gateway_vs = [o["spec"] for o in _by_kind(objs, "VirtualService")]
    assert "http" not in mesh_vs and "tcp" not in mesh_vs
    assert mesh_vs["tls"][0]["match"] == [{"gateways": ["mesh"], "port": 443, "sniHosts": ["api.github.com"]}]
    assert mesh_vs["tls"][0]["route"][0]["destination"]["port"] == {"number": 443}
    assert (gateway_vs["gateways"], gateway_vs["exportTo"]) == (["istio-system/meshguard-r"], ["."])
    assert gateway_vs["tcp"][0]["match"] == [{"gateways": ["istio-system/meshguard-r"], "port": 443}]
    assert gateway_vs["tcp"][0]["route"][0]["destination"] == {"host": "api.github.com", "port": {"number": 443}}
    subset = _by_kind(objs, "DestinationRule")[0]["spec"]["subsets"][0]
    assert subset["trafficPolicy"]["portLevelSettings"][0] == {
        "port": {"number": 443}, "tls": {"mode": "ISTIO_MUTUAL", "sni": "api.github.com"}}
    ap_rule = _by_kind(objs, "AuthorizationPolicy")[0]["spec"]["rules"][0]
    assert ap_rule["to"] == [{"operation": {"ports": ["8443"]}}]
    assert ap_rule["when"] == [{"key": "connection.sni", "values": ["api.github.com"]}]


def test_plain_http_mode_forwards_http_without_origination():
    objs = _build({"rules": [_rule(tls="none", port=8080)]})
    assert [o["spec"]["host"] for o in _by_kind(objs, "DestinationRule")] == [
        "istio-egressgateway.istio-system.svc.cluster.local"]
    se = _by_kind(objs, "ServiceEntry")[0]["spec"]
    assert se["ports"] == [{"number": 8080, "name": "http", "protocol": "HTTP"}]
    mesh_http, gateway_http = [o["spec"]["http"] for o in _by_kind(objs, "VirtualService")]
    assert mesh_http[0]["match"] == [{"gateways": ["mesh"], "port": 8080}]
    assert mesh_http[0]["route"][0]["destination"]["port"] == {"number": 80}
    assert gateway_http[0]["route"][0]["destination"] == {"host": "h.example.com", "port": {"number": 8080}}
    assert not [o for o in _by_kind(objs, "ServiceEntry") if o["spec"]["exportTo"] == ["."]]
    operation = _by_kind(objs, "AuthorizationPolicy")[0]["spec"]["rules"][0]["to"][0]["operation"]
    assert operation["hosts"] == ["h.example.com", "h.example.com:*"]


def test_mutual_tls_origination_with_client_certificate():
    objs = _build({"rules": [_rule(credential_name="client-cert", port=8443)]})
    dr = [o for o in _by_kind(objs, "DestinationRule")
          if o["spec"]["host"] == "h.example.com.egress.meshguard.internal"][0]
    assert dr["spec"]["workloadSelector"] == {"matchLabels": {"app": "istio-egressgateway", "istio": "egressgateway"}}
    assert dr["spec"]["trafficPolicy"]["portLevelSettings"] == [
        {"port": {"number": 8443},
         "tls": {"mode": "MUTUAL", "credentialName": "client-cert", "sni": "h.example.com",
                 "subjectAltNames": ["h.example.com"]}}]


def test_namespace_and_principal_sources_and_l7_limits():
    objs = _build({"trust_domain": "corp.example", "rules": [_rule(
        allow=["shop/checkout", "reports", "shop/refunds"], http={"methods": ["POST", "GET"], "paths": ["/v1/*"]})]})
    rule = _by_kind(objs, "AuthorizationPolicy")[0]["spec"]["rules"][0]
    assert rule["from"] == [{"source": {"principals": [
        "corp.example/ns/reports/sa/*", "corp.example/ns/shop/sa/checkout", "corp.example/ns/shop/sa/refunds"]}}]
    assert rule["to"][0]["operation"]["methods"] == ["GET", "POST"]
    assert rule["to"][0]["operation"]["paths"] == ["/v1/*"]


def test_multiple_hosts_get_one_virtual_service_and_subset_each():
    objs = _build({"rules": [_rule(hosts=["b.example.com", "a.example.com"])]})
    assert [o["metadata"]["name"] for o in _by_kind(objs, "VirtualService")] == [
        "meshguard-r.a.example.com", "meshguard-r.b.example.com",
        "meshguard-r-gateway.a.example.com", "meshguard-r-gateway.b.example.com"]
    subsets = _by_kind(objs, "DestinationRule")[0]["spec"]["subsets"]
    assert [s["trafficPolicy"]["portLevelSettings"][0]["tls"]["sni"] for s in subsets] == [
        "a.example.com", "b.example.com"]
    assert len(set(s["name"] for s in subsets)) == 2


def test_subset_names_are_unique_dns_labels_even_for_long_names():
    rules = [_rule(name="r" * 60, hosts=["x" * 60 + ".example.com", "x" * 60 + ".example.org"]),
             _rule(name="r" * 59, hosts=["y.example.com"])]
    objs = _build({"rules": rules})
    names = [s["name"] for o in _by_kind(objs, "DestinationRule") for s in o["spec"].get("subsets", [])]
    assert len(names) == len(set(names)) == 3
    assert all(DNS_LABEL.match(n) for n in names), names


def test_dry_run_annotation():
    objs = _build({"rules": [_rule(dry_run=True)]})
    assert _by_kind(objs, "AuthorizationPolicy")[0]["metadata"]["annotations"] == {"istio.io/dry-run": "true"}
    objs = _build({"rules": [_rule()]})
    assert "annotations" not in _by_kind(objs, "AuthorizationPolicy")[0]["metadata"]


def test_gateway_is_default_deny_with_istios_allow_nothing_policy():
    objs = [o for o in _build({"rules": [], "allow_empty": True}) if o["kind"] == "AuthorizationPolicy"]
    assert [(o["metadata"]["name"], o["spec"]) for o in objs] == [
        ("meshguard-allow-nothing", {"selector": {"matchLabels": {"app": "istio-egressgateway",
                                                                  "istio": "egressgateway"}},
                                     "action": "ALLOW"})]


def test_older_api_versions_are_used_everywhere():
    objs = _build({"rules": [_rule()], "mesh": {"method": "sidecar"},
                   "api_versions": {"networking": "networking.istio.io/v1alpha3",
                                    "security": "security.istio.io/v1beta1"}})
    versions = set((o["kind"], o["apiVersion"]) for o in objs if "istio.io" in o["apiVersion"])
    assert versions == set([("ServiceEntry", "networking.istio.io/v1alpha3"), ("Gateway", "networking.istio.io/v1alpha3"),
                            ("DestinationRule", "networking.istio.io/v1alpha3"),
                            ("VirtualService", "networking.istio.io/v1alpha3"),
                            ("Sidecar", "networking.istio.io/v1alpha3"),
                            ("AuthorizationPolicy", "security.istio.io/v1beta1")])


def test_revision_labels_the_gateway_for_that_revision():
    objs = _build({"rules": [_rule()], "gateway": {"revision": "canary"}})
    labels = _by_kind(objs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["istio.io/rev"] == "canary" and "sidecar.istio.io/inject" not in labels


def test_existing_gateway_is_not_built():
    objs = _build({"rules": [_rule()], "gateway": {"manage": False}})
    assert not set(o["kind"] for o in objs) & set(["Deployment", "Service", "ServiceAccount", "Role"])


def test_sidecar_method_scopes():
    objs = _build({"rules": [_rule()], "mesh": {"method": "sidecar", "scope": "namespaces",
                                                "namespaces": ["b", "a"], "allow_fail_open": True}})
    sidecars = _by_kind(objs, "Sidecar")
    assert [s["metadata"]["namespace"] for s in sidecars] == ["a", "b"]
    assert sidecars[0]["spec"] == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    objs = _build({"rules": [_rule()], "mesh": {"method": "sidecar"}})
    assert [s["metadata"]["namespace"] for s in _by_kind(objs, "Sidecar")] == ["istio-system"]
    assert not _by_kind(_build({"rules": [_rule()]}), "Sidecar")
    assert not _by_kind(_build({"rules": [_rule()], "mesh": {"method": "sidecar", "manage": False}}), "Sidecar")


def test_anti_bypass_network_policies_cover_the_named_and_discovered_namespaces():
    rules = [_rule(allow=["shop/a", "reports"]), _rule(name="s", hosts=["s.example.com"], allow=["ci"])]
    objs = _build({"rules": rules, "network_policy": {"enabled": True, "namespaces": ["batch"],
                                                      "namespace_selector": {}},
                   "network_policy_discovered": ["shop", "istio-system", "kube-system", "web"]})
    policies = _by_kind(objs, "NetworkPolicy")
    # named + discovered, minus the gateway's namespace and the excluded control-plane ones
    assert [p["metadata"]["namespace"] for p in policies] == ["batch", "shop", "web"]
    spec = policies[0]["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Egress"]
    covered = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                     "values": ["batch", "shop", "web"]}]}
    assert spec["egress"][0] == {"to": [{"namespaceSelector": covered}]}
    assert spec["egress"][1] == {
        "to": [{"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                            "values": ["istio-system"]}]},
                "podSelector": {"matchLabels": {"app": "istio-egressgateway", "istio": "egressgateway"}}}],
        "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}]}
    assert not _by_kind(_build({"rules": [_rule()]}), "NetworkPolicy")


def test_every_object_is_labelled_and_namespaced(example, example_names):
    for name in example_names:
        policy = normalize_policy(example(name))
        for group, objs in builder.build_groups(policy):
            for obj in objs:
                labels = obj["metadata"]["labels"]
                assert labels["app.kubernetes.io/managed-by"] == "meshguard.egress"
                assert labels["egress.meshguard.io/policy"] == policy.policy_name
                assert obj["metadata"]["namespace"]
                if group.startswith("rules/"):
                    assert labels["egress.meshguard.io/rule"] == group.split("/", 1)[1]
                else:
                    assert "egress.meshguard.io/rule" not in labels


def test_output_is_deterministic_and_independent_of_input_order():
    rules = [_rule(name="r%d" % i, hosts=["h%d-%d.example.com" % (i, j) for j in range(3)],
                   allow=["ns%d/sa%d" % (i, k) for k in range(3)] + ["ns%d" % (i + 10)]) for i in range(6)]
    first = render_files(normalize_policy({"rules": rules}))
    shuffled = copy.deepcopy(rules)
    rng = random.Random(7)
    rng.shuffle(shuffled)
    for rule in shuffled:
        rng.shuffle(rule["hosts"])
        rng.shuffle(rule["allow"])
    assert render_files(normalize_policy({"rules": shuffled})) == first


def test_object_identities_are_unique(example, example_names):
    for name in example_names:
        objs = builder.build_resources(normalize_policy(example(name)))
        keys = [(o["apiVersion"].split("/")[0], o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
                for o in objs]
        assert len(keys) == len(set(keys)), name


def test_rendered_files_and_kustomization(example):
    files = render_files(normalize_policy(example("namespace-get-only")))
    assert sorted(files) == ["authorization/allow-nothing.yaml", "gateway/istio-egressgateway.yaml",
                             "kustomization.yaml", "mesh/outbound-policy.yaml", "network-policies/anti-bypass.yaml",
                             "rules/exchange-rates.yaml"]
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["resources"] == sorted(f for f in files if f != "kustomization.yaml")
    files = render_files(normalize_policy(example("baidu")))
    assert "mesh-config.yaml" in files
    assert "mesh-config.yaml" not in yaml.safe_load(files["kustomization.yaml"])["resources"]
    assert yaml.safe_load(files["mesh-config.yaml"]) == {
        "meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    docs = list(yaml.safe_load_all(files["rules/baidu.yaml"]))
    assert [d["kind"] for d in docs] == ["ServiceEntry", "Gateway", "DestinationRule", "VirtualService",
                                         "ServiceEntry", "VirtualService", "DestinationRule", "AuthorizationPolicy"]


def test_mesh_config_patch_keeps_other_settings():
    text = "accessLogFile: /dev/stdout\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"
    patched, changed = meshconfig.patch_mesh_config_text(text, "REGISTRY_ONLY")
    assert changed
    assert yaml.safe_load(patched) == {"accessLogFile": "/dev/stdout",
                                       "defaultConfig": {"discoveryAddress": "istiod.istio-system.svc:15012"},
                                       "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    again, changed = meshconfig.patch_mesh_config_text(patched, "REGISTRY_ONLY")
    assert (again, changed) == (patched, False)
    back, changed = meshconfig.patch_mesh_config_text(patched, "ALLOW_ANY")
    assert changed and yaml.safe_load(back)["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}
    assert meshconfig.patch_mesh_config_text("", "REGISTRY_ONLY")[1]


def test_mesh_config_descriptor(example):
    cfg = builder.mesh_config(normalize_policy(example("mixed")))
    assert (cfg["namespace"], cfg["configmap"], cfg["key"]) == ("istio-system", "istio-1-24-2", "mesh")
