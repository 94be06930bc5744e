# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An evaluator of Istio AuthorizationPolicy semantics for the tests, written from Istio's
reference (istio.io/latest/docs/reference/config/security/authorization-policy/) and
pilot/pkg/security/authz, independently of the builder:

- a workload with no enforced ALLOW policy allows everything; with some, a request is
  allowed only if it matches one of their rules; DENY would win over ALLOW (we emit none);
- a policy with `rules` unset matches nothing ("allow-nothing"); a rule `{}` matches all;
- a rule matches if any `from` source matches (or `from` is empty), any `to` operation
  matches (or `to` is empty), and every `when` condition matches;
- string fields support exact, prefix `x*`, suffix `*x` and presence `*` matching; hosts
  are case-insensitive;
- on a TCP chain, HTTP-only fields (hosts, methods, paths) make the operation never match
  for ALLOW (Istio drops such rules for TCP);
- policies with annotation istio.io/dry-run=true are not enforced.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

HTTP_ONLY_OPERATION_FIELDS = ("hosts", "methods", "paths", "notHosts", "notMethods", "notPaths")


def string_match(pattern, value, case_insensitive=False):
    if value is None:
        return False
    if case_insensitive:
        pattern, value = pattern.lower(), value.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _any(patterns, value, case_insensitive=False):
    return any(string_match(p, value, case_insensitive) for p in patterns)


def source_matches(source, request):
    for field in source:
        if field not in ("principals", "namespaces"):
            raise AssertionError("evaluator does not model source field %r" % field)
    if "principals" in source and not _any(source["principals"], request.get("principal")):
        return False
    if "namespaces" in source and not _any(source["namespaces"], request.get("namespace")):
        return False
    return True


def operation_matches(operation, request):
    tcp = request["protocol"] == "tcp"
    if tcp and any(f in operation for f in HTTP_ONLY_OPERATION_FIELDS):
        return False
    for field in operation:
        if field not in ("hosts", "ports", "methods", "paths"):
            raise AssertionError("evaluator does not model operation field %r" % field)
    if "ports" in operation and str(request["port"]) not in operation["ports"]:
        return False
    if "hosts" in operation and not _any(operation["hosts"], request.get("host"), case_insensitive=True):
        return False
    if "methods" in operation and request.get("method") not in operation["methods"]:
        return False
    if "paths" in operation and not _any(operation["paths"], request.get("path")):
        return False
    return True


def condition_matches(condition, request):
    if condition["key"] != "connection.sni":
        raise AssertionError("evaluator does not model condition %r" % condition["key"])
    return _any(condition.get("values", []), request.get("sni"))


def rule_matches(rule, request):
    froms = rule.get("from") or []
    tos = rule.get("to") or []
    if froms and not any(source_matches(f.get("source") or {}, request) for f in froms):
        return False
    if tos and not any(operation_matches(t.get("operation") or {}, request) for t in tos):
        return False
    return all(condition_matches(c, request) for c in rule.get("when") or [])


def policy_matches(policy, request):
    rules = policy["spec"].get("rules")
    if rules is None:  # allow-nothing
        return False
    return any(rule_matches(rule, request) for rule in rules)


def selects(policy, pod_labels):
    selector = (policy["spec"].get("selector") or {}).get("matchLabels") or {}
    return all(pod_labels.get(k) == v for k, v in selector.items())


def is_dry_run(policy):
    return (policy["metadata"].get("annotations") or {}).get("istio.io/dry-run") == "true"


def allowed(policies, request, pod_labels, dry_run=False):
    """Is `request` allowed at a workload with `pod_labels`? dry_run=True evaluates only the
    dry-run policies as if they were enforced (what Istio logs as shadow decisions)."""
    relevant = [p for p in policies if p["kind"] == "AuthorizationPolicy" and selects(p, pod_labels)
                and is_dry_run(p) == dry_run]
    for policy in relevant:
        if policy["spec"].get("action", "ALLOW") != "ALLOW":
            raise AssertionError("unexpected action %r" % policy["spec"].get("action"))
    if not relevant:
        return True
    return any(policy_matches(p, request) for p in relevant)
