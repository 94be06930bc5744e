# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where probes run: the identities the cases run as, the user's sources (existing pods), which
identities need a short-lived probe pod (its manifest: builder_probe.py), and the choice of the
pod and container a probe execs in (``pick_pod``: running, right service account, sidecar).

Pure: manifests and choices from plain data; the verify role creates and removes the probe pods,
runner.py reads the pods and execs. Not for: talking to the cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.builder_probe import probe_pod
from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENT_VERIFY_PROBE, LABEL_COMPONENT, \
    is_owned, label_selector, ownership_labels

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


def probe_pod_selector(policy):
    """Label selector of the policy's probe pods (for cleaning up)."""
    return label_selector(ownership_labels(policy.policy_name, COMPONENT_VERIFY_PROBE))


def is_probe_pod(obj, policy_name):
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return is_owned(obj, policy_name) and labels.get(LABEL_COMPONENT) == COMPONENT_VERIFY_PROBE


def plan_probe_pods(policy, options, cases):
    """Manifests of the probe pods the cases need (identities without a user source)."""
    if not options.probe_pods:
        return []
    return [probe_pod(policy, ns, sa, image=options.probe_image, lifetime=options.probe_pod_lifetime,
                      revision=options.probe_revision)
            for ns, sa in probe_identities(cases) if source_for(options, ns, sa) is None]


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
