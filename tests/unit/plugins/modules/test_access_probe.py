# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The access_probe module: thin; check mode lists the matrix and contacts no cluster."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import collections

import pytest


from ansible_collections.meshguard.egress.plugins.module_utils import k8s_module
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.modules import access_probe
from ansible_collections.meshguard.egress.tests.unit.plugins.modules.module_harness import run_module


def _run(monkeypatch, args):
    return run_module(monkeypatch, access_probe, args)


SEED = normalize_policy({"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                                    "allow": [{"namespace": "bookinfo",
                                               "service_account": "bookinfo-productpage"}]}]}).as_dict()


def _no_cluster(*args, **kwargs):
    raise AssertionError("no cluster may be contacted")


@pytest.mark.parametrize("extra", [{"_ansible_check_mode": True}, {"matrix_only": True}])
def test_check_mode_and_matrix_only_list_the_matrix_without_a_cluster(monkeypatch, extra):
    monkeypatch.setattr(k8s_module, "connect", _no_cluster)
    out = _run(monkeypatch, dict({"policy": SEED}, **extra))
    assert not out.failed and out.result["changed"] is False
    assert [c["name"] for c in out.result["matrix"]] == [
        "allowed bookinfo/bookinfo-productpage -> www.baidu.com", "denied bookinfo/default -> www.baidu.com",
        "unlisted bookinfo/bookinfo-productpage -> example.com",
        "bypass bookinfo/bookinfo-productpage -> www.baidu.com:443"]
    assert len(out.result["probe_pods"]) == 2 and "results" not in out.result


def test_bad_verify_options_fail_naming_the_field(monkeypatch):
    out = _run(monkeypatch, {"policy": SEED, "matrix_only": True, "denied_identity": "bookinfo/bookinfo-productpage"})
    assert out.failed and out.result["errors"] == [
        "denied_identity: bookinfo/bookinfo-productpage is allowed by rule baidu; the denied probe must be in no "
        "allow list"]


def test_a_bad_policy_fails_like_the_builder(monkeypatch):
    bad = dict(SEED, rules=[dict(SEED["rules"][0], hosts=["*.baidu.com"])])
    out = _run(monkeypatch, {"policy": bad, "matrix_only": True})
    assert out.failed and "rules[0] (baidu).hosts[0]" in out.result["msg"]


def test_probing_uses_the_shared_connection_and_returns_the_report(monkeypatch):
    seen = {}

    # A client that compares equal to ("client", <its api_client>), as get_client(api_client) gave before.
    fake_client = collections.namedtuple("FakeClient", "name api_client")

    def fake_connect(params):
        seen["kubeconfig"] = params["kubeconfig"]
        return fake_client("client", "api-client")

    def fake_run(policy, options, client=None, make_api=None, concurrency=None, probe=None):
        seen.update(client=client, make_api=make_api, concurrency=concurrency, probe=probe, timeout=options.timeout)
        return {"matrix": [], "passed": True}

    monkeypatch.setattr(k8s_module, "HAS_KUBERNETES", True)  # ansible-test's unit venv has no kubernetes library
    monkeypatch.setattr(k8s_module, "connect", fake_connect)
    monkeypatch.setattr(access_probe, "thread_api_factory", lambda api_client: ("factory", api_client))
    monkeypatch.setattr(access_probe, "verify_run", fake_run)
    out = _run(monkeypatch, {"policy": SEED, "kubeconfig": "/k", "timeout": 4, "concurrency": 3})
    assert not out.failed and out.result["passed"] is True
    assert seen == {"kubeconfig": "/k", "client": ("client", "api-client"), "make_api": ("factory", "api-client"),
                    "concurrency": 3, "probe": True, "timeout": 4}


def test_probing_without_the_kubernetes_library_says_so(monkeypatch):
    monkeypatch.setattr(k8s_module, "HAS_KUBERNETES", False)
    monkeypatch.setattr(k8s_module, "KUBERNETES_IMPORT_ERROR", "No module named 'kubernetes'")
    out = _run(monkeypatch, {"policy": SEED})
    assert out.failed and "kubernetes" in out.result["msg"]
    # the matrix needs no library
    assert not _run(monkeypatch, {"policy": SEED, "matrix_only": True}).failed
