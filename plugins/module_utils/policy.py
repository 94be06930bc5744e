# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entry point of the policy model: ``normalize_policy`` and ``PolicyError``.

Pure Python, no cluster and no Ansible imports, so that the module, the roles, the
render playbook and the tests all judge a policy by the same rules.

``normalize_policy(raw)`` takes the user's declarative policy (the module options, which
are the role variables without their ``meshguard_egress_`` prefix) and returns a
``Policy`` (policy_model.py) with every default filled in, or raises ``PolicyError`` listing
*every* problem found. Each problem names where it is (``rules[0] (baidu).hosts[1]``) and the
rule it breaks, so a user reading an AWX log can fix the input without reading code.

For: composing the section validators (policy_sections.py), the rule validators
(policy_rule.py) and the checks across rules, which live here as named functions.
Not for: the model's records and constants (policy_model.py) or the generic helpers
(validation.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import TOP_DEFAULTS, TOP_KEYS, Policy
from ansible_collections.meshguard.egress.plugins.module_utils.policy_rule import normalize_rules
from ansible_collections.meshguard.egress.plugins.module_utils.policy_sections import (
    normalize_api_versions, normalize_cluster_domain, normalize_gateway, normalize_mesh, normalize_name_prefix,
    normalize_network_policy, normalize_policy_name, normalize_trust_domain)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import Errors, InputError, as_bool, \
    unknown_keys


class PolicyError(InputError):
    """The policy is invalid."""

    SUBJECT = "policy"


def normalize_policy(raw):
    """Validate a raw policy mapping and return a Policy; raise PolicyError on any problem."""
    errs = Errors()
    if not isinstance(raw, dict):
        raise PolicyError(["policy: must be a mapping, got %s" % type(raw).__name__])
    unknown_keys(errs, "policy", raw, TOP_KEYS)
    gateway = normalize_gateway(errs, raw.get("gateway"))
    mesh = normalize_mesh(errs, raw.get("mesh"), gateway)
    trust_domain = normalize_trust_domain(errs, raw.get("trust_domain"))
    cluster_domain = normalize_cluster_domain(errs, raw.get("cluster_domain"))
    api_versions = normalize_api_versions(errs, raw.get("api_versions"))
    network_policy = normalize_network_policy(errs, raw, gateway)
    policy_name = normalize_policy_name(errs, raw.get("policy_name"))
    name_prefix = normalize_name_prefix(errs, raw.get("name_prefix", TOP_DEFAULTS["name_prefix"]))
    allow_empty = as_bool(errs, "allow_empty", raw.get("allow_empty"), TOP_DEFAULTS["allow_empty"])
    rules = normalize_rules(errs, raw.get("rules"), allow_empty)
    check_across_rules(errs, rules, name_prefix, gateway["namespace"])
    check_mesh_fails_closed(errs, mesh, rules)
    if errs.items:
        raise PolicyError(errs.items)
    return Policy(rules=sorted(rules, key=lambda r: r.name), gateway=gateway, mesh=mesh,
                  trust_domain=trust_domain, cluster_domain=cluster_domain, api_versions=api_versions,
                  network_policy=network_policy, policy_name=policy_name, name_prefix=name_prefix,
                  allow_empty=allow_empty)


# --------------------------------------------------------------------------------------------
# Checks across rules

def check_across_rules(errs, rules, name_prefix, gateway_namespace):
    """Unique rule names, one owner per host, derived names that fit, and no client in the
    gateway's namespace; problems are reported rule by rule, host by host."""
    by_name = {}
    host_owner = {}
    for rule in rules:
        where = "rules[%d] (%s)" % (rule.index, rule.name)
        check_unique_name(errs, where, rule, by_name)
        for host in rule.hosts:
            check_one_owner(errs, where, rule, host, host_owner)
            check_object_name_fits(errs, where, rule, host, name_prefix)
    if gateway_namespace:
        check_gateway_namespace_not_client(errs, rules, gateway_namespace)


def check_unique_name(errs, where, rule, by_name):
    """No two rules share a name; `by_name` maps the names seen so far to their rule index."""
    if rule.name is None:
        return
    if rule.name in by_name:
        errs.add(where + ".name", "duplicate rule name %r (also rules[%d])" % (rule.name, by_name[rule.name]))
    else:
        by_name[rule.name] = rule.index


def check_one_owner(errs, where, rule, host, host_owner):
    """A host belongs to one rule (so to one tls mode); `host_owner` maps the hosts seen so far."""
    other = host_owner.get(host)
    if other is None:
        host_owner[host] = rule
    elif other.tls != rule.tls:
        errs.add(where + ".hosts", "host %r is claimed by rules[%d] (%s) with tls %s and here with tls %s: "
                                   "one host has one tls mode" % (host, other.index, other.name, other.tls, rule.tls))
    else:
        errs.add(where + ".hosts", "host %r is already declared by rules[%d] (%s); one host belongs to one "
                                   "rule (list every caller in that rule)" % (host, other.index, other.name))


def check_object_name_fits(errs, where, rule, host, name_prefix):
    """The per-host object name (<prefix><rule>.<host>) fits Kubernetes' 253 characters."""
    if rule.name and len(name_prefix) + len(rule.name) + 1 + len(host) > 253:
        errs.add(where + ".hosts", "object name for host %r would exceed 253 characters; shorten the rule "
                                   "name or name_prefix" % host)


def check_gateway_namespace_not_client(errs, rules, gateway_namespace):
    """No rule allows a caller in the gateway's namespace."""
    for rule in rules:
        for ident in rule.allow:
            if ident.namespace == gateway_namespace:
                errs.add("rules[%d] (%s).allow" % (rule.index, rule.name),
                         "namespace %r is the gateway's namespace, which is reserved for the gateway: only the "
                         "gateway can reach the external TLS ports there, and the anti-bypass NetworkPolicies "
                         "leave it open (docs/security.md)" % ident.namespace)


# --------------------------------------------------------------------------------------------
# The outbound policy against the rules

FAIL_OPEN_HINT = "set mesh.allow_fail_open: true if that is what you mean (e.g. while migrating)"


def check_mesh_fails_closed(errs, mesh, rules):
    """An outbound policy that leaves allowed callers on ALLOW_ANY is refused unless the user says
    it is meant (mesh.allow_fail_open). Under ALLOW_ANY a sidecar sends traffic for an address no
    ServiceEntry names straight out (Istio's PassthroughCluster), so a pod reaches every other host,
    and a rule's host too by its address, without passing the gateway."""
    if not rules or mesh.get("allow_fail_open") or not mesh.get("outbound_policy"):
        return
    if mesh["outbound_policy"] == "ALLOW_ANY":
        errs.add("mesh.outbound_policy", "ALLOW_ANY with rules fails open: every pod can still reach every host "
                                         "(the rules' hosts too, by address) without the egress gateway, so the "
                                         "rules restrict nothing; use REGISTRY_ONLY, or " + FAIL_OPEN_HINT)
        return
    if mesh.get("scope") != "namespaces" or not mesh.get("namespaces"):
        return
    for rule in rules:
        outside = sorted(set(i.namespace for i in rule.allow) - set(mesh["namespaces"]))
        if outside:
            errs.add("mesh.namespaces", "does not cover %s, which rules[%d] (%s) allows: pods there stay ALLOW_ANY "
                                        "and reach every host without the egress gateway; add %s, or %s"
                     % (", ".join(outside), rule.index, rule.name, "them" if len(outside) > 1 else "it",
                        FAIL_OPEN_HINT))
