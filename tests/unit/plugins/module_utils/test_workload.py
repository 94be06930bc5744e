# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters of the apply roles: component selection and the gateway's PDB/HPA."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.filter.egress import FilterModule
from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources
from ansible_collections.meshguard.egress.plugins.module_utils.labels import LABEL_COMPONENT, is_owned
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.labels import select_components
from ansible_collections.meshguard.egress.plugins.module_utils.builder_gateway import gateway_workload

OBJS = build_resources(normalize_policy({"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                                                    "allow": [{"namespace": "bookinfo"}]}]}))


def test_select_components_keeps_order_and_only_the_named():
    rules = select_components(OBJS, ["rule"])
    assert rules and all(o["metadata"]["labels"][LABEL_COMPONENT] == "rule" for o in rules)
    assert [o for o in OBJS if o in rules] == rules
    assert select_components(OBJS, []) == []


def test_gateway_workload_adds_pdb_and_optional_hpa_owned_by_the_policy():
    objs = gateway_workload(OBJS)
    kinds = [o["kind"] for o in objs]
    assert "PodDisruptionBudget" in kinds and "HorizontalPodAutoscaler" not in kinds
    assert all(is_owned(o, "default") for o in objs)
    deployment = [o for o in objs if o["kind"] == "Deployment"][0]
    pdb = [o for o in objs if o["kind"] == "PodDisruptionBudget"][0]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"] and "replicas" in deployment["spec"]

    objs = gateway_workload(OBJS, pdb=False, autoscaling={"enabled": True, "max_replicas": 3})
    kinds = [o["kind"] for o in objs]
    assert "PodDisruptionBudget" not in kinds
    hpa = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"][0]
    assert hpa["spec"]["maxReplicas"] == 3 and hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in [o for o in objs if o["kind"] == "Deployment"][0]["spec"]
    # the input is not modified
    assert "replicas" in [o for o in OBJS if o["kind"] == "Deployment"][0]["spec"]


def test_filter_plugin_exposes_both():
    assert set(FilterModule().filters()) == {"components", "gateway_workload"}
