# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The anti-bypass NetworkPolicies (component anti-bypass): no pod of a covered namespace
may open a connection outside the cluster except through the egress gateway, and what they
cover, said plainly for the summary.

Not here: which namespaces are covered (policy_sections.py normalises network_policy), the Istio
objects (builder.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.kinds import api_version_of
from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENT_NETPOL
from ansible_collections.meshguard.egress.plugins.module_utils.manifest import manifest, object_meta, policy_object_name

DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
# istiod's xDS and CA port (sidecars fetch their config and certificates there).
ISTIOD_PORTS = [{"port": 15012, "protocol": "TCP"}]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def anti_bypass_namespaces(policy):
    """The namespaces the anti-bypass NetworkPolicies cover (policy_sections.normalize_network_policy)."""
    return list(policy.network_policy["covered"]) if policy.network_policy["enabled"] else []


def _namespace_is(names):
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(names)}]}


def network_policy(policy, namespace, covered=None):
    """No pod of a covered namespace may open a connection outside the cluster; in-cluster
    traffic keeps working (Istio's egress docs, "Additional security considerations").

    Allowed destinations, and nothing else: pods of the covered namespaces (a pod of an
    uncovered namespace could relay to the outside, so it is not a destination), the egress
    gateway's pods on their container ports, DNS in kube-system, istiod on 15012, and
    `allowed_cidrs` (e.g. the API server, which is not a pod)."""
    gw = policy.gateway
    covered = anti_bypass_namespaces(policy) if covered is None else covered
    egress = [
        {"to": [{"namespaceSelector": _namespace_is(covered)}]},
        {"to": [{"namespaceSelector": _namespace_is([gw["namespace"]]),
                 "podSelector": {"matchLabels": dict(gw["labels"])}}],
         "ports": [{"port": gw["container_ports"][key], "protocol": "TCP"} for key in ("http", "https")]},
        {"to": [{"namespaceSelector": _namespace_is(["kube-system"])}], "ports": list(DNS_PORTS)},
        {"to": [{"namespaceSelector": _namespace_is([policy.mesh["istio_namespace"]]),
                 "podSelector": {"matchLabels": {"app": "istiod"}}}], "ports": list(ISTIOD_PORTS)},
    ]
    if policy.network_policy["allowed_cidrs"]:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in policy.network_policy["allowed_cidrs"]]})
    return manifest(api_version_of("NetworkPolicy"), "NetworkPolicy",
                    object_meta(policy, policy_object_name(policy, "anti-bypass"), namespace, COMPONENT_NETPOL),
                    {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress})


def network_policy_objects(policy):
    covered = anti_bypass_namespaces(policy)
    return [network_policy(policy, ns, covered) for ns in covered]


def anti_bypass_summary(policy):
    """What the anti-bypass NetworkPolicies cover, said plainly."""
    netpol = policy.network_policy
    if not netpol["enabled"]:
        return "anti-bypass NetworkPolicies off: a pod that skips its sidecar can reach the outside"
    covered = anti_bypass_namespaces(policy)
    text = "anti-bypass NetworkPolicies cover %s" % (", ".join(covered) if covered else "NO namespace")
    if netpol["namespace_selector"] is not None and not netpol["discovered"]:
        text += " (namespace_selector is resolved on the cluster by the egress_policy role, not when rendering)"
    return text + "; pods of any other namespace, and of %s, can still bypass the gateway" % policy.gateway["namespace"]
