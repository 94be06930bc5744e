# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of the rules of a policy: one small validator per section of a rule.

For: ``normalize_rules`` (the `rules` list) and ``normalize_rule`` (one rule), composed of
``check_name``, ``check_tls_port``, ``check_hosts``, ``check_allow``, ``check_http``,
``check_dry_run``, ``check_credential_name`` and ``check_ca_certificates``. Each takes the
error collector and the path of its rule (``rules[0] (baidu)``), records every problem of its
section and returns the valid value (or its default).

Not for: checks across rules (unique names, one owner per host: policy.py), the other
sections of a policy (policy_sections.py), or the generic helpers (validation.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import (
    DEFAULT_CA_CERTIFICATES, DEFAULT_PORT, HTTP_KEYS, HTTP_METHODS, NAME_SEPARATOR, ORIGINATE_APP_PORT,
    RESERVED_RULE_NAMES, RULE_KEYS, TLS_MODES, Identity, Rule)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import (
    as_bool, as_dict, as_int, as_list, as_str, check_label, enum, host_problem, identity_text, is_dns_subdomain,
    parse_identity, path_problem, unique_items, unknown_keys)


def normalize_rules(errs, raw_rules, allow_empty):
    """The valid rules of the `rules` list; an empty list is a problem unless allow_empty."""
    rules = []
    items = as_list(errs, "rules", raw_rules)
    for index, raw_rule in enumerate(items):
        rule = normalize_rule(errs, index, raw_rule)
        if rule is not None:
            rules.append(rule)
    if not items and isinstance(raw_rules, (list, tuple, type(None))):
        if not allow_empty:
            errs.add("rules", "is empty: the gateway would deny every request (only the allow-nothing policy). "
                              "Set allow_empty (meshguard_egress_allow_empty) to true if that is what you want; "
                              "a misspelt variable such as meshguard_egress_rule also ends up here")
    return rules


def normalize_rule(errs, index, raw):
    """The Rule of rules[index] with every default filled in, or None when it is not a mapping."""
    where = "rules[%d]" % index
    if not isinstance(raw, dict):
        errs.add(where, "must be a mapping, got %s" % type(raw).__name__)
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = "rules[%d] (%s)" % (index, name)
    unknown_keys(errs, where, raw, RULE_KEYS)
    name = check_name(errs, where, name)
    tls, port = check_tls_port(errs, where, raw.get("tls"), raw.get("port"))
    hosts = check_hosts(errs, where, raw.get("hosts"))
    allow = check_allow(errs, where, raw.get("allow"))
    methods, paths = check_http(errs, where, raw.get("http"), tls)
    dry_run = check_dry_run(errs, where, raw.get("dry_run"))
    credential_name = check_credential_name(errs, where, raw.get("credential_name"), tls)
    ca_certificates = check_ca_certificates(errs, where, raw.get("ca_certificates"), tls, credential_name)
    return Rule(name=name, hosts=hosts, tls=tls, port=port, allow=allow, methods=methods, paths=paths,
                dry_run=dry_run, credential_name=credential_name, ca_certificates=ca_certificates, index=index)


def check_name(errs, where, value):
    """The rule's name: required, a DNS label, without the name separator, not a reserved name."""
    name = as_str(errs, where + ".name", value, required=True)
    if name is not None and check_label(errs, where + ".name", name, "rule name"):
        if NAME_SEPARATOR in name:
            errs.add(where + ".name", "%r must not contain %r: it separates policy and rule in object names"
                     % (name, NAME_SEPARATOR))
        elif name in RESERVED_RULE_NAMES:
            errs.add(where + ".name", "%r is reserved for a policy-wide object (reserved: %s)"
                     % (name, ", ".join(RESERVED_RULE_NAMES)))
    return name


def check_tls_port(errs, where, tls_value, port_value):
    """(tls, port): the TLS mode (default originate) and the port, whose default follows the mode."""
    tls = enum(errs, where + ".tls", tls_value, TLS_MODES, "originate")
    port = as_int(errs, where + ".port", port_value, DEFAULT_PORT.get(tls or "originate"), 1, 65535)
    if tls == "originate" and port == ORIGINATE_APP_PORT:
        errs.add(where + ".port", "port %d is the application-facing plain-HTTP port in originate mode; "
                                  "`port` is where the gateway originates TLS to (usually 443)" % port)
    return tls, port


def check_hosts(errs, where, value):
    """The rule's external hosts, sorted: required, each an exact external FQDN, no duplicates."""
    hosts = []
    seen = set()
    for h_index, host in enumerate(as_list(errs, where + ".hosts", value, required=True)):
        problem = host_problem(host)
        if problem:
            errs.add("%s.hosts[%d]" % (where, h_index), "%r: %s" % (host, problem) if isinstance(host, str)
                     else problem)
        elif host in seen:
            errs.add("%s.hosts[%d]" % (where, h_index), "duplicate host %r" % host)
        else:
            seen.add(host)
            hosts.append(host)
    return sorted(hosts)


def check_allow(errs, where, value):
    """Who may call, as Identities sorted by (namespace, service account): required, never empty."""
    allow = []
    seen = set()
    raw_allow = as_list(errs, where + ".allow", value, required=True,
                        empty_hint="a rule must name who may call its hosts (an empty list would allow nobody "
                                   "and Istio reads an empty ALLOW rule as allow-all)")
    for a_index, entry in enumerate(raw_allow):
        parsed = parse_identity(errs, "%s.allow[%d]" % (where, a_index), entry)
        if parsed is None:
            continue
        ident = Identity(*parsed)
        if ident in seen:
            errs.add("%s.allow[%d]" % (where, a_index),
                     "duplicate entry %r" % identity_text(ident.namespace, ident.service_account))
        else:
            seen.add(ident)
            allow.append(ident)
    return sorted(allow, key=Identity.key)


def check_http(errs, where, value, tls):
    """(methods, paths): the L7 limits, each sorted, or None for no limit."""
    http = as_dict(errs, where + ".http", value, HTTP_KEYS)
    if not http:
        return None, None
    if tls == "passthrough":
        errs.add(where + ".http", "L7 limits (methods/paths) need tls originate or none: with passthrough "
                                  "the gateway only sees the TLS SNI, not HTTP")
    methods = _http_methods(errs, where + ".http.methods", http["methods"]) if "methods" in http else None
    paths = _http_paths(errs, where + ".http.paths", http["paths"]) if "paths" in http else None
    return (sorted(methods) if methods else None), (sorted(paths) if paths else None)


def _method_problem(method):
    if not isinstance(method, str) or method not in HTTP_METHODS:
        return "%r is not an HTTP method (one of %s, uppercase)" % (method, ", ".join(HTTP_METHODS))
    return None


def _path_problem(path):
    problem = path_problem(path)
    return "%r: %s" % (path, problem) if problem else None


def _http_methods(errs, where, value):
    return unique_items(errs, where, value, "method", _method_problem, empty_hint="omit `methods` to allow all")


def _http_paths(errs, where, value):
    return unique_items(errs, where, value, "path", _path_problem, empty_hint="omit `paths` to allow all")


def check_dry_run(errs, where, value):
    """Whether the rule's AuthorizationPolicy is only logged (default false)."""
    return as_bool(errs, where + ".dry_run", value, False)


def check_credential_name(errs, where, value, tls):
    """The Secret with a client certificate for mutual TLS origination (originate only), or None."""
    credential_name = as_str(errs, where + ".credential_name", value)
    if credential_name is not None:
        if tls != "originate":
            errs.add(where + ".credential_name", "client certificates (mutual TLS origination) need tls originate")
        elif not is_dns_subdomain(credential_name):
            errs.add(where + ".credential_name", "%r is not a valid Secret name" % credential_name)
    return credential_name


def check_ca_certificates(errs, where, value, tls, credential_name):
    """The CA bundle the gateway verifies the external server with: originate without
    credential_name only, where it defaults to the OS bundle of Istio's proxy images."""
    ca_certificates = as_str(errs, where + ".ca_certificates", value)
    if ca_certificates is not None:
        if tls != "originate":
            errs.add(where + ".ca_certificates", "a CA bundle to verify the external server needs tls originate")
        elif credential_name is not None:
            errs.add(where + ".ca_certificates", "with credential_name the CA certificate comes from that Secret "
                                                 "(key cacert); Istio rejects both together")
        elif not ca_certificates.startswith("/") or any(c.isspace() for c in ca_certificates):
            errs.add(where + ".ca_certificates", "%r must be an absolute file path in the gateway's proxy "
                                                 "container" % ca_certificates)
    elif tls == "originate" and credential_name is None:
        ca_certificates = DEFAULT_CA_CERTIFICATES
    return ca_certificates
