# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kinds meshguard.egress manages: one table, and the small lookups derived from it.

One row per (API group, kind): the REST resource plural, the scope (namespaced or cluster),
the API version used when no object names one, the apply phase, and the components whose
objects may be of that kind (prune and teardown list these kinds even when none is wanted).
Kinds that are read or patched but never built (Istio's mesh ConfigMap, Secrets, Pods) have
no component; they are here so that the client needs no discovery request for them.

Not here: how objects are built (builder*.py), applied (apply/), or labelled (labels.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    COMPONENT_DEFAULT_DENY, COMPONENT_GATEWAY, COMPONENT_MESH, COMPONENT_NETPOL, COMPONENT_RULE)

NAMESPACED = "namespaced"
CLUSTER = "cluster"

# Apply order on an empty cluster; deletes go in reverse. Roles come before the RoleBindings
# that name them: the API server checks a binding made by an account without the `bind` verb
# against the rules of the role it references, which must exist by then (RBAC escalation check).
PHASE_NAMESPACES, PHASE_IDENTITY, PHASE_WORKLOAD, PHASE_AUTHZ, PHASE_ROUTING = 0, 1, 2, 3, 4
PHASE_NAMES = {PHASE_NAMESPACES: "namespaces", PHASE_IDENTITY: "service accounts, roles, configuration",
               PHASE_WORKLOAD: "gateway workload", PHASE_AUTHZ: "authorization policies",
               PHASE_ROUTING: "routing and network policies"}


class Kind(namedtuple("Kind", "group kind plural scope version phase components")):
    """One row of the table (``components``: a tuple, empty for kinds we never build)."""

    __slots__ = ()

    @property
    def namespaced(self):
        return self.scope == NAMESPACED

    @property
    def group_kind(self):
        return (self.group, self.kind)


_RBAC, _NET_ISTIO, _SEC_ISTIO = "rbac.authorization.k8s.io", "networking.istio.io", "security.istio.io"

KINDS = (
    Kind("", "Namespace", "namespaces", CLUSTER, "v1", PHASE_NAMESPACES, (COMPONENT_GATEWAY,)),
    Kind("", "ServiceAccount", "serviceaccounts", NAMESPACED, "v1", PHASE_IDENTITY, (COMPONENT_GATEWAY,)),
    Kind(_RBAC, "Role", "roles", NAMESPACED, "v1", PHASE_IDENTITY, (COMPONENT_GATEWAY,)),
    Kind("", "ConfigMap", "configmaps", NAMESPACED, "v1", PHASE_IDENTITY, ()),
    Kind("", "Secret", "secrets", NAMESPACED, "v1", PHASE_IDENTITY, ()),
    Kind(_RBAC, "RoleBinding", "rolebindings", NAMESPACED, "v1", PHASE_WORKLOAD, (COMPONENT_GATEWAY,)),
    Kind("", "Service", "services", NAMESPACED, "v1", PHASE_WORKLOAD, (COMPONENT_GATEWAY,)),
    Kind("apps", "Deployment", "deployments", NAMESPACED, "v1", PHASE_WORKLOAD, (COMPONENT_GATEWAY,)),
    Kind("policy", "PodDisruptionBudget", "poddisruptionbudgets", NAMESPACED, "v1", PHASE_WORKLOAD,
         (COMPONENT_GATEWAY,)),
    Kind("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", NAMESPACED, "v2", PHASE_WORKLOAD,
         (COMPONENT_GATEWAY,)),
    Kind(_SEC_ISTIO, "AuthorizationPolicy", "authorizationpolicies", NAMESPACED, "v1", PHASE_AUTHZ,
         (COMPONENT_RULE, COMPONENT_DEFAULT_DENY)),
    Kind(_NET_ISTIO, "ServiceEntry", "serviceentries", NAMESPACED, "v1", PHASE_ROUTING, (COMPONENT_RULE,)),
    Kind(_NET_ISTIO, "Gateway", "gateways", NAMESPACED, "v1", PHASE_ROUTING, (COMPONENT_RULE,)),
    Kind(_NET_ISTIO, "DestinationRule", "destinationrules", NAMESPACED, "v1", PHASE_ROUTING, (COMPONENT_RULE,)),
    Kind(_NET_ISTIO, "VirtualService", "virtualservices", NAMESPACED, "v1", PHASE_ROUTING, (COMPONENT_RULE,)),
    Kind(_NET_ISTIO, "Sidecar", "sidecars", NAMESPACED, "v1", PHASE_ROUTING, (COMPONENT_MESH,)),
    Kind("networking.k8s.io", "NetworkPolicy", "networkpolicies", NAMESPACED, "v1", PHASE_ROUTING,
         (COMPONENT_NETPOL,)),
    Kind("", "Pod", "pods", NAMESPACED, "v1", PHASE_ROUTING, ()),
)

# --- lookups derived from the table ---------------------------------------------------------

# (group, kind) of every cluster-scoped kind.
CLUSTER_SCOPED = frozenset(k.group_kind for k in KINDS if not k.namespaced)
# {group: version}: the API version of a group when neither an object nor the policy names one.
DEFAULT_VERSIONS = dict((k.group, k.version) for k in KINDS)
_PHASE_OF_KIND = dict((k.kind, k.phase) for k in KINDS)
_API_VERSION_OF_KIND = dict((k.kind, "%s/%s" % (k.group, k.version) if k.group else k.version) for k in KINDS)


def api_version_of(kind):
    """The API version the builder writes for a kind of the table ("apps/v1" for Deployment).
    The Istio kinds take the policy's api_versions instead (Policy.api_versions)."""
    return _API_VERSION_OF_KIND[kind]


def phase_of(kind):
    """The apply phase of a kind (by name); kinds outside the table go last, with the routes."""
    return _PHASE_OF_KIND.get(kind, PHASE_ROUTING)


def kinds_of(component):
    """(group, kind) of every kind whose objects may belong to `component`, in table order."""
    return tuple(k.group_kind for k in KINDS if component in k.components)


def api_version_for(group, versions=None):
    """'group/version' (or 'version' for the core group): `versions` ({group: version}, the
    policy's choice) first, else DEFAULT_VERSIONS, else v1."""
    version = (versions or {}).get(group) or DEFAULT_VERSIONS.get(group, "v1")
    return "%s/%s" % (group, version) if group else version
