# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a normalised policy lets through, asked the way the probes need it: who a rule allows,
where REGISTRY_ONLY applies, and a method and a path inside and outside a rule's L7 limits.

Pure questions on a ``Policy`` (policy.normalize_policy); options.py and matrix.py ask them.
Not for: building cases (matrix.py) or validating a policy (policy.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Alternatives for an L7 "outside the limits" probe, in order of preference (never CONNECT/TRACE/HEAD:
# curl -X HEAD waits for a body that never comes).
_METHOD_PREFERENCE = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_DENIED_PATH_CANDIDATES = ("/meshguard-egress-denied-path", "/meshguard-egress/denied", "/.meshguard-egress-denied")


def rule_allows(rule, namespace, service_account):
    """True when `rule` allows a workload running as namespace/service_account."""
    for ident in rule.allow:
        if ident.namespace == namespace and (ident.service_account is None or ident.service_account == service_account):
            return True
    return False


def allowed_by_any(policy, namespace, service_account):
    return any(rule_allows(rule, namespace, service_account) for rule in policy.rules)


def registry_only_for(policy, namespace):
    """True when the outbound policy REGISTRY_ONLY applies to pods of `namespace`."""
    mesh = policy.mesh
    if mesh.get("outbound_policy") != "REGISTRY_ONLY":
        return False
    return mesh.get("scope") == "mesh" or namespace in (mesh.get("namespaces") or [])


def first_caller(policy, predicate):
    """The first allowed identity (rules, then allow lists, in order) whose namespace satisfies `predicate`."""
    for rule in policy.rules:
        for ident in rule.allow:
            if predicate(ident.namespace):
                return ident
    return None


def path_matches(pattern, path):
    """Istio's AuthorizationPolicy path match: exact, prefix `p*`, suffix `*s`."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def inside_path(rule):
    """A path the rule's L7 limits allow ("/" without path limits)."""
    if not rule.paths:
        return "/"
    pattern = rule.paths[0]
    if pattern.endswith("*"):
        return pattern[:-1] + ("" if pattern[:-1].endswith("/") else "/") + "meshguard-probe"
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return "/meshguard-probe" + ("" if suffix.startswith(("/", ".")) else "/") + suffix
    return pattern


def outside_path(rule):
    """A path no limit of the rule matches, or None (e.g. a prefix `/*` matches every path)."""
    for path in _DENIED_PATH_CANDIDATES:
        if not any(path_matches(p, path) for p in rule.paths or ()):
            return path
    return None


def inside_method(rule):
    """A method the rule's L7 limits allow (GET when it may), or None when a probe can send none of them."""
    if not rule.methods or "GET" in rule.methods:
        return "GET"
    for method in _METHOD_PREFERENCE:
        if method in rule.methods:
            return method
    return None  # only HEAD/CONNECT/TRACE allowed: nothing a probe sends


def outside_method(rule):
    """A method outside the rule's L7 method limits, or None (no method limits, or none left)."""
    if not rule.methods:
        return None
    for method in _METHOD_PREFERENCE:
        if method not in rule.methods:
            return method
    return None
