# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The meshguard.egress policy model: what a validated policy is.

For: the constants and defaults of a policy, the keys each section accepts, and the records
``Identity``, ``Rule`` and ``Policy`` that ``policy.normalize_policy`` returns with every
default resolved, plus the names derived from them (``subset_name``, ``short_hash``).
The builder, verify and the modules read these.

Not for: validating raw input (policy.py composes policy_rule.py and policy_sections.py on
the helpers of validation.py) or building Kubernetes objects (builder.py). Pure Python, no
cluster and no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

TLS_MODES = ("originate", "passthrough", "none")
DEFAULT_PORT = {"originate": 443, "passthrough": 443, "none": 80}
# In originate mode the application speaks plain HTTP to this port; the gateway
# originates TLS to the rule's `port` (Istio task "Egress Gateways with TLS Origination").
ORIGINATE_APP_PORT = 80
HTTP_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
OUTBOUND_POLICIES = ("REGISTRY_ONLY", "ALLOW_ANY")
MESH_METHODS = ("configmap", "sidecar")
MESH_SCOPES = ("mesh", "namespaces")
NETWORKING_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")

# Top-level defaults, shared with the module argument spec (argspec.py).
TOP_DEFAULTS = {"trust_domain": "cluster.local", "cluster_domain": "cluster.local",
                "policy_name": "default", "name_prefix": "meshguard-", "allow_empty": False}
# The policy whose object names omit the policy name (the seed's names stay readable); every
# other policy's names carry it, after NAME_SEPARATOR (see manifest.policy_object_name).
DEFAULT_POLICY_NAME = "default"
# "--" separates the policy name from the rule name in object names; rule names, policy names
# and the name prefix may not contain it, so names of two policies can never coincide.
NAME_SEPARATOR = "--"
# Names of objects shared by a whole policy; a rule of the same name would collide with them.
RESERVED_RULE_NAMES = ("allow-nothing", "anti-bypass", "outbound-policy")
# Namespaces the anti-bypass NetworkPolicies never cover by default: the control plane's own
# pods (CoreDNS must reach the upstream resolvers outside the cluster).
DEFAULT_NETPOL_EXCLUDED = ("kube-node-lease", "kube-public", "kube-system")

RULE_KEYS = ("name", "hosts", "tls", "port", "allow", "http", "dry_run", "credential_name", "ca_certificates")
# The OS CA bundle in Istio's proxy images (Debian/Ubuntu and distroless bases): the gateway
# verifies the external server against it when originating TLS. Setting the path explicitly is
# the fix Istio's analyzer asks for (IST0128/IST0129: "supply the filename of a CA certificate").
DEFAULT_CA_CERTIFICATES = "/etc/ssl/certs/ca-certificates.crt"
HTTP_KEYS = ("methods", "paths")
GATEWAY_KEYS = ("name", "namespace", "labels", "service_ports", "container_ports", "revision",
                "manage", "replicas", "service_account")
PORT_KEYS = ("http", "https")
MESH_KEYS = ("manage", "outbound_policy", "method", "scope", "namespaces", "istio_namespace",
             "revision", "configmap", "allow_fail_open")
API_KEYS = ("networking", "security")
NETPOL_KEYS = ("enabled", "namespaces", "namespace_selector", "exclude_namespaces", "allowed_cidrs")
TOP_KEYS = ("rules", "gateway", "mesh", "trust_domain", "cluster_domain", "api_versions",
            "network_policy", "policy_name", "name_prefix", "allow_empty", "network_policy_discovered")


def short_hash(text, length=6):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def subset_name(policy_name, rule_name, host):
    """A DNS-1123 label naming the gateway subset of (policy, rule, host): readable and stable.

    Subset names must be DNS labels (istio pkg/config/validation validateSubsetName) and
    unique among all DestinationRules Istio merges for the gateway host, which includes the
    DestinationRules of every other policy on the same gateway. So the readable part (policy
    unless default, rule, the host's first label) is followed by a 40-bit hash of all three.
    """
    suffix = "-" + short_hash("%s/%s/%s" % (policy_name, rule_name, host), 10)
    readable = "%s-%s" % (rule_name, host.split(".")[0])
    if policy_name != DEFAULT_POLICY_NAME:
        readable = policy_name + NAME_SEPARATOR + readable
    return readable[:63 - len(suffix)].rstrip("-") + suffix


class Identity:
    """A caller allowed by a rule: a namespace, optionally one service account in it."""

    __slots__ = ("namespace", "service_account")

    def __init__(self, namespace, service_account=None):
        self.namespace = namespace
        self.service_account = service_account

    def key(self):
        return (self.namespace, self.service_account or "")

    def __eq__(self, other):
        return isinstance(other, Identity) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return self.text()

    def text(self):
        """The allow-entry spelling, as a policy writes it: `ns/sa`, or `ns` for a whole namespace.

        It reads back through validation.parse_identity (``repr`` uses it). Everything shown to a
        user (messages, the render summary, verify's cases and reports) prints an identity with
        validation.identity_text, where a whole namespace is `ns/*`.
        """
        return self.namespace + ("/" + self.service_account if self.service_account else "")

    def principal(self, trust_domain):
        """The SPIFFE principal Istio matches (without spiffe://). A whole namespace is the
        prefix match `<td>/ns/<ns>/sa/*`: unlike `source.namespaces`, which Istio compiles to
        `.*/ns/<ns>/.*` for any trust domain (pilot/pkg/security/authz/model/generator.go
        srcNamespaceGenerator), it keeps the trust domain."""
        return "%s/ns/%s/sa/%s" % (trust_domain, self.namespace, self.service_account or "*")


class Rule:
    """A validated rule: its hosts, TLS mode and port, who may call, and its HTTP limits."""

    __slots__ = ("name", "hosts", "tls", "port", "allow", "methods", "paths", "dry_run",
                 "credential_name", "ca_certificates", "index")

    def __init__(self, **kwargs):
        for key in self.__slots__:
            setattr(self, key, kwargs.get(key))

    @property
    def app_port(self):
        """The port the application connects to."""
        return ORIGINATE_APP_PORT if self.tls == "originate" else self.port

    @property
    def is_http(self):
        return self.tls != "passthrough"

    def as_dict(self):
        return {
            "name": self.name, "hosts": list(self.hosts), "tls": self.tls, "port": self.port,
            "allow": [{"namespace": i.namespace, "service_account": i.service_account} for i in self.allow],
            "http": ({"methods": list(self.methods) if self.methods else None,
                      "paths": list(self.paths) if self.paths else None}
                     if (self.methods or self.paths) else None),
            "dry_run": self.dry_run, "credential_name": self.credential_name,
            "ca_certificates": self.ca_certificates,
        }


class Policy:
    """A validated policy with every default resolved."""

    __slots__ = ("rules", "gateway", "mesh", "trust_domain", "cluster_domain", "api_versions",
                 "network_policy", "policy_name", "name_prefix", "allow_empty")

    def __init__(self, **kwargs):
        for key in self.__slots__:
            setattr(self, key, kwargs.get(key))

    def gateway_host(self):
        return "%s.%s.svc.%s" % (self.gateway["name"], self.gateway["namespace"], self.cluster_domain)

    def client_namespaces(self):
        """The namespaces named in the rules' allow lists, sorted (not the mesh scope's namespaces)."""
        names = set()
        for rule in self.rules:
            names.update(i.namespace for i in rule.allow)
        return sorted(names)

    def hosts(self):
        """Every external host of the policy, sorted."""
        return sorted(h for rule in self.rules for h in rule.hosts)

    def as_dict(self):
        """The normalised policy as plain data (module results, the roles)."""
        return {
            "policy_name": self.policy_name, "name_prefix": self.name_prefix,
            "trust_domain": self.trust_domain, "cluster_domain": self.cluster_domain,
            "api_versions": dict(self.api_versions), "gateway": dict(self.gateway), "mesh": dict(self.mesh),
            "network_policy": dict(self.network_policy), "allow_empty": self.allow_empty,
            "gateway_host": self.gateway_host(), "hosts": self.hosts(),
            "rules": [rule.as_dict() for rule in self.rules],
        }
