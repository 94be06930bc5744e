# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where probes run: the identities the cases run as, the user's sources (existing pods), the
short-lived probe pods (names, labels, manifests) for the other identities, and the choice of the
pod and container a probe execs in (``pick_pod``: running, right service account, sidecar).

Pure: manifests and choices from plain data; the verify role creates and removes the probe pods,
runner.py reads the pods and execs. Not for: talking to the cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.labels import LABEL_COMPONENT, LABEL_MANAGED_BY, \
    LABEL_POLICY, MANAGED_BY, policy_labels
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import short_hash

# Verify's own component label for probe pods (not an object the builder renders).
COMPONENT_VERIFY_PROBE = "verify-probe"
PROBE_CONTAINER = "probe"
SIDECAR_CONTAINER = "istio-proxy"


def probe_identities(cases):
    """The (namespace, service_account) pairs the cases run as, in first-use order."""
    seen = []
    for case in cases:
        key = (case["namespace"], case["service_account"])
        if key not in seen:
            seen.append(key)
    return seen


def source_for(options, namespace, service_account):
    """The user's source (existing pods) for an identity, or None."""
    for src in options.sources:
        if src["namespace"] == namespace and (src["service_account"] is None
                                              or src["service_account"] == service_account):
            return src
    return None


def probe_pod_name(policy, namespace, service_account):
    """A stable, unique name for the probe pod of one identity of one policy."""
    base = "meshguard-probe-%s" % service_account
    suffix = "-" + short_hash("%s/%s/%s" % (policy.policy_name, namespace, service_account))
    return base[:63 - len(suffix)].rstrip("-.") + suffix


def probe_pod_labels(policy):
    labels = policy_labels(policy.policy_name)
    labels[LABEL_COMPONENT] = COMPONENT_VERIFY_PROBE
    return labels


def probe_pod_selector(policy):
    return ",".join("%s=%s" % (k, v) for k, v in sorted(probe_pod_labels(policy).items()))


def is_probe_pod(obj, policy_name):
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return (labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_POLICY) == policy_name
            and labels.get(LABEL_COMPONENT) == COMPONENT_VERIFY_PROBE)


def probe_pod_manifest(policy, options, namespace, service_account):
    """A short-lived, sidecar-injected probe pod running as namespace/service_account."""
    labels = probe_pod_labels(policy)
    labels["app"] = "meshguard-egress-probe"
    if options.probe_revision:
        labels["istio.io/rev"] = options.probe_revision
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
            "activeDeadlineSeconds": options.probe_pod_lifetime,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": PROBE_CONTAINER, "image": options.probe_image,
                "command": ["sleep", str(options.probe_pod_lifetime)],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def plan_probe_pods(policy, options, cases):
    """Manifests of the probe pods the cases need (identities without a user source)."""
    if not options.probe_pods:
        return []
    return [probe_pod_manifest(policy, options, ns, sa) for ns, sa in probe_identities(cases)
            if source_for(options, ns, sa) is None]


def _containers(pod):
    spec = pod.get("spec") or {}
    return spec.get("containers") or [], spec.get("initContainers") or []


def has_sidecar(pod):
    containers, init = _containers(pod)
    return any(c.get("name") == SIDECAR_CONTAINER for c in containers + init)


def pick_pod(pods, namespace, service_account, where, container=None):
    """Choose the pod a probe runs in. Returns (target, problem): target is {pod, namespace, container}
    and problem (a "probe broken" cause) is None when the pod can run probes."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        return None, "no pod %s in namespace %s" % (where, namespace)
    running = [p for p in live if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        pod = live[0]
        return None, "pod %s/%s is %s, not Running" % (namespace, pod["metadata"]["name"],
                                                       (pod.get("status") or {}).get("phase") or "Unknown")
    matching = [p for p in running if ((p.get("spec") or {}).get("serviceAccountName") or "default") == service_account]
    if not matching:
        pod = running[0]
        return None, ("pod %s/%s runs as service account %s, not %s: it would probe another identity"
                      % (namespace, pod["metadata"]["name"],
                         (pod.get("spec") or {}).get("serviceAccountName") or "default", service_account))
    injected = [p for p in matching if has_sidecar(p)]
    if not injected:
        return None, ("pod %s/%s has no %s sidecar (not injected): its traffic would not pass the mesh"
                      % (namespace, matching[0]["metadata"]["name"], SIDECAR_CONTAINER))
    pod = sorted(injected, key=lambda p: p["metadata"]["name"])[0]
    return _pick_container(pod, namespace, container)


def _pick_container(pod, namespace, container):
    """(target, problem) for the container a probe runs in: the named one, else the first that is not the sidecar."""
    containers, dummy = _containers(pod)
    names = [c.get("name") for c in containers]
    if container is None:
        app = [n for n in names if n != SIDECAR_CONTAINER]
        if not app:
            return None, "pod %s/%s has no application container" % (namespace, pod["metadata"]["name"])
        container = app[0]
    elif container not in names:
        return None, "pod %s/%s has no container %s" % (namespace, pod["metadata"]["name"], container)
    statuses = dict((s.get("name"), s) for s in (pod.get("status") or {}).get("containerStatuses") or [])
    state = (statuses.get(container) or {}).get("state") or {}
    if statuses and "running" not in state:
        return None, "container %s of pod %s/%s is not running" % (container, namespace, pod["metadata"]["name"])
    return {"pod": pod["metadata"]["name"], "namespace": namespace, "container": container}, None
