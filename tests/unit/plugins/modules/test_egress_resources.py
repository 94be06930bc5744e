# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress_resources module: a thin wrapper that validates, builds and reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.modules import egress_resources
from ansible_collections.meshguard.egress.tests.unit.plugins.modules.module_harness import run_module


def _run(monkeypatch, args):
    return run_module(monkeypatch, egress_resources, args)


SEED = {"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                   "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]}]}


def test_builds_objects_summary_and_labels(monkeypatch):
    out = _run(monkeypatch, SEED)
    assert not out.failed
    result = out.result
    assert result["changed"] is False
    kinds = [o["kind"] for o in result["resources"]]
    assert kinds.count("AuthorizationPolicy") == 2 and "ServiceEntry" in kinds and "Deployment" in kinds
    assert "files" not in result
    assert result["summary"][1] == "rule baidu [originate]: www.baidu.com port 443 <- bookinfo/bookinfo-productpage"
    assert result["labels"] == {"app.kubernetes.io/managed-by": "meshguard.egress",
                                "egress.meshguard.io/policy": "default"}
    assert result["mesh_config"]["configmap"] == "istio"
    assert result["rules"][0]["port"] == 443


def test_render_returns_files(monkeypatch):
    result = _run(monkeypatch, dict(SEED, render=True)).result
    assert "rules/baidu.yaml" in result["files"] and "kustomization.yaml" in result["files"]


def test_check_mode_gives_the_same_result(monkeypatch):
    normal = _run(monkeypatch, SEED).result
    checked = _run(monkeypatch, dict(SEED, _ansible_check_mode=True)).result
    assert checked["resources"] == normal["resources"] and checked["changed"] is False


def test_invalid_policy_fails_naming_rule_and_field(monkeypatch):
    args = {"rules": [dict(SEED["rules"][0], hosts=["*.baidu.com"], allow=[])]}
    out = _run(monkeypatch, args)
    assert out.failed
    assert "rules[0] (baidu).hosts[0]" in out.result["msg"] and "wildcard" in out.result["msg"]
    assert "rules[0] (baidu).allow: must not be empty" in out.result["msg"]
    assert len(out.result["errors"]) == 2
    assert "resources" not in out.result


def test_unset_options_take_policy_defaults(monkeypatch):
    result = _run(monkeypatch, dict(SEED, gateway={"name": "egress", "namespace": "istio-egress"})).result
    ap = [o for o in result["resources"] if o["metadata"]["name"] == "meshguard-baidu"
          and o["kind"] == "AuthorizationPolicy"][0]
    assert ap["metadata"]["namespace"] == "istio-egress"
    assert ap["spec"]["selector"]["matchLabels"] == {"app": "egress", "istio": "egress"}
