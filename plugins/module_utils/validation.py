# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation helpers shared by the policy model and the verify options.

For: the one error collector (``Errors``: every problem, each with its path), the one
exception that lists them (``InputError``), coercion of raw option values (``as_dict``,
``as_bool``, ``as_int``, ``as_str``, ``as_list``, ``enum``, ``unknown_keys``), Kubernetes
name checks, external hosts, HTTP paths, CIDRs, and the one parser and printer of an
identity (a namespace, optionally one service account in it).

Not for: what a policy or a verify option means (policy_model.py, policy_rule.py,
policy_sections.py, verify/options.py), and nothing that talks to a cluster or imports Ansible.
Every helper takes the collector and the path of the value it checks, records what is
wrong and returns the usable value (or a default), so that callers go on and report every
problem at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# The domain of the names under which only the gateway knows an originate host's TLS port
# (builder.gateway_service_entry); host_problem refuses every host in it.
ORIGINATION_ALIAS_DOMAIN = "egress.meshguard.internal"
# The keys of an identity written as a mapping.
IDENTITY_KEYS = ("namespace", "service_account")

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_CIDR_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")
_IN_CLUSTER_SUFFIXES = (".svc", ".cluster.local", ".local")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class InputError(ValueError):
    """Invalid input. ``errors`` holds one line per problem; SUBJECT names what was checked."""

    SUBJECT = "input"

    def __init__(self, errors):
        self.errors = list(errors)
        super(InputError, self).__init__(
            "invalid meshguard.egress %s (%d problem%s):\n  - %s"
            % (self.SUBJECT, len(self.errors), "" if len(self.errors) == 1 else "s", "\n  - ".join(self.errors)))


class Errors:
    """Collects every problem of an input, in the order found, each as ``<path>: <message>``."""

    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append("%s: %s" % (where, message))


# --------------------------------------------------------------------------------------------
# Coercion of raw values

def unknown_keys(errs, where, value, allowed):
    for key in sorted(set(value) - set(allowed), key=str):
        errs.add(where, "unknown key %r (allowed: %s)" % (key, ", ".join(allowed)))


def as_dict(errs, where, value, allowed):
    """Return value as a dict (None -> {}), recording type errors and unknown keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errs.add(where, "must be a mapping, got %s" % type(value).__name__)
        return None
    unknown_keys(errs, where, value, allowed)
    return value


def as_bool(errs, where, value, default):
    """A boolean, also from the strings YAML 1.1 and Ansible read as one ('yes', 'off', ...)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    errs.add(where, "must be a boolean, got %r" % (value,))
    return default


def as_int(errs, where, value, default, low, high):
    """An integer in [low, high], also from a string of digits; None when it is not one."""
    if value is None:
        return default
    if isinstance(value, bool):
        errs.add(where, "must be an integer, got boolean %r" % (value,))
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        errs.add(where, "must be an integer, got %r" % (value,))
        return None
    if not low <= value <= high:
        errs.add(where, "%d is out of range (%d-%d)" % (value, low, high))
        return None
    return value


def as_str(errs, where, value, default=None, required=False):
    """A string; None and "" are absent (the default, or a problem when required)."""
    if value is None or value == "":
        if required:
            errs.add(where, "is required")
        return default
    if not isinstance(value, str):
        errs.add(where, "must be a string, got %r" % (value,))
        return None
    return value


def as_list(errs, where, value, required=False, empty_hint=None):
    """A list (None -> []); a string or a mapping is not a list."""
    if value is None:
        if required:
            errs.add(where, "is required")
        return []
    if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
        errs.add(where, "must be a list, got %s" % type(value).__name__)
        return []
    if required and not value:
        errs.add(where, "must not be empty" + ("; " + empty_hint if empty_hint else ""))
    return list(value)


def unique_items(errs, where, value, what, problem, empty_hint=None):
    """A required, non-empty list whose items are each valid and listed once, in input order.

    `problem(item)` is the message for an invalid item (None when it is valid); a repeated item is
    reported as a duplicate `what`. Each problem names the item's index."""
    items = []
    for index, item in enumerate(as_list(errs, where, value, required=True, empty_hint=empty_hint)):
        at = "%s[%d]" % (where, index)
        message = problem(item)
        if message:
            errs.add(at, message)
        elif item in items:
            errs.add(at, "duplicate %s %r" % (what, item))
        else:
            items.append(item)
    return items


def enum(errs, where, value, choices, default):
    """One of `choices` (strings), or None when the value is another."""
    value = as_str(errs, where, value, default)
    if value is not None and value not in choices:
        errs.add(where, "%r is not one of %s" % (value, ", ".join(choices)))
        return None
    return value


# --------------------------------------------------------------------------------------------
# Kubernetes names and labels

def is_dns_label(value):
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_RE.fullmatch(value))


def is_dns_subdomain(value):
    return isinstance(value, str) and len(value) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(value))


def check_label(errs, where, value, what):
    """`value` when it is a DNS-1123 label (or None), else None and a problem naming `what`."""
    if value is None:
        return None
    if not is_dns_label(value):
        errs.add(where, "%r is not a valid %s (DNS-1123 label: lowercase letters, digits and '-', "
                        "starting and ending alphanumeric, at most 63 characters)" % (value, what))
        return None
    return value


def check_labels_map(errs, where, labels):
    """Every key and value of a Kubernetes label mapping is valid."""
    for key, value in labels.items():
        if not isinstance(key, str):
            errs.add(where, "label key %r must be a string" % (key,))
            continue
        prefix, dummy, name = key.rpartition("/")
        if (prefix and not is_dns_subdomain(prefix)) or len(name) > 63 or not _LABEL_NAME_RE.fullmatch(name):
            errs.add("%s.%s" % (where, key), "%r is not a valid label key" % key)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.fullmatch(value):
            errs.add("%s.%s" % (where, key), "%r is not a valid label value (a string of at most 63 "
                                             "characters: letters, digits, '-', '_', '.')" % (value,))


def namespace_list(errs, where, value):
    """A list of namespace names, each checked, duplicates dropped, in input order."""
    names = []
    for index, name in enumerate(as_list(errs, where, value)):
        item = "%s[%d]" % (where, index)
        if not isinstance(name, str):
            errs.add(item, "must be a string, got %r" % (name,))
        elif check_label(errs, item, name, "namespace") and name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------------------------
# Hosts, paths, CIDRs: each returns why the value is wrong, or None

def host_problem(host):
    """Why `host` is not an exact external FQDN, or None when it is one."""
    if not isinstance(host, str) or not host:
        return "must be a non-empty string"
    if "*" in host:
        return ("wildcard hosts are not supported: a ServiceEntry with resolution DNS needs exact "
                "FQDNs (list each host)")
    if host != host.strip():
        return "must not contain whitespace"
    if host.endswith("."):
        return "remove the trailing dot (write the FQDN without it)"
    if "://" in host or "/" in host or ":" in host:
        return "must be a bare hostname, without scheme, path or port (use `port` for the port)"
    if host != host.lower():
        return "must be lowercase"
    if _IPV4_RE.fullmatch(host):
        return "IP addresses are not supported: hosts are DNS names resolved by the egress gateway"
    if len(host) > 253:
        return "is longer than 253 characters"
    labels = host.split(".")
    if len(labels) < 2:
        return "must be a fully qualified domain name (at least two labels, e.g. www.example.com)"
    for label in labels:
        if not label or len(label) > 63 or not _LABEL_RE.fullmatch(label):
            return ("label %r is invalid (letters, digits and '-', not starting or ending with '-', "
                    "1-63 characters)" % label)
    if labels[-1].isdigit():
        return "the top-level label must not be numeric"
    if host.endswith("." + ORIGINATION_ALIAS_DOMAIN):
        return "names under %s are the gateway's own aliases of originate hosts" % ORIGINATION_ALIAS_DOMAIN
    for suffix in _IN_CLUSTER_SUFFIXES:
        if host.endswith(suffix):
            return ("%r is an in-cluster name (ends with %s); egress rules are for external hosts"
                    % (host, suffix))
    return None


def path_problem(path):
    """Why `path` is not a valid AuthorizationPolicy path for us, or None."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if path == "*":
        return "'*' would allow every path; omit `paths` to allow all paths"
    if "{" in path or "}" in path:
        return "path templates ({*}, {**}) are not supported"
    if "?" in path or "#" in path:
        return "must not contain a query or fragment (Istio matches the path only)"
    if any(c.isspace() for c in path):
        return "must not contain whitespace"
    body = path
    if path.startswith("*"):
        body = path[1:]  # suffix match, e.g. "*/healthz" or "*.json"
        if not body:
            return "must not be empty after '*'"
    elif path.endswith("*"):
        body = path[:-1]  # prefix match, e.g. "/api/*"
        if not body.startswith("/"):
            return "must start with '/' (or '*' for a suffix match)"
    elif not path.startswith("/"):
        return "must start with '/' (or '*' for a suffix match)"
    if "*" in body:
        return "'*' is only allowed once, at the start (suffix match) or end (prefix match)"
    return None


def cidr_problem(value):
    """Why `value` is not an IPv4 CIDR that stops short of everything, or None."""
    if not isinstance(value, str):
        return "must be a string, got %r" % (value,)
    match = _CIDR_RE.fullmatch(value)
    if not match or any(int(part) > 255 for part in match.groups()[:4]) or int(match.group(5)) > 32:
        return "%r is not an IPv4 CIDR such as 10.96.0.1/32" % value
    if int(match.group(5)) == 0:
        return "%r would let the covered pods reach every address, the outside included" % value
    return None


# --------------------------------------------------------------------------------------------
# Identities: a namespace, optionally one service account in it

def identity_text(namespace, service_account):
    """How an identity is printed: `ns/sa`, or `ns/*` for a whole namespace."""
    return "%s/%s" % (namespace, service_account or "*")


def parse_identity(errs, where, entry):
    """(namespace, service_account or None) from 'ns', 'ns/sa' or {namespace, service_account}.

    Every caller is named: no wildcard, no service account without its namespace, no empty
    part. Records every problem of the entry and returns None when there is one.
    """
    if isinstance(entry, str):
        parts = _identity_string(errs, where, entry)
    elif isinstance(entry, dict):
        parts = _identity_mapping(errs, where, entry)
    else:
        errs.add(where, "must be a mapping {namespace, service_account} or a 'namespace[/sa]' string, "
                        "got %s" % type(entry).__name__)
        return None
    if parts is None:
        return None
    namespace, service_account = parts
    bad = False
    if "*" in namespace:
        errs.add(where + ".namespace", "wildcards are not allowed: every allowed caller must be named")
        bad = True
    elif not is_dns_label(namespace):
        errs.add(where + ".namespace", "%r is not a valid namespace name (DNS-1123 label)" % namespace)
        bad = True
    if service_account is not None:
        if "*" in service_account:
            errs.add(where + ".service_account", "wildcards are not allowed; omit service_account to "
                                                 "allow the whole namespace")
            bad = True
        elif not is_dns_subdomain(service_account):
            errs.add(where + ".service_account", "%r is not a valid service account name "
                                                 "(DNS-1123 subdomain)" % service_account)
            bad = True
    return None if bad else (namespace, service_account)


def _identity_string(errs, where, entry):
    parts = entry.split("/")
    if len(parts) > 2:
        errs.add(where, "%r: use 'namespace' or 'namespace/service_account'" % entry)
        return None
    namespace = parts[0]
    service_account = parts[1] if len(parts) == 2 else None
    if len(parts) == 2 and not service_account:
        errs.add(where + ".service_account", "is empty in %r; write just the namespace to allow "
                                             "the whole namespace" % entry)
        return None
    if not namespace:
        errs.add(where + ".namespace", "is required: a service account is only meaningful inside "
                                       "a namespace (write 'namespace/service_account')")
        return None
    return namespace, service_account


def _identity_mapping(errs, where, entry):
    unknown_keys(errs, where, entry, IDENTITY_KEYS)
    namespace = entry.get("namespace")
    service_account = entry.get("service_account")
    if namespace in (None, ""):
        errs.add(where + ".namespace", "is required%s" % (
            ": a service account is only meaningful inside a namespace" if service_account else ""))
        return None
    if not isinstance(namespace, str):
        errs.add(where + ".namespace", "must be a string, got %r" % (namespace,))
        return None
    if service_account is not None and not isinstance(service_account, str):
        errs.add(where + ".service_account", "must be a string, got %r" % (service_account,))
        return None
    return namespace, service_account or None
