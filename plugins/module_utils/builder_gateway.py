# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress gateway's workload, built the way Istio's `gateway` Helm chart builds it
(gateway injection): ServiceAccount, Role and RoleBinding (secrets, for credentialName),
Service, Deployment; the PodDisruptionBudget and HorizontalPodAutoscaler the egress_gateway
role adds (filter meshguard.egress.gateway_workload); and the Namespace apply creates for
the objects when asked to (egress_apply create_namespaces).

Not here: the Istio objects that route through the gateway (builder.py), applying (apply/).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.meshguard.egress.plugins.module_utils.kinds import api_version_of
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    COMPONENT_GATEWAY, ownership_labels, select_components)
from ansible_collections.meshguard.egress.plugins.module_utils.manifest import manifest, object_meta


def _gateway_pod_labels(policy):
    labels = dict(policy.gateway["labels"])
    if policy.gateway["revision"]:
        labels["istio.io/rev"] = policy.gateway["revision"]
    else:
        labels["sidecar.istio.io/inject"] = "true"
    return labels


def _gateway_meta(policy, name=None):
    gw = policy.gateway
    return object_meta(policy, name or gw["name"], gw["namespace"], COMPONENT_GATEWAY)


def gateway_service_account(policy):
    return manifest(api_version_of("ServiceAccount"), "ServiceAccount",
                    _gateway_meta(policy, policy.gateway["service_account"]))


def gateway_role(policy):
    return manifest(api_version_of("Role"), "Role", _gateway_meta(policy),
                    rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}])


def gateway_role_binding(policy):
    gw = policy.gateway
    return manifest(api_version_of("RoleBinding"), "RoleBinding", _gateway_meta(policy),
                    roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": gw["name"]},
                    subjects=[{"kind": "ServiceAccount", "name": gw["service_account"]}])


def gateway_service(policy):
    gw = policy.gateway
    # Port names carry the protocol for Istio's protocol selection; these are the names of
    # the legacy istio-egressgateway Service (http2 80->8080, https 443->8443).
    ports = [{"name": "http2", "port": gw["service_ports"]["http"], "protocol": "TCP",
              "targetPort": gw["container_ports"]["http"]},
             {"name": "https", "port": gw["service_ports"]["https"], "protocol": "TCP",
              "targetPort": gw["container_ports"]["https"]}]
    return manifest(api_version_of("Service"), "Service", _gateway_meta(policy),
                    {"type": "ClusterIP", "selector": dict(gw["labels"]), "ports": ports})


def gateway_deployment(policy):
    gw = policy.gateway
    container_ports = [
        {"containerPort": gw["container_ports"]["http"], "name": "http2", "protocol": "TCP"},
        {"containerPort": gw["container_ports"]["https"], "name": "https", "protocol": "TCP"},
        {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
    ]
    pod_spec = {
        "serviceAccountName": gw["service_account"],
        "containers": [{
            "name": "istio-proxy",
            # "auto": the injector replaces it with the proxy image of the mesh revision.
            "image": "auto",
            "ports": container_ports,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "2", "memory": "1Gi"}},
        }],
    }
    if min(gw["container_ports"].values()) < 1024:
        # The istio/gateway chart's way to let the non-root proxy bind ports below 1024.
        pod_spec["securityContext"] = {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
    return manifest(api_version_of("Deployment"), "Deployment", _gateway_meta(policy),
                    {"replicas": gw["replicas"], "selector": {"matchLabels": dict(gw["labels"])},
                     "template": {"metadata": {"annotations": {"inject.istio.io/templates": "gateway"},
                                               "labels": _gateway_pod_labels(policy)},
                                  "spec": pod_spec}})


def gateway_objects(policy):
    if not policy.gateway["manage"]:
        return []
    return [gateway_service_account(policy), gateway_role(policy), gateway_role_binding(policy),
            gateway_service(policy), gateway_deployment(policy)]


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
        objs.append(manifest(api_version_of("PodDisruptionBudget"), "PodDisruptionBudget", copy.deepcopy(extra_meta),
                             {"maxUnavailable": 1, "selector": copy.deepcopy(deployment["spec"]["selector"])}))
    if autoscaling.get("enabled"):
        deployment["spec"].pop("replicas", None)
        hpa = api_version_of("HorizontalPodAutoscaler")
        objs.append(manifest(hpa, "HorizontalPodAutoscaler", copy.deepcopy(extra_meta), {
            "scaleTargetRef": {"apiVersion": api_version_of("Deployment"), "kind": "Deployment", "name": meta["name"]},
            "minReplicas": int(autoscaling.get("min_replicas", 1)),
            "maxReplicas": int(autoscaling.get("max_replicas", 5)),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": int(autoscaling.get("target_cpu_utilization", 80))}}}]}))
    return objs


def namespace_object(name, policy_name, component):
    """A Namespace for objects of policy `policy_name`, labelled as its `component`'s (apply
    creates missing namespaces with it when asked to)."""
    return manifest(api_version_of("Namespace"), "Namespace",
                    {"name": name, "labels": ownership_labels(policy_name, component)})
