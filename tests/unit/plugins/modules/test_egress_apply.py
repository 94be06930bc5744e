# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress_apply module: a thin wrapper (the engine is tested in test_apply.py, the real API
server in tests/lab/test_apply.py). Here: argument handling, component selection, results,
failures, and that no client is created for bad arguments."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils import k8s_module
from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources, mesh_config
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.modules import egress_apply
from ansible_collections.meshguard.egress.tests.unit.plugins.modules.module_harness import run_module
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils.fake_k8s import FakeClient


def _run(monkeypatch, args, client):
    created = []

    def get_client(module):
        created.append(module)
        return client

    monkeypatch.setattr(k8s_module, "connect", get_client)
    # The fake client stands in for the kubernetes library, which ansible-test's units venv lacks.
    monkeypatch.setattr(k8s_module, "HAS_KUBERNETES", True)
    ended = run_module(monkeypatch, egress_apply, args)
    ended.clients = len(created)
    return ended


def _policy():
    policy = normalize_policy({"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                                          "allow": [{"namespace": "bookinfo", "service_account": "productpage"}]}]})
    return policy, build_resources(policy)


def _cluster():
    cluster = FakeClient([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                          for n in ("istio-system", "bookinfo")])
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                 "data": {"mesh": "accessLogFile: /dev/stdout\n"}})
    return cluster


def test_applies_only_the_named_components_then_is_idempotent(monkeypatch):
    dummy, objs = _policy()
    cluster = _cluster()
    args = {"resources": objs, "policy_name": "default", "components": ["rule", "default-deny"]}
    first = _run(monkeypatch, args, cluster)
    assert not first.failed and first.result["changed"]
    assert first.result["created"] and not any("Deployment" in c for c in first.result["created"])
    second = _run(monkeypatch, args, cluster)
    assert not second.failed and not second.result["changed"]


def test_mesh_config_set_and_restored(monkeypatch):
    policy, objs = _policy()
    cluster = _cluster()
    args = {"resources": objs, "policy_name": "default", "components": ["mesh-config"],
            "mesh_config": mesh_config(policy)}
    result = _run(monkeypatch, args, cluster)
    assert result.result["mesh_changed"] and result.result["changed"]
    assert "REGISTRY_ONLY" in cluster.store[("", "ConfigMap", "istio-system", "istio")]["data"]["mesh"]
    result = _run(monkeypatch, dict(args, state="absent"), cluster)
    assert result.result["mesh_changed"]
    assert cluster.store[("", "ConfigMap", "istio-system", "istio")]["data"]["mesh"] == "accessLogFile: /dev/stdout\n"


def test_refusal_fails_with_the_engine_message(monkeypatch):
    dummy, objs = _policy()
    cluster = _cluster()
    cluster.forbidden.add("VirtualService")
    result = _run(monkeypatch, {"resources": objs, "policy_name": "default", "components": ["rule"]}, cluster)
    assert result.failed and "permission denied" in result.result["msg"]


def test_bad_arguments_fail_before_any_client_exists(monkeypatch):
    cluster = _cluster()
    result = _run(monkeypatch, {"policy_name": "default", "components": ["rules"]}, cluster)
    assert result.failed and "components" in result.result["msg"]
    assert result.clients == 0 and cluster.log == []
    result = _run(monkeypatch, {"policy_name": "default", "components": ["mesh-config"],
                                "mesh_config": {"manage": True, "method": "configmap"}}, cluster)
    assert result.failed and "mesh_config lacks" in result.result["msg"]
    assert result.clients == 0
