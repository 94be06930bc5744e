# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Labels and annotations: the one home of every ``egress.meshguard.io`` key (and of the
``app.kubernetes.io/managed-by`` value) that marks what meshguard.egress created or changed.

The builder stamps the ownership labels on every object; apply prunes by them; teardown
deletes by them. An object without ``app.kubernetes.io/managed-by: meshguard.egress`` *and*
this policy's ``egress.meshguard.io/policy`` label is never changed or deleted by this
collection. Not here: which kinds we manage (kinds.py), how objects are built (builder*.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MANAGED_BY = "meshguard.egress"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_POLICY = "egress.meshguard.io/policy"
LABEL_RULE = "egress.meshguard.io/rule"
LABEL_COMPONENT = "egress.meshguard.io/component"
# Hosts a rule object routes, so that an apply can see which policy claims a host
# (one label per host is not possible: label keys cannot hold a FQDN longer than 63).
ANNOTATION_HOSTS = "egress.meshguard.io/hosts"
# sha256 of the wanted object, set by apply: a live object carrying the hash of what we want
# (and still holding every wanted field) needs no request at all.
APPLIED_HASH_ANNOTATION = "egress.meshguard.io/applied-hash"
# On Istio's mesh ConfigMap (not ours): the outbound traffic policy before the first policy
# changed it, and the policies that want it changed. Teardown of the last one restores it.
MESH_PREVIOUS_ANNOTATION = "egress.meshguard.io/previous-outbound-policy"

COMPONENT_RULE = "rule"
COMPONENT_GATEWAY = "gateway"
COMPONENT_MESH = "mesh-config"
COMPONENT_NETPOL = "anti-bypass"
COMPONENT_DEFAULT_DENY = "default-deny"
COMPONENTS = (COMPONENT_RULE, COMPONENT_GATEWAY, COMPONENT_MESH, COMPONENT_NETPOL, COMPONENT_DEFAULT_DENY)
# verify's short-lived probe pods (builder_probe.py): labelled as the policy's, but not a component
# egress_apply manages (the verify role creates and removes them).
COMPONENT_VERIFY_PROBE = "verify-probe"


def policy_labels(policy_name):
    """The labels every object of policy `policy_name` carries (the prune/teardown scope)."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_POLICY: policy_name}


def ownership_labels(policy_name, component, rule_name=None):
    """All ownership labels of one object."""
    labels = policy_labels(policy_name)
    labels[LABEL_COMPONENT] = component
    if rule_name is not None:
        labels[LABEL_RULE] = rule_name
    return labels


def label_selector(labels):
    """A Kubernetes label selector string (`k=v,k2=v2`) for a labels mapping."""
    return ",".join("%s=%s" % (key, labels[key]) for key in sorted(labels))


def policy_selector(policy_name):
    """Selector of every object of one policy."""
    return label_selector(policy_labels(policy_name))


def managed_selector():
    """Selector of every object of every meshguard.egress policy (to find other policies)."""
    return label_selector({LABEL_MANAGED_BY: MANAGED_BY})


def select_components(objects, components):
    """The objects whose component label is one of `components`, in their order. An object
    without labels is kept, so that the apply's checks report it rather than drop it silently
    (every object the builder makes is labelled)."""
    selected = []
    for obj in objects or []:
        labels = ((obj or {}).get("metadata") or {}).get("labels") if isinstance(obj, dict) else None
        if not labels or labels.get(LABEL_COMPONENT) in (components or ()):
            selected.append(obj)
    return selected


def is_owned(obj, policy_name):
    """True when `obj` (a dict with metadata.labels) belongs to policy `policy_name`."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_POLICY) == policy_name
