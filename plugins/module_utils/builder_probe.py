# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The short-lived probe pod verify runs its curl commands in, for an identity that has no pod of
its own to probe from: its name and its manifest, built beside the builder like every other object
(sidecar-injected, running as the identity's service account, gone by itself after its lifetime).

Not here: which identities need one (verify/probe_pods.py); creating and removing them (the verify
role); the policy's own objects (builder.py, builder_gateway.py, builder_netpol.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENT_VERIFY_PROBE, ownership_labels
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import short_hash

PROBE_CONTAINER = "probe"


def probe_pod_name(policy, namespace, service_account):
    """A stable, unique name for the probe pod of one identity of one policy."""
    base = "meshguard-probe-%s" % service_account
    suffix = "-" + short_hash("%s/%s/%s" % (policy.policy_name, namespace, service_account))
    return base[:63 - len(suffix)].rstrip("-.") + suffix


def probe_pod(policy, namespace, service_account, image, lifetime, revision=None):
    """A short-lived, sidecar-injected probe pod running as namespace/service_account: `image` runs
    `sleep lifetime`; `revision` (Istio's istio.io/rev) or else sidecar.istio.io/inject selects the
    injector."""
    labels = ownership_labels(policy.policy_name, COMPONENT_VERIFY_PROBE)
    labels["app"] = "meshguard-egress-probe"
    if revision:
        labels["istio.io/rev"] = revision
    else:
        labels["sidecar.istio.io/inject"] = "true"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": probe_pod_name(policy, namespace, service_account), "namespace": namespace, "labels": labels,
            # Start the app only when Envoy is ready (else the first probe can race the sidecar).
            "annotations": {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"},
        },
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            # Gone by itself even if the play that made it is killed before its cleanup step.
            "activeDeadlineSeconds": lifetime,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": PROBE_CONTAINER, "image": image,
                "command": ["sleep", str(lifetime)],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
