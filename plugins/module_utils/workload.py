# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Selections of a policy's built objects for the apply roles, and the parts of Istio's
`gateway` Helm chart the builder leaves to the egress_gateway role (PodDisruptionBudget,
HorizontalPodAutoscaler). Pure Python; used by the filter plugin meshguard.egress.egress."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENT_GATEWAY, select_components


def gateway_workload(resources, pdb=True, autoscaling=None):
    """The gateway objects, plus a PodDisruptionBudget (maxUnavailable 1) and, when
    autoscaling.enabled, a HorizontalPodAutoscaler (autoscaling/v2, CPU utilisation), as the
    istio/gateway chart does; with an autoscaler the Deployment leaves spec.replicas to it.
    Both carry the Deployment's name, namespace and (ownership) labels."""
    autoscaling = autoscaling or {}
    objs = [copy.deepcopy(o) for o in select_components(resources, [COMPONENT_GATEWAY])]
    deployments = [o for o in objs if o.get("kind") == "Deployment"]
    if not deployments:
        return objs
    deployment = deployments[0]
    meta = deployment["metadata"]
    extra_meta = {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {})}
    if pdb:
        objs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": copy.deepcopy(extra_meta),
                     "spec": {"maxUnavailable": 1,
                              "selector": copy.deepcopy(deployment["spec"]["selector"])}})
    if autoscaling.get("enabled"):
        deployment["spec"].pop("replicas", None)
        objs.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": copy.deepcopy(extra_meta),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]},
                     "minReplicas": int(autoscaling.get("min_replicas", 1)),
                     "maxReplicas": int(autoscaling.get("max_replicas", 5)),
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization",
                         "averageUtilization": int(autoscaling.get("target_cpu_utilization", 80))}}}]}})
    return objs
