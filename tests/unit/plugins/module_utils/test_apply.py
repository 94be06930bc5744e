# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine (module_utils/apply/) and the mesh ConfigMap (module_utils/apply/meshconfig.py)
against an in-memory API (fake_k8s.FakeClient).

What the real API server does (server-side apply, dry run, strict validation, RBAC) is
proven in the lab tier (tests/lab/test_apply.py); these tests pin the engine's decisions:
order, what is sent, what is pruned, what is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

import pytest
import yaml

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import (
    describe, hosts_of, in_sync, object_key, with_hash)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.runner import apply_objects
from ansible_collections.meshguard.egress.plugins.module_utils.apply.waiter import wait_available
from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources, mesh_config
from ansible_collections.meshguard.egress.plugins.module_utils.kinds import phase_of
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    ANNOTATION_HOSTS, LABEL_COMPONENT, LABEL_POLICY, LABEL_RULE, MESH_PREVIOUS_ANNOTATION)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.meshconfig import mesh_configmap
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy

from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils.fake_k8s import FakeClient

ALL = ["rule", "default-deny", "gateway", "mesh-config", "anti-bypass"]
POLICY_COMPONENTS = ["rule", "default-deny"]


def rule(name, host, ns="bookinfo", sa="productpage"):
    return {"name": name, "hosts": [host], "allow": [{"namespace": ns, "service_account": sa}]}


def build(rules, **extra):
    raw = dict(rules=rules, **extra)
    policy = normalize_policy(raw)
    return policy, build_resources(policy)


def namespaces(*names):
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]


def component_of(obj):
    return obj["metadata"]["labels"][LABEL_COMPONENT]


def only(objs, components):
    return [o for o in objs if component_of(o) in components]


def run(client, objs, components=None, policy="default", **kwargs):
    components = components or ALL
    return apply_objects(client, only(objs, components), policy, components, **kwargs)


@pytest.fixture
def cluster():
    return FakeClient(namespaces("istio-system", "bookinfo"))


def test_empty_cluster_creates_everything_in_phase_order(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs)
    assert result["changed"]
    assert len(result["created"]) == len(objs)
    applied = [entry[1][1] for entry in cluster.log if entry[0] == "apply"]
    phases = [phase_of(kind) for kind in applied]
    assert phases == sorted(phases), applied
    # the gateway workload before any Istio object; AuthorizationPolicies before any route
    assert applied.index("Deployment") < applied.index("AuthorizationPolicy") < applied.index("VirtualService")
    # a RoleBinding made without the `bind` verb is checked against its Role, which must exist
    assert applied.index("Role") < applied.index("RoleBinding")


def test_converged_policy_reapplies_with_zero_writes(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    run(cluster, objs)
    before = len(cluster.writes())
    result = run(cluster, objs)
    assert not result["changed"]
    assert cluster.writes()[before:] == []
    assert len(result["unchanged"]) == len(objs)


def test_drift_is_repaired_and_reported(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    run(cluster, objs)
    key = [k for k in cluster.keys("AuthorizationPolicy") if "baidu" in k[3]][0]
    cluster.store[key]["spec"]["action"] = "DENY"
    result = run(cluster, objs)
    assert result["updated"] == [describe(key)]
    assert cluster.store[key]["spec"]["action"] == "ALLOW"


def test_removed_field_is_not_mistaken_for_in_sync(cluster):
    # the wanted object loses a field that the live object still has: the hash differs
    dummy, objs = build([dict(rule("baidu", "www.baidu.com"), http={"methods": ["GET"]})])
    run(cluster, objs)
    dummy, objs2 = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs2)
    assert any("AuthorizationPolicy" in item for item in result["updated"])


def test_removed_rule_prunes_exactly_its_objects(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com"), rule("github", "api.github.com")])
    run(cluster, objs)
    # an unlabelled object of the same kind and a similar name, and another policy's object
    foreign = cluster.put({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                           "metadata": {"name": "meshguard-github-copy", "namespace": "istio-system"},
                           "spec": {"hosts": ["api.github.com"]}})
    dummy, other = build([rule("pypi", "pypi.org")], policy_name="team-b")
    run(cluster, other, components=POLICY_COMPONENTS, policy="team-b")
    other_keys = set(object_key(o) for o in only(other, ["rule", "default-deny"]))

    dummy, objs2 = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs2)
    github = set(object_key(o) for o in objs if o["metadata"]["labels"].get(LABEL_RULE) == "github")
    assert sorted(result["deleted"]) == sorted(describe(k) for k in github)
    assert object_key(foreign) in cluster.store
    assert other_keys <= set(cluster.store)
    # routes before the AuthorizationPolicy that guards them
    deleted = [entry[1][1] for entry in cluster.log if entry[0] == "delete"]
    assert deleted[-1] == "AuthorizationPolicy"


def test_components_scope_the_prune(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    run(cluster, objs)
    # the gateway role with no gateway objects prunes only gateway objects
    result = apply_objects(cluster, [], "default", ["gateway"])
    assert result["deleted"] and all(
        any(kind in d for kind in ("ServiceAccount", "Role", "Service", "Deployment")) for d in result["deleted"])
    assert any(k[1] == "VirtualService" for k in cluster.store)


def test_unlabelled_object_of_the_same_name_is_refused_before_any_write(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    se = [o for o in objs if o["kind"] == "ServiceEntry"][0]
    squatter = copy.deepcopy(se)
    del squatter["metadata"]["labels"]
    cluster.put(squatter)
    with pytest.raises(ApplyError) as info:
        run(cluster, objs)
    assert "refusing to change ServiceEntry istio-system/%s" % se["metadata"]["name"] in str(info.value)
    assert "without the meshguard.egress ownership labels" in str(info.value)
    assert cluster.writes() == []


def test_host_claimed_by_two_policies_fails_naming_both(cluster):
    dummy, other = build([rule("search", "www.baidu.com")], policy_name="team-b")
    run(cluster, other, components=POLICY_COMPONENTS, policy="team-b")
    writes = len(cluster.writes())
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    with pytest.raises(ApplyError) as info:
        run(cluster, objs, components=POLICY_COMPONENTS)
    message = str(info.value)
    assert "www.baidu.com" in message and "'default'" in message and "'team-b'" in message
    assert len(cluster.writes()) == writes


def test_hosts_annotation_is_read():
    obj = {"kind": "VirtualService", "metadata": {"annotations": {ANNOTATION_HOSTS: "a.example.com,b.example.com"}}}
    assert hosts_of(obj) == ["a.example.com", "b.example.com"]
    obj["metadata"]["annotations"][ANNOTATION_HOSTS] = json.dumps(["c.example.com"])
    assert hosts_of(obj) == ["c.example.com"]
    assert hosts_of({"kind": "ServiceEntry", "spec": {"hosts": ["d.example.com"]}}) == ["d.example.com"]


def test_objects_of_another_component_or_policy_are_rejected_without_a_request(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    with pytest.raises(ApplyError) as info:
        apply_objects(cluster, objs, "default", ["rule"])
    assert "component 'gateway' is not managed by this call" in str(info.value)
    with pytest.raises(ApplyError) as info:
        apply_objects(cluster, only(objs, ["rule"]), "team-b", ["rule"])
    assert "lacks the ownership labels of policy 'team-b'" in str(info.value)
    assert cluster.log == []


def test_check_mode_writes_nothing_and_reports_what_would_change(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs, check_mode=True, diff=True)
    assert result["changed"] and len(result["created"]) == len(objs)
    assert cluster.writes() == []
    assert all(entry[2] for entry in cluster.log if entry[0] == "apply")
    assert len(result["diff"]) == len(objs)
    assert "kind: ServiceEntry" in [d for d in result["diff"] if "ServiceEntry" in d["after_header"]][0]["after"]


def test_check_mode_prune_is_a_dry_run(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com"), rule("github", "api.github.com")])
    run(cluster, objs)
    count = len(cluster.store)
    dummy, objs2 = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs2, check_mode=True)
    assert result["deleted"] and len(cluster.store) == count


def test_state_absent_removes_exactly_this_policy(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    run(cluster, objs)
    dummy, other = build([rule("pypi", "pypi.org")], policy_name="team-b")
    run(cluster, other, components=POLICY_COMPONENTS, policy="team-b")
    result = apply_objects(cluster, objs, "default", ALL, state="absent")
    assert len(result["deleted"]) == len(objs)
    left = [o for o in cluster.store.values() if (o["metadata"].get("labels") or {}).get(LABEL_POLICY)]
    assert left and all(o["metadata"]["labels"][LABEL_POLICY] == "team-b" for o in left)
    again = apply_objects(cluster, [], "default", ALL, state="absent")
    assert not again["changed"]


def test_missing_namespace_fails_or_is_created():
    cluster = FakeClient(namespaces("bookinfo"))
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    with pytest.raises(ApplyError) as info:
        run(cluster, objs, components=["gateway"])
    assert "istio-system does not exist" in str(info.value)
    assert cluster.writes() == []
    result = run(cluster, objs, components=["gateway"], create_namespaces=True)
    assert "Namespace istio-system" in result["created"]
    assert ("", "Namespace", "", "istio-system") in cluster.store
    # teardown removes the namespace it created, once nothing else is in it
    result = apply_objects(cluster, [], "default", ["gateway"], state="absent")
    assert "Namespace istio-system" in result["deleted"]


def test_created_namespace_with_foreign_content_is_kept():
    cluster = FakeClient(namespaces("bookinfo"))
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    run(cluster, objs, components=["gateway"], create_namespaces=True)
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": "istio-system"}})
    result = apply_objects(cluster, [], "default", ["gateway"], state="absent")
    assert result["kept"] == ["Namespace istio-system"]
    assert any("ConfigMap istio-system/theirs" in w for w in result["warnings"])


def test_forbidden_list_names_the_permission_and_writes_nothing(cluster):
    cluster.forbidden.add("VirtualService")
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    with pytest.raises(ApplyError) as info:
        run(cluster, objs)
    assert 'cannot list resource "VirtualService"' in str(info.value)
    assert "permission denied" in str(info.value)
    assert cluster.writes() == []


def test_field_conflict_is_reported_unless_forced(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    se = [o for o in objs if o["kind"] == "ServiceEntry"][0]
    cluster.conflicts.add(object_key(se))
    with pytest.raises(ApplyError) as info:
        run(cluster, objs)
    assert "force: true" in str(info.value) and "helm" in str(info.value)
    result = run(cluster, objs, force=True)
    assert describe(object_key(se)) in result["created"]


def test_api_server_down_is_a_clear_error(cluster):
    cluster.down = True
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    with pytest.raises(ApplyError) as info:
        run(cluster, objs)
    assert "did not answer" in str(info.value)


def test_missing_kind_is_ignored_only_when_nothing_of_it_is_wanted(cluster):
    cluster.missing_kinds.add("HorizontalPodAutoscaler")
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    assert run(cluster, objs)["changed"]
    cluster.missing_kinds.add("VirtualService")
    with pytest.raises(ApplyError):
        run(cluster, objs)


def test_deleted_object_replaced_by_someone_else_is_kept(cluster):
    dummy, objs = build([rule("baidu", "www.baidu.com"), rule("github", "api.github.com")])
    run(cluster, objs)
    original_delete = cluster.delete
    # the uid precondition: an object recreated between our LIST and our DELETE is not the one
    # we saw labelled, so it is not deleted
    cluster.delete = lambda *a, **k: original_delete(*a, **dict(k, uid="uid-0"))
    dummy, objs2 = build([rule("baidu", "www.baidu.com")])
    result = run(cluster, objs2)
    assert result["deleted"] == [] and result["kept"]


def test_sidecar_in_a_namespace_with_its_own_sidecar_warns():
    cluster = FakeClient(namespaces("istio-system", "team-a"))
    cluster.put({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                 "metadata": {"name": "default", "namespace": "team-a"}, "spec": {}})
    dummy, objs = build([rule("baidu", "www.baidu.com", ns="team-a")],
                        mesh={"method": "sidecar", "scope": "namespaces", "namespaces": ["team-a"]})
    result = run(cluster, objs, components=["mesh-config"])
    assert any("team-a already has its own Sidecar default" in w for w in result["warnings"])


def test_in_sync_tolerates_server_defaults():
    dummy, objs = build([rule("baidu", "www.baidu.com")])
    svc = [o for o in objs if o["kind"] == "Service"][0]
    live = with_hash(svc)
    live["spec"]["clusterIP"] = "10.0.0.9"
    for port in live["spec"]["ports"]:
        port["nodePort"] = None
    live["metadata"]["resourceVersion"] = "5"
    assert in_sync(svc, live)
    live["spec"]["ports"] = live["spec"]["ports"][:1]
    assert not in_sync(svc, live)


# --- the mesh ConfigMap -------------------------------------------------------------------

MESH_TEXT = "accessLogFile: /dev/stdout\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"


def configmap(text=MESH_TEXT):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": text, "meshNetworks": "networks: {}"}}


def mesh_cfg():
    policy, dummy = build([rule("baidu", "www.baidu.com")])
    return mesh_config(policy)


def cm_of(cluster):
    return cluster.store[("", "ConfigMap", "istio-system", "istio")]


def test_mesh_configmap_sets_and_restores_keeping_other_keys():
    cluster = FakeClient([configmap()])
    result = mesh_configmap(cluster, mesh_cfg(), "default")
    assert result["changed"]
    data = yaml.safe_load(cm_of(cluster)["data"]["mesh"])
    assert data["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert data["accessLogFile"] == "/dev/stdout" and data["defaultConfig"]["discoveryAddress"]
    assert cm_of(cluster)["data"]["meshNetworks"] == "networks: {}"
    assert not mesh_configmap(cluster, mesh_cfg(), "default")["changed"]
    result = mesh_configmap(cluster, mesh_cfg(), "default", state="absent")
    assert result["changed"]
    restored = yaml.safe_load(cm_of(cluster)["data"]["mesh"])
    assert restored == yaml.safe_load(MESH_TEXT)
    assert MESH_PREVIOUS_ANNOTATION not in (cm_of(cluster)["metadata"].get("annotations") or {})
    assert not mesh_configmap(cluster, mesh_cfg(), "default", state="absent")["changed"]


def test_mesh_configmap_restores_an_explicit_previous_mode():
    cluster = FakeClient([configmap(MESH_TEXT + "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n")])
    mesh_configmap(cluster, mesh_cfg(), "default")
    mesh_configmap(cluster, mesh_cfg(), "default", state="absent")
    assert yaml.safe_load(cm_of(cluster)["data"]["mesh"])["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}


def test_mesh_configmap_shared_by_two_policies_is_restored_by_the_last():
    cluster = FakeClient([configmap()])
    mesh_configmap(cluster, mesh_cfg(), "default")
    mesh_configmap(cluster, mesh_cfg(), "team-b")
    mesh_configmap(cluster, mesh_cfg(), "default", state="absent")
    assert yaml.safe_load(cm_of(cluster)["data"]["mesh"])["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"
    mesh_configmap(cluster, mesh_cfg(), "team-b", state="absent")
    assert "outboundTrafficPolicy" not in yaml.safe_load(cm_of(cluster)["data"]["mesh"])


def test_mesh_configmap_check_mode_and_missing_configmap():
    cluster = FakeClient([configmap()])
    result = mesh_configmap(cluster, mesh_cfg(), "default", check_mode=True, diff=True)
    assert result["changed"] and cluster.writes() == []
    assert "REGISTRY_ONLY" in result["diff"][0]["after"]
    with pytest.raises(ApplyError) as info:
        mesh_configmap(FakeClient(), mesh_cfg(), "default")
    assert "ConfigMap istio-system/istio not found" in str(info.value)


# --- waiting for the gateway, the role filters ----------------------------------------------

def _deployment(generation=1, observed=1, available="True"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "gw", "namespace": "istio-system", "generation": generation},
            "status": {"observedGeneration": observed,
                       "conditions": [{"type": "Available", "status": available, "message": "waiting"}]}}


def test_wait_available_returns_when_available_and_names_the_laggard_on_timeout():
    cluster = FakeClient([_deployment()])
    wait_available(cluster, [_deployment()], timeout=0)
    cluster = FakeClient([_deployment(generation=2, observed=1)])
    ticks = iter(range(100))
    with pytest.raises(ApplyError) as info:
        wait_available(cluster, [_deployment()], timeout=3, clock=lambda: next(ticks), sleep=lambda s: None)
    assert "Deployment istio-system/gw" in str(info.value) and "generation 2" in str(info.value)
    cluster = FakeClient([_deployment(available="False")])
    with pytest.raises(ApplyError) as info:
        wait_available(cluster, [_deployment()], timeout=0, sleep=lambda s: None)
    assert "Available=False: waiting" in str(info.value)


def test_the_mesh_configmap_is_managed_only_for_its_component_and_method():
    from ansible_collections.meshguard.egress.plugins.module_utils.apply.meshconfig import configmap_to_manage
    mesh = {"manage": True, "method": "configmap", "namespace": "istio-system", "configmap": "istio",
            "outbound_policy": "REGISTRY_ONLY"}
    assert configmap_to_manage(mesh, ["mesh-config"]) is mesh
    assert configmap_to_manage(mesh, ["rule"]) is None
    assert configmap_to_manage(dict(mesh, method="sidecar"), ["mesh-config"]) is None
    assert configmap_to_manage(dict(mesh, manage=False), ["mesh-config"]) is None
    with pytest.raises(ValueError, match="lacks configmap"):
        configmap_to_manage(dict(mesh, configmap=""), ["mesh-config"])
