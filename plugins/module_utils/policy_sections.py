# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of the sections of a policy besides its rules.

For: one validator per section, each taking the error collector and the raw value, recording
every problem with its path and returning the section with its defaults filled in:
``normalize_gateway`` (with ``normalize_ports``), ``normalize_mesh``, ``normalize_api_versions``,
``normalize_network_policy``, and the top-level scalars ``normalize_trust_domain``,
``normalize_cluster_domain``, ``normalize_policy_name``, ``normalize_name_prefix``.

Not for: the rules (policy_rule.py), the checks across rules and the composition
(policy.py), or the generic helpers (validation.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import (
    API_KEYS, DEFAULT_NETPOL_EXCLUDED, GATEWAY_KEYS, MESH_KEYS, MESH_METHODS, MESH_SCOPES, NAME_SEPARATOR, NETPOL_KEYS,
    NETWORKING_VERSIONS, OUTBOUND_POLICIES, PORT_KEYS, SECURITY_VERSIONS, TOP_DEFAULTS)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import (
    as_bool, as_dict, as_int, as_list, as_str, check_label, check_labels_map, cidr_problem, enum, is_dns_subdomain,
    namespace_list)

_NAME_PREFIX_RE = re.compile(r"[a-z0-9][-a-z0-9]{0,30}")


# --------------------------------------------------------------------------------------------
# gateway

def normalize_gateway(errs, raw):
    """The egress gateway: its name, namespace, pod labels, ports, revision, and whether we manage it."""
    where = "gateway"
    gw = as_dict(errs, where, raw, GATEWAY_KEYS)
    if gw is None:
        gw = {}
    name = check_label(errs, where + ".name", as_str(errs, where + ".name", gw.get("name"),
                                                     "istio-egressgateway"), "gateway name")
    namespace = check_label(errs, where + ".namespace", as_str(errs, where + ".namespace", gw.get("namespace"),
                                                               "istio-system"), "namespace")
    labels = _gateway_labels(errs, where + ".labels", gw.get("labels"), name or "istio-egressgateway")
    revision = as_str(errs, where + ".revision", gw.get("revision"))
    check_label(errs, where + ".revision", revision, "revision")
    service_account = as_str(errs, where + ".service_account", gw.get("service_account"), name)
    if service_account is not None and not is_dns_subdomain(service_account):
        errs.add(where + ".service_account", "%r is not a valid service account name" % service_account)
    return {
        "name": name, "namespace": namespace, "labels": dict(sorted(labels.items())),
        # The legacy istioctl/IstioOperator egress gateway listens on 8080/8443 behind
        # Service ports 80/443 (ISTIO-NOTES "AuthorizationPolicy at the egress gateway").
        "service_ports": normalize_ports(errs, where + ".service_ports", gw.get("service_ports"),
                                         {"http": 80, "https": 443}),
        "container_ports": normalize_ports(errs, where + ".container_ports", gw.get("container_ports"),
                                           {"http": 8080, "https": 8443}),
        "revision": revision,
        "manage": as_bool(errs, where + ".manage", gw.get("manage"), True),
        "replicas": as_int(errs, where + ".replicas", gw.get("replicas"), 1, 0, 1000),
        "service_account": service_account,
    }


def _gateway_labels(errs, where, labels, name):
    """The labels that select the gateway pods; by default those the istio/gateway chart and
    istioctl give them (app: <name>, istio: <name without istio->)."""
    if labels is None:
        short = name[len("istio-"):] if name.startswith("istio-") and len(name) > len("istio-") else name
        return {"app": name, "istio": short}
    if not isinstance(labels, dict):
        errs.add(where, "must be a mapping of label names to values")
        return {}
    if not labels:
        errs.add(where, "must not be empty: the selector decides which pods are the egress gateway")
    check_labels_map(errs, where, labels)
    return labels


def normalize_ports(errs, where, raw, defaults):
    """A pair of http and https ports (service or container), different from each other."""
    ports = as_dict(errs, where, raw, PORT_KEYS)
    if ports is None:
        return dict(defaults)
    result = {}
    for key in PORT_KEYS:
        result[key] = as_int(errs, "%s.%s" % (where, key), ports.get(key), defaults[key], 1, 65535)
    if result["http"] is not None and result["http"] == result["https"]:
        errs.add(where, "http and https must be different ports (both are %d)" % result["http"])
    return result


# --------------------------------------------------------------------------------------------
# mesh

def normalize_mesh(errs, raw, gateway):
    """How the mesh's outbound traffic policy is set: ConfigMap (mesh-wide) or Sidecars (namespaces)."""
    where = "mesh"
    mesh = as_dict(errs, where, raw, MESH_KEYS)
    if mesh is None:
        mesh = {}
    method = enum(errs, where + ".method", mesh.get("method"), MESH_METHODS, "configmap")
    scope = enum(errs, where + ".scope", mesh.get("scope"), MESH_SCOPES, "mesh")
    namespaces = namespace_list(errs, where + ".namespaces", mesh.get("namespaces"))
    if scope == "namespaces" and not namespaces:
        errs.add(where + ".namespaces", "must list at least one namespace when scope is 'namespaces'")
    if scope == "mesh" and namespaces:
        errs.add(where + ".namespaces", "is only used with scope 'namespaces' (scope is 'mesh')")
    if method == "configmap" and scope == "namespaces":
        errs.add(where + ".scope", "the istio ConfigMap is mesh-wide; use method 'sidecar' to scope the "
                                   "outbound policy to namespaces")
    istio_namespace = check_label(errs, where + ".istio_namespace",
                                  as_str(errs, where + ".istio_namespace", mesh.get("istio_namespace"),
                                         "istio-system"), "namespace")
    revision = as_str(errs, where + ".revision", mesh.get("revision"), gateway.get("revision"))
    check_label(errs, where + ".revision", revision, "revision")
    configmap = as_str(errs, where + ".configmap", mesh.get("configmap"),
                       "istio-%s" % revision if revision else "istio")
    if configmap is not None and not is_dns_subdomain(configmap):
        errs.add(where + ".configmap", "%r is not a valid ConfigMap name" % configmap)
    return {
        "manage": as_bool(errs, where + ".manage", mesh.get("manage"), True),
        "outbound_policy": enum(errs, where + ".outbound_policy", mesh.get("outbound_policy"),
                                OUTBOUND_POLICIES, "REGISTRY_ONLY"),
        "method": method, "scope": scope, "namespaces": sorted(namespaces),
        "istio_namespace": istio_namespace, "revision": revision, "configmap": configmap,
        # The user's word that an outbound policy leaving allowed callers ALLOW_ANY is meant
        # (policy.check_mesh_fails_closed).
        "allow_fail_open": as_bool(errs, where + ".allow_fail_open", mesh.get("allow_fail_open"), False),
    }


# --------------------------------------------------------------------------------------------
# api_versions

def normalize_api_versions(errs, raw):
    """The Istio API versions the objects are emitted in (the newest by default)."""
    api = as_dict(errs, "api_versions", raw, API_KEYS) or {}
    return {
        "networking": enum(errs, "api_versions.networking", api.get("networking"), NETWORKING_VERSIONS,
                           NETWORKING_VERSIONS[0]),
        "security": enum(errs, "api_versions.security", api.get("security"), SECURITY_VERSIONS,
                         SECURITY_VERSIONS[0]),
    }


# --------------------------------------------------------------------------------------------
# network_policy

def normalize_network_policy(errs, raw, gateway):
    """Anti-bypass NetworkPolicies: which namespaces they cover.

    Covered = `namespaces` (named by the user) plus `network_policy_discovered` (the namespaces
    the egress_policy role found on the cluster with `namespace_selector`), minus the gateway's
    namespace and `exclude_namespaces`. Render mode has no cluster, so it covers only the named
    ones and says so. `raw` is the whole policy: the discovered namespaces are a top-level key.
    """
    where = "network_policy"
    netpol = as_dict(errs, where, raw.get("network_policy"), NETPOL_KEYS) or {}
    enabled = as_bool(errs, where + ".enabled", netpol.get("enabled"), False)
    named = namespace_list(errs, where + ".namespaces", netpol.get("namespaces"))
    selector = _namespace_selector(errs, where + ".namespace_selector", netpol.get("namespace_selector"))
    if netpol.get("exclude_namespaces") is None:
        excluded = list(DEFAULT_NETPOL_EXCLUDED)
    else:
        excluded = namespace_list(errs, where + ".exclude_namespaces", netpol.get("exclude_namespaces"))
    cidrs = _allowed_cidrs(errs, where + ".allowed_cidrs", netpol.get("allowed_cidrs"))
    discovered = namespace_list(errs, "network_policy_discovered", raw.get("network_policy_discovered"))
    gw_ns = gateway.get("namespace")
    for name in named:
        if name == gw_ns:
            errs.add("%s.namespaces" % where, "must not contain the gateway namespace %r: the gateway is the one pod "
                                              "that must reach the outside" % name)
        elif name in excluded:
            errs.add("%s.namespaces" % where, "%r is also in exclude_namespaces" % name)
    if enabled and not named and selector is None:
        errs.add(where, "enabled, but covers nothing: list the namespaces to protect (`namespaces`) or a "
                        "`namespace_selector` the apply role resolves on the cluster (every namespace: {})")
    covered = sorted((set(named) | set(discovered)) - set(excluded) - {gw_ns}) if enabled else []
    return {"enabled": enabled, "namespaces": sorted(named), "namespace_selector": selector,
            "exclude_namespaces": sorted(excluded), "allowed_cidrs": cidrs, "discovered": sorted(discovered),
            "covered": covered}


def _namespace_selector(errs, where, selector):
    """A mapping of labels ({} selects every namespace) or a label selector string, or None."""
    if selector is None:
        return None
    if isinstance(selector, dict):
        if selector:
            check_labels_map(errs, where, selector)
    elif not isinstance(selector, str):
        errs.add(where, "must be a mapping of labels or a label selector string, got %s" % type(selector).__name__)
        return None
    return selector


def _allowed_cidrs(errs, where, value):
    """The IPv4 CIDRs the covered pods may still reach (the API server, say), duplicates dropped."""
    cidrs = []
    for index, cidr in enumerate(as_list(errs, where, value)):
        problem = cidr_problem(cidr)
        if problem:
            errs.add("%s[%d]" % (where, index), problem)
        elif cidr not in cidrs:
            cidrs.append(cidr)
    return cidrs


# --------------------------------------------------------------------------------------------
# top-level scalars

def normalize_trust_domain(errs, value):
    """The mesh's trust domain (a DNS name, emitted lowercase as SPIFFE IDs use it)."""
    trust_domain = as_str(errs, "trust_domain", value, TOP_DEFAULTS["trust_domain"])
    if trust_domain is not None and (not is_dns_subdomain(trust_domain.lower()) or "/" in trust_domain):
        errs.add("trust_domain", "%r is not a valid trust domain (a DNS name such as cluster.local, "
                                 "without spiffe:// or slashes)" % trust_domain)
    elif trust_domain is not None:
        # Validated case-insensitively, so emitted in the one case SPIFFE IDs use (lower).
        trust_domain = trust_domain.lower()
    return trust_domain


def normalize_cluster_domain(errs, value):
    """The cluster's DNS domain (the gateway's host is <name>.<namespace>.svc.<cluster_domain>)."""
    cluster_domain = as_str(errs, "cluster_domain", value, TOP_DEFAULTS["cluster_domain"])
    if cluster_domain is not None and not is_dns_subdomain(cluster_domain):
        errs.add("cluster_domain", "%r is not a valid DNS domain" % cluster_domain)
    return cluster_domain


def normalize_policy_name(errs, value):
    """The policy's name: a DNS label of at most 30 characters, without the name separator."""
    policy_name = as_str(errs, "policy_name", value, TOP_DEFAULTS["policy_name"])
    policy_name = check_label(errs, "policy_name", policy_name, "policy name")
    if policy_name is not None and (NAME_SEPARATOR in policy_name or len(policy_name) > 30):
        errs.add("policy_name", "%r must be at most 30 characters and not contain %r (it separates policy and "
                                "rule in object names)" % (policy_name, NAME_SEPARATOR))
    return policy_name


def normalize_name_prefix(errs, value):
    """The prefix of every object name: empty (None) or up to 31 characters, without the separator."""
    name_prefix = "" if value is None else value
    if not isinstance(name_prefix, str) or (name_prefix and not _NAME_PREFIX_RE.fullmatch(name_prefix)):
        errs.add("name_prefix", "%r must be empty or up to 31 lowercase letters, digits and '-', starting "
                                "alphanumeric" % (name_prefix,))
        return ""
    if NAME_SEPARATOR in name_prefix:
        errs.add("name_prefix", "%r must not contain %r (it separates policy and rule in object names)"
                 % (name_prefix, NAME_SEPARATOR))
        return ""
    return name_prefix
