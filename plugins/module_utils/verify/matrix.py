# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test matrix: every case a normalised policy implies, derived, never typed twice.

``build_matrix(policy, options)`` runs the derivations listed in ``DERIVATIONS``, one function
per kind of case, in this order (the order of the cases, which users' ``exclude`` patterns and
the tests rely on):

* ``allowed_cases``  every allowed identity -> each host of its rule
* ``denied_cases``   identities outside a rule's allow list -> its hosts
* ``unlisted_cases`` an allowed identity -> a host in no rule (REGISTRY_ONLY blocks it)
* ``bypass_cases``   an allowed identity straight to a host over TLS, skipping the gateway
* ``l7_cases``       per host, a method (``l7-method``) and a path (``l7-path``) outside the L7 limits

then appends the user's cases (options.py) and drops the excluded ones. Each derivation returns
(cases, notes); a note says why a case the reader might expect could not be built.

Not for: validating options (options.py), where probes run (probe_pods.py) or running them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible_collections.meshguard.egress.plugins.module_utils.validation import identity_text
from ansible_collections.meshguard.egress.plugins.module_utils.verify.case import new_case
from ansible_collections.meshguard.egress.plugins.module_utils.verify.options import VerifyError
from ansible_collections.meshguard.egress.plugins.module_utils.verify.reach import first_caller, inside_method, \
    inside_path, outside_method, outside_path, registry_only_for, rule_allows


def _run_as(ident, options):
    """The service account a probe for `ident` runs as (the namespace's account for `ns/*`)."""
    return ident.service_account or options.namespace_service_account


def _scheme(rule):
    return "http" if rule.is_http else "https"


def allowed_cases(policy, options):
    """Every allowed identity -> each host of its rule (a dry-run rule's callers are denied)."""
    cases, notes = [], []
    for rule in policy.rules:
        method, path = inside_method(rule), inside_path(rule)
        if method is None:
            notes.append("rule %s: allows only %s, which a probe cannot send; no allowed case"
                         % (rule.name, ", ".join(rule.methods)))
            continue
        if rule.dry_run:
            expect, note = "denied", ("rule %s is dry-run: its AuthorizationPolicy is logged, not enforced, so "
                                      "the gateway's allow-nothing denies" % rule.name)
        else:
            expect, note = "allowed", "allowed by rule %s" % rule.name
        for ident in rule.allow:
            for host in rule.hosts:
                cases.append(new_case(kind="allowed", rule=rule.name, namespace=ident.namespace,
                                      service_account=ident.service_account, run_as=_run_as(ident, options),
                                      host=host, port=rule.app_port, scheme=_scheme(rule), method=method, path=path,
                                      expect=expect, via_gateway=True, note=note))
    return cases, notes


def _outsiders(policy, options):
    """(namespace, service_account, run_as) to probe as outsiders: the denied probe identity first,
    then each allowed identity once, in the order the rules list them."""
    outsiders = []
    if options.denied_identity is not None:
        namespace, service_account = options.denied_identity
        outsiders.append((namespace, service_account, service_account))
    seen = set()
    for rule in policy.rules:
        for ident in rule.allow:
            key = (ident.namespace, ident.service_account)
            if key not in seen:
                seen.add(key)
                outsiders.append((ident.namespace, ident.service_account, _run_as(ident, options)))
    return outsiders


def denied_cases(policy, options):
    """The probe identity to every host, and each allowed identity to the hosts of the rules that do not list it."""
    cases, notes = [], []
    if options.denied_identity is None:
        notes.append("no identity outside every allow list found; set denied_identity")
    for namespace, service_account, run_as in _outsiders(policy, options):
        for rule in policy.rules:
            if rule_allows(rule, namespace, run_as):
                continue
            method, path = inside_method(rule) or "GET", inside_path(rule)
            note = "%s is in no allow list of rule %s" % (identity_text(namespace, run_as), rule.name)
            for host in rule.hosts:
                cases.append(new_case(kind="denied", rule=rule.name, namespace=namespace,
                                      service_account=service_account, run_as=run_as, host=host, port=rule.app_port,
                                      scheme=_scheme(rule), method=method, path=path, expect="denied",
                                      via_gateway=True, note=note))
    return cases, notes


def unlisted_cases(policy, options):
    """The first allowed identity under REGISTRY_ONLY -> a host in no rule: blocked."""
    caller = first_caller(policy, lambda namespace: registry_only_for(policy, namespace))
    if caller is None:
        return [], ["no unlisted-host case: REGISTRY_ONLY does not apply to any allowed identity's namespace "
                    "(outbound_policy %s)" % policy.mesh.get("outbound_policy")]
    return [new_case(kind="unlisted", rule=None, namespace=caller.namespace, service_account=caller.service_account,
                     run_as=_run_as(caller, options), host=options.unlisted_host, port=80, scheme="http",
                     method="GET", path="/", expect="blocked", via_gateway=False,
                     note="host in no rule: REGISTRY_ONLY sends it to the BlackHole")], []


def _bypass_caller(policy, rule):
    """(identity, what closes the bypass) for a rule's bypass case, or (None, None)."""
    ident = next((i for i in rule.allow if registry_only_for(policy, i.namespace)), None)
    if ident is not None:
        return ident, "REGISTRY_ONLY: only the gateway may reach the TLS port"
    if policy.network_policy.get("enabled"):
        return rule.allow[0], "anti-bypass NetworkPolicy (needs a CNI that enforces it)"
    return None, None


def bypass_cases(policy, options):
    """Per plain-HTTP (originate/none) rule, an allowed identity straight to each host over TLS: blocked."""
    cases, notes = [], []
    for rule in policy.rules:
        if not rule.is_http:
            continue  # passthrough: the app's TLS already goes through the gateway
        tls_port = rule.port if rule.tls == "originate" else 443
        if rule.tls == "none" and rule.port == 443:
            continue
        ident, why = _bypass_caller(policy, rule)
        if ident is None:
            notes.append("rule %s: no bypass case: neither REGISTRY_ONLY nor anti-bypass NetworkPolicies cover its "
                         "callers" % rule.name)
            continue
        for host in rule.hosts:
            cases.append(new_case(kind="bypass", rule=rule.name, namespace=ident.namespace,
                                  service_account=ident.service_account, run_as=_run_as(ident, options), host=host,
                                  port=tls_port, scheme="https", method="GET", path="/", expect="blocked",
                                  via_gateway=False, note="direct TLS to the host, skipping the gateway; closed by "
                                  + why))
    return cases, notes


def _l7_case(kind, rule, ident, options, host, method, path, note):
    return new_case(kind=kind, rule=rule.name, namespace=ident.namespace, service_account=ident.service_account,
                    run_as=_run_as(ident, options), host=host, port=rule.app_port, scheme="http", method=method,
                    path=path, expect="denied", via_gateway=True, note=note)


def l7_cases(policy, options):
    """Per host of an enforced rule with L7 limits, from its first identity: a method outside its
    methods (`l7-method`) and a path outside its paths (`l7-path`): denied."""
    cases, notes = [], []
    for rule in policy.rules:
        if not rule.is_http or not (rule.methods or rule.paths) or rule.dry_run:
            continue
        ident, method, path = rule.allow[0], inside_method(rule), inside_path(rule)
        if method is None:
            continue
        bad_method, bad_path = outside_method(rule), outside_path(rule)
        for host in rule.hosts:
            if bad_method:
                cases.append(_l7_case("l7-method", rule, ident, options, host, bad_method, path,
                                      "method %s is outside rule %s's methods %s"
                                      % (bad_method, rule.name, ", ".join(rule.methods))))
            if rule.paths and bad_path:
                cases.append(_l7_case("l7-path", rule, ident, options, host, method, bad_path,
                                      "path %s is outside rule %s's paths %s"
                                      % (bad_path, rule.name, ", ".join(rule.paths))))
        if rule.paths and not bad_path:
            notes.append("rule %s: every path matches its limits; no l7-path case" % rule.name)
    return cases, notes


# The derivations, in the order of their cases.
DERIVATIONS = (allowed_cases, denied_cases, unlisted_cases, bypass_cases, l7_cases)


def _check_user_names(derived, user_cases):
    """Raise VerifyError when a user's case takes the name of a derived (or earlier user) case."""
    names = set(c.name for c in derived)
    problems = []
    for case in user_cases:
        if case.name in names:
            problems.append("cases: name %r is already a derived case; exclude it or choose another name"
                            % case.name)
        names.add(case.name)
    if problems:
        raise VerifyError(problems)


def _exclude(cases, patterns):
    """(kept cases, excluded names, notes on patterns that match nothing); patterns are shell-style."""
    kept, excluded, used = [], [], set()
    for case in cases:
        hits = [p for p in patterns if fnmatch.fnmatchcase(case.name, p)]
        used.update(hits)
        (excluded if hits else kept).append(case)
    notes = ["exclude: %r matches no case" % p for p in patterns if p not in used]
    return kept, [c.name for c in excluded], notes


def build_matrix(policy, options):
    """The test cases for `policy` (a normalised Policy) and `options` (normalize_options).

    Returns (cases, excluded, notes): Case records in a stable order, excluded case names, and notes
    about derived cases that could not be built (e.g. no path outside the L7 limits)."""
    cases, notes = [], []
    for derive in DERIVATIONS:
        more, why = derive(policy, options)
        cases += more
        notes += why
    _check_user_names(cases, options.cases)
    kept, excluded, unmatched = _exclude(cases + list(options.cases), options.exclude)
    return kept, excluded, notes + unmatched
