# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The refusals of an apply, decided before anything is written: objects that are not this
policy's (``check_objects``, no request needed), objects of the same kind and name that
someone else owns (``foreign_objects``), hosts another policy claims (``host_conflicts``);
and the warning about a namespace's own Sidecar (``sidecar_warnings``). Each returns a list
of texts: every problem at once.

Not here: reading the cluster (reads.py), failing the run (runner.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import describe, hosts_of, object_key
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    COMPONENT_RULE, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_POLICY, LABEL_RULE, MANAGED_BY, is_owned)


def check_objects(objects, policy_name, components):
    """Input checks that need no cluster; returns a list of problems."""
    problems = []
    seen = set()
    for index, obj in enumerate(objects):
        where = "resources[%d]" % index
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind") or not (
                (obj.get("metadata") or {}).get("name")):
            problems.append("%s: not a Kubernetes object (apiVersion, kind and metadata.name are required)" % where)
            continue
        key = object_key(obj)
        where = "%s (%s)" % (where, describe(key))
        if key in seen:
            problems.append("%s: listed twice" % where)
        seen.add(key)
        if not is_owned(obj, policy_name):
            problems.append("%s: lacks the ownership labels of policy %r (%s=%s, %s=%s); "
                            "build objects with meshguard.egress.egress_resources"
                            % (where, policy_name, LABEL_MANAGED_BY, MANAGED_BY, LABEL_POLICY, policy_name))
            continue
        component = obj["metadata"]["labels"].get(LABEL_COMPONENT)
        if component not in components:
            problems.append("%s: component %r is not managed by this call (components: %s)"
                            % (where, component, ", ".join(components)))
    return problems


def host_conflicts(objects, managed, policy_name):
    """Problems for hosts that a rule object of this policy and one of another policy both claim."""
    ours = {}
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        if labels.get(LABEL_COMPONENT) != COMPONENT_RULE:
            continue
        for host in hosts_of(obj):
            ours.setdefault(host, set()).add(labels.get(LABEL_RULE) or "?")
    theirs = {}
    for key, obj in managed.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        other = labels.get(LABEL_POLICY)
        if other == policy_name or labels.get(LABEL_COMPONENT) != COMPONENT_RULE:
            continue
        for host in hosts_of(obj):
            if host in ours:
                theirs.setdefault(host, set()).add((other, labels.get(LABEL_RULE) or "?", describe(key)))
    problems = []
    for host in sorted(theirs):
        others = sorted(theirs[host])
        problems.append("host %s is claimed by policy %r (rule %s) and by policy %r (rule %s, %s); "
                        "a host may belong to one policy only" % (
                            host, policy_name, ", ".join(sorted(ours[host])), others[0][0], others[0][1],
                            others[0][2]))
    return problems


def foreign_objects(objects, live, policy_name):
    """Problems for wanted objects whose live namesake is not this policy's."""
    problems = []
    for obj in objects:
        key = object_key(obj)
        found = live.get(key)
        if found is None or is_owned(found, policy_name):
            continue
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) == MANAGED_BY:
            owner = "it belongs to meshguard.egress policy %r" % labels.get(LABEL_POLICY)
        else:
            owner = "it exists without the meshguard.egress ownership labels (%s=%s, %s=%s)" % (
                LABEL_MANAGED_BY, MANAGED_BY, LABEL_POLICY, policy_name)
        problems.append("refusing to change %s: %s; rename or remove it, or choose another name_prefix"
                        % (describe(key), owner))
    return problems


def sidecar_warnings(objects, live, policy_name):
    """Warnings for our Sidecars in namespaces that already have a Sidecar of their own."""
    warnings = []
    for obj in objects:
        if obj["kind"] != "Sidecar":
            continue
        namespace = obj["metadata"].get("namespace")
        for key, other in sorted(live.items()):
            if key[1] == "Sidecar" and key[2] == namespace and not is_owned(other, policy_name):
                warnings.append(
                    "namespace %s already has its own Sidecar %s: Istio applies one Sidecar without a "
                    "workloadSelector per namespace, and a namespace Sidecar takes precedence over the mesh "
                    "default, so the outbound traffic policy may not be what %s says" % (
                        namespace, key[3], describe(object_key(obj))))
    return warnings
