# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The meshguard.egress policy model: normalisation and validation.

Pure Python, no cluster and no Ansible imports, so that the module, the roles, the
render playbook and the tests all judge a policy by the same rules.

``normalize_policy(raw)`` takes the user's declarative policy (the module options, which
are the role variables without their ``meshguard_egress_`` prefix) and returns a
``Policy`` with every default filled in, or raises ``PolicyError`` listing *every*
problem found. Each problem names where it is (``rules[0] (baidu).hosts[1]``) and the
rule it breaks, so a user reading an AWX log can fix the input without reading code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

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
# other policy's names carry it, after NAME_SEPARATOR (see builder.policy_object_name).
DEFAULT_POLICY_NAME = "default"
# "--" separates the policy name from the rule name in object names; rule names, policy names
# and the name prefix may not contain it, so names of two policies can never coincide.
NAME_SEPARATOR = "--"
# Names of objects shared by a whole policy; a rule of the same name would collide with them.
RESERVED_RULE_NAMES = ("allow-nothing", "anti-bypass", "outbound-policy")
# Namespaces the anti-bypass NetworkPolicies never cover by default: the control plane's own
# pods (CoreDNS must reach the upstream resolvers outside the cluster).
DEFAULT_NETPOL_EXCLUDED = ("kube-node-lease", "kube-public", "kube-system")
# The domain of the names under which only the gateway knows an originate host's TLS port
# (builder.gateway_service_entry); no rule may name a host in it.
ORIGINATION_ALIAS_DOMAIN = "egress.meshguard.internal"

RULE_KEYS = ("name", "hosts", "tls", "port", "allow", "http", "dry_run", "credential_name", "ca_certificates")
# The OS CA bundle in Istio's proxy images (Debian/Ubuntu and distroless bases): the gateway
# verifies the external server against it when originating TLS. Setting the path explicitly is
# the fix Istio's analyzer asks for (IST0128/IST0129: "supply the filename of a CA certificate").
DEFAULT_CA_CERTIFICATES = "/etc/ssl/certs/ca-certificates.crt"
ALLOW_KEYS = ("namespace", "service_account")
HTTP_KEYS = ("methods", "paths")
GATEWAY_KEYS = ("name", "namespace", "labels", "service_ports", "container_ports", "revision",
                "manage", "replicas", "service_account")
PORT_KEYS = ("http", "https")
MESH_KEYS = ("manage", "outbound_policy", "method", "scope", "namespaces", "istio_namespace",
             "revision", "configmap")
API_KEYS = ("networking", "security")
NETPOL_KEYS = ("enabled", "namespaces", "namespace_selector", "exclude_namespaces", "allowed_cidrs")
TOP_KEYS = ("rules", "gateway", "mesh", "trust_domain", "cluster_domain", "api_versions",
            "network_policy", "policy_name", "name_prefix", "allow_empty", "network_policy_discovered")

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_HOST_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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


class PolicyError(InputError):
    """The policy is invalid."""

    SUBJECT = "policy"


class _Errors:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append("%s: %s" % (where, message))


def _unknown_keys(errs, where, value, allowed):
    for key in sorted(set(value) - set(allowed), key=str):
        errs.add(where, "unknown key %r (allowed: %s)" % (key, ", ".join(allowed)))


def _as_dict(errs, where, value, allowed):
    """Return value as a dict (None -> {}), recording type errors and unknown keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errs.add(where, "must be a mapping, got %s" % type(value).__name__)
        return None
    _unknown_keys(errs, where, value, allowed)
    return value


def _as_bool(errs, where, value, default):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    errs.add(where, "must be a boolean, got %r" % (value,))
    return default


def _as_int(errs, where, value, default, low, high):
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


def _as_str(errs, where, value, default=None, required=False):
    if value is None or value == "":
        if required:
            errs.add(where, "is required")
        return default
    if not isinstance(value, str):
        errs.add(where, "must be a string, got %r" % (value,))
        return None
    return value


def _as_list(errs, where, value, required=False, empty_hint=None):
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


def _enum(errs, where, value, choices, default):
    value = _as_str(errs, where, value, default)
    if value is not None and value not in choices:
        errs.add(where, "%r is not one of %s" % (value, ", ".join(choices)))
        return None
    return value


def is_dns_label(value):
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_RE.fullmatch(value))


def is_dns_subdomain(value):
    return isinstance(value, str) and len(value) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(value))


def _check_label(errs, where, value, what):
    if value is None:
        return None
    if not is_dns_label(value):
        errs.add(where, "%r is not a valid %s (DNS-1123 label: lowercase letters, digits and '-', "
                        "starting and ending alphanumeric, at most 63 characters)" % (value, what))
        return None
    return value


def _namespace_list(errs, where, value):
    """A list of namespace names, each checked, duplicates dropped, in input order."""
    names = []
    for index, name in enumerate(_as_list(errs, where, value)):
        item = "%s[%d]" % (where, index)
        if not isinstance(name, str):
            errs.add(item, "must be a string, got %r" % (name,))
        elif _check_label(errs, item, name, "namespace") and name not in names:
            names.append(name)
    return names


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
        if not label or len(label) > 63 or not _HOST_LABEL_RE.fullmatch(label):
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
        return self.namespace + ("/" + self.service_account if self.service_account else "")

    def principal(self, trust_domain):
        """The SPIFFE principal Istio matches (without spiffe://). A whole namespace is the
        prefix match `<td>/ns/<ns>/sa/*`: unlike `source.namespaces`, which Istio compiles to
        `.*/ns/<ns>/.*` for any trust domain (pilot/pkg/security/authz/model/generator.go
        srcNamespaceGenerator), it keeps the trust domain."""
        return "%s/ns/%s/sa/%s" % (trust_domain, self.namespace, self.service_account or "*")


class Rule:
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
        """Namespaces whose workloads call through the gateway (allow lists + mesh scope)."""
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


def _parse_identity(errs, where, entry):
    if isinstance(entry, str):
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
    elif isinstance(entry, dict):
        if _as_dict(errs, where, entry, ALLOW_KEYS) is None:
            return None
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
        service_account = service_account or None
    else:
        errs.add(where, "must be a mapping {namespace, service_account} or a 'namespace[/sa]' string, "
                        "got %s" % type(entry).__name__)
        return None
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
    return None if bad else Identity(namespace, service_account)


def _normalize_rule(errs, index, raw):
    where = "rules[%d]" % index
    if not isinstance(raw, dict):
        errs.add(where, "must be a mapping, got %s" % type(raw).__name__)
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = "rules[%d] (%s)" % (index, name)
    _unknown_keys(errs, where, raw, RULE_KEYS)
    name = _as_str(errs, where + ".name", name, required=True)
    if name is not None and _check_label(errs, where + ".name", name, "rule name"):
        if NAME_SEPARATOR in name:
            errs.add(where + ".name", "%r must not contain %r: it separates policy and rule in object names"
                     % (name, NAME_SEPARATOR))
        elif name in RESERVED_RULE_NAMES:
            errs.add(where + ".name", "%r is reserved for a policy-wide object (reserved: %s)"
                     % (name, ", ".join(RESERVED_RULE_NAMES)))
    tls = _enum(errs, where + ".tls", raw.get("tls"), TLS_MODES, "originate")
    port = _as_int(errs, where + ".port", raw.get("port"), DEFAULT_PORT.get(tls or "originate"), 1, 65535)
    if tls == "originate" and port == ORIGINATE_APP_PORT:
        errs.add(where + ".port", "port %d is the application-facing plain-HTTP port in originate mode; "
                                  "`port` is where the gateway originates TLS to (usually 443)" % port)

    hosts = []
    seen = set()
    for h_index, host in enumerate(_as_list(errs, where + ".hosts", raw.get("hosts"), required=True)):
        problem = host_problem(host)
        if problem:
            errs.add("%s.hosts[%d]" % (where, h_index), "%r: %s" % (host, problem) if isinstance(host, str)
                     else problem)
            continue
        if host in seen:
            errs.add("%s.hosts[%d]" % (where, h_index), "duplicate host %r" % host)
            continue
        seen.add(host)
        hosts.append(host)

    allow = []
    seen_ids = set()
    raw_allow = _as_list(errs, where + ".allow", raw.get("allow"), required=True,
                         empty_hint="a rule must name who may call its hosts (an empty list would allow nobody "
                                    "and Istio reads an empty ALLOW rule as allow-all)")
    for a_index, entry in enumerate(raw_allow):
        ident = _parse_identity(errs, "%s.allow[%d]" % (where, a_index), entry)
        if ident is None:
            continue
        if ident in seen_ids:
            errs.add("%s.allow[%d]" % (where, a_index), "duplicate entry %r" % ident.text())
            continue
        seen_ids.add(ident)
        allow.append(ident)

    methods, paths = None, None
    http = _as_dict(errs, where + ".http", raw.get("http"), HTTP_KEYS)
    if http:
        if tls == "passthrough":
            errs.add(where + ".http", "L7 limits (methods/paths) need tls originate or none: with passthrough "
                                      "the gateway only sees the TLS SNI, not HTTP")
        if "methods" in http:
            methods = []
            for m_index, method in enumerate(_as_list(errs, where + ".http.methods", http.get("methods"),
                                                      required=True, empty_hint="omit `methods` to allow all")):
                w = "%s.http.methods[%d]" % (where, m_index)
                if not isinstance(method, str) or method not in HTTP_METHODS:
                    errs.add(w, "%r is not an HTTP method (one of %s, uppercase)" % (method, ", ".join(HTTP_METHODS)))
                elif method in methods:
                    errs.add(w, "duplicate method %r" % method)
                else:
                    methods.append(method)
        if "paths" in http:
            paths = []
            for p_index, path in enumerate(_as_list(errs, where + ".http.paths", http.get("paths"),
                                                    required=True, empty_hint="omit `paths` to allow all")):
                w = "%s.http.paths[%d]" % (where, p_index)
                problem = path_problem(path)
                if problem:
                    errs.add(w, "%r: %s" % (path, problem))
                elif path in paths:
                    errs.add(w, "duplicate path %r" % path)
                else:
                    paths.append(path)
    dry_run = _as_bool(errs, where + ".dry_run", raw.get("dry_run"), False)
    credential_name = _as_str(errs, where + ".credential_name", raw.get("credential_name"))
    if credential_name is not None:
        if tls != "originate":
            errs.add(where + ".credential_name", "client certificates (mutual TLS origination) need tls originate")
        elif not is_dns_subdomain(credential_name):
            errs.add(where + ".credential_name", "%r is not a valid Secret name" % credential_name)
    ca_certificates = _as_str(errs, where + ".ca_certificates", raw.get("ca_certificates"))
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
    return Rule(name=name, hosts=sorted(hosts), tls=tls, port=port,
                allow=sorted(allow, key=Identity.key), methods=sorted(methods) if methods else None,
                paths=sorted(paths) if paths else None, dry_run=dry_run, credential_name=credential_name,
                ca_certificates=ca_certificates, index=index)


def _check_labels_map(errs, where, labels):
    if not labels:
        errs.add(where, "must not be empty: the selector decides which pods are the egress gateway")
        return
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


def _normalize_ports(errs, where, raw, defaults):
    ports = _as_dict(errs, where, raw, PORT_KEYS)
    if ports is None:
        return dict(defaults)
    result = {}
    for key in PORT_KEYS:
        result[key] = _as_int(errs, "%s.%s" % (where, key), ports.get(key), defaults[key], 1, 65535)
    if result["http"] is not None and result["http"] == result["https"]:
        errs.add(where, "http and https must be different ports (both are %d)" % result["http"])
    return result


def _normalize_gateway(errs, raw):
    where = "gateway"
    gw = _as_dict(errs, where, raw, GATEWAY_KEYS)
    if gw is None:
        gw = {}
    name = _check_label(errs, where + ".name", _as_str(errs, where + ".name", gw.get("name"),
                                                       "istio-egressgateway"), "gateway name")
    namespace = _check_label(errs, where + ".namespace", _as_str(errs, where + ".namespace", gw.get("namespace"),
                                                                 "istio-system"), "namespace")
    short = (name or "istio-egressgateway")
    short = short[len("istio-"):] if short.startswith("istio-") and len(short) > len("istio-") else short
    labels = gw.get("labels")
    if labels is None:
        # Labels the istio/gateway chart and istioctl give the gateway pods.
        labels = {"app": name or "istio-egressgateway", "istio": short}
    elif not isinstance(labels, dict):
        errs.add(where + ".labels", "must be a mapping of label names to values")
        labels = {}
    else:
        _check_labels_map(errs, where + ".labels", labels)
    revision = _as_str(errs, where + ".revision", gw.get("revision"))
    _check_label(errs, where + ".revision", revision, "revision")
    service_account = _as_str(errs, where + ".service_account", gw.get("service_account"), name)
    if service_account is not None and not is_dns_subdomain(service_account):
        errs.add(where + ".service_account", "%r is not a valid service account name" % service_account)
    return {
        "name": name, "namespace": namespace, "labels": dict(sorted(labels.items())),
        # The legacy istioctl/IstioOperator egress gateway listens on 8080/8443 behind
        # Service ports 80/443 (ISTIO-NOTES "AuthorizationPolicy at the egress gateway").
        "service_ports": _normalize_ports(errs, where + ".service_ports", gw.get("service_ports"),
                                          {"http": 80, "https": 443}),
        "container_ports": _normalize_ports(errs, where + ".container_ports", gw.get("container_ports"),
                                            {"http": 8080, "https": 8443}),
        "revision": revision,
        "manage": _as_bool(errs, where + ".manage", gw.get("manage"), True),
        "replicas": _as_int(errs, where + ".replicas", gw.get("replicas"), 1, 0, 1000),
        "service_account": service_account,
    }


def _normalize_mesh(errs, raw, gateway):
    where = "mesh"
    mesh = _as_dict(errs, where, raw, MESH_KEYS)
    if mesh is None:
        mesh = {}
    method = _enum(errs, where + ".method", mesh.get("method"), MESH_METHODS, "configmap")
    scope = _enum(errs, where + ".scope", mesh.get("scope"), MESH_SCOPES, "mesh")
    namespaces = _namespace_list(errs, where + ".namespaces", mesh.get("namespaces"))
    if scope == "namespaces" and not namespaces:
        errs.add(where + ".namespaces", "must list at least one namespace when scope is 'namespaces'")
    if scope == "mesh" and namespaces:
        errs.add(where + ".namespaces", "is only used with scope 'namespaces' (scope is 'mesh')")
    if method == "configmap" and scope == "namespaces":
        errs.add(where + ".scope", "the istio ConfigMap is mesh-wide; use method 'sidecar' to scope the "
                                   "outbound policy to namespaces")
    istio_namespace = _check_label(errs, where + ".istio_namespace",
                                   _as_str(errs, where + ".istio_namespace", mesh.get("istio_namespace"),
                                           "istio-system"), "namespace")
    revision = _as_str(errs, where + ".revision", mesh.get("revision"), gateway.get("revision"))
    _check_label(errs, where + ".revision", revision, "revision")
    configmap = _as_str(errs, where + ".configmap", mesh.get("configmap"),
                        "istio-%s" % revision if revision else "istio")
    if configmap is not None and not is_dns_subdomain(configmap):
        errs.add(where + ".configmap", "%r is not a valid ConfigMap name" % configmap)
    return {
        "manage": _as_bool(errs, where + ".manage", mesh.get("manage"), True),
        "outbound_policy": _enum(errs, where + ".outbound_policy", mesh.get("outbound_policy"),
                                 OUTBOUND_POLICIES, "REGISTRY_ONLY"),
        "method": method, "scope": scope, "namespaces": sorted(namespaces),
        "istio_namespace": istio_namespace, "revision": revision, "configmap": configmap,
    }


def normalize_policy(raw):
    """Validate a raw policy mapping and return a Policy; raise PolicyError on any problem."""
    errs = _Errors()
    if not isinstance(raw, dict):
        raise PolicyError(["policy: must be a mapping, got %s" % type(raw).__name__])
    _unknown_keys(errs, "policy", raw, TOP_KEYS)

    gateway = _normalize_gateway(errs, raw.get("gateway"))
    mesh = _normalize_mesh(errs, raw.get("mesh"), gateway)

    trust_domain = _as_str(errs, "trust_domain", raw.get("trust_domain"), TOP_DEFAULTS["trust_domain"])
    if trust_domain is not None and (not is_dns_subdomain(trust_domain.lower()) or "/" in trust_domain):
        errs.add("trust_domain", "%r is not a valid trust domain (a DNS name such as cluster.local, "
                                 "without spiffe:// or slashes)" % trust_domain)
    elif trust_domain is not None:
        # Validated case-insensitively, so emitted in the one case SPIFFE IDs use (lower).
        trust_domain = trust_domain.lower()
    cluster_domain = _as_str(errs, "cluster_domain", raw.get("cluster_domain"), TOP_DEFAULTS["cluster_domain"])
    if cluster_domain is not None and not is_dns_subdomain(cluster_domain):
        errs.add("cluster_domain", "%r is not a valid DNS domain" % cluster_domain)

    api = _as_dict(errs, "api_versions", raw.get("api_versions"), API_KEYS) or {}
    api_versions = {
        "networking": _enum(errs, "api_versions.networking", api.get("networking"), NETWORKING_VERSIONS,
                            NETWORKING_VERSIONS[0]),
        "security": _enum(errs, "api_versions.security", api.get("security"), SECURITY_VERSIONS,
                          SECURITY_VERSIONS[0]),
    }
    network_policy = _normalize_network_policy(errs, raw, gateway)

    policy_name = _as_str(errs, "policy_name", raw.get("policy_name"), TOP_DEFAULTS["policy_name"])
    policy_name = _check_label(errs, "policy_name", policy_name, "policy name")
    if policy_name is not None and (NAME_SEPARATOR in policy_name or len(policy_name) > 30):
        errs.add("policy_name", "%r must be at most 30 characters and not contain %r (it separates policy and "
                                "rule in object names)" % (policy_name, NAME_SEPARATOR))
    name_prefix = raw.get("name_prefix", TOP_DEFAULTS["name_prefix"])
    if name_prefix is None:
        name_prefix = ""
    if not isinstance(name_prefix, str) or (name_prefix and not re.fullmatch(r"[a-z0-9][-a-z0-9]{0,30}", name_prefix)):
        errs.add("name_prefix", "%r must be empty or up to 31 lowercase letters, digits and '-', starting "
                                "alphanumeric" % (name_prefix,))
        name_prefix = ""
    elif NAME_SEPARATOR in name_prefix:
        errs.add("name_prefix", "%r must not contain %r (it separates policy and rule in object names)"
                 % (name_prefix, NAME_SEPARATOR))
        name_prefix = ""
    allow_empty = _as_bool(errs, "allow_empty", raw.get("allow_empty"), TOP_DEFAULTS["allow_empty"])

    rules = []
    raw_rules = _as_list(errs, "rules", raw.get("rules"))
    for index, raw_rule in enumerate(raw_rules):
        rule = _normalize_rule(errs, index, raw_rule)
        if rule is not None:
            rules.append(rule)
    if not raw_rules and isinstance(raw.get("rules"), (list, tuple, type(None))):
        if not allow_empty:
            errs.add("rules", "is empty: the gateway would deny every request (only the allow-nothing policy). "
                              "Set allow_empty (meshguard_egress_allow_empty) to true if that is what you want; "
                              "a misspelt variable such as meshguard_egress_rule also ends up here")

    # Cross-rule checks: unique names, one owner per host, derived names that fit.
    by_name = {}
    host_owner = {}
    for rule in rules:
        where = "rules[%d] (%s)" % (rule.index, rule.name)
        if rule.name is not None:
            if rule.name in by_name:
                errs.add(where + ".name", "duplicate rule name %r (also rules[%d])" % (rule.name, by_name[rule.name]))
            else:
                by_name[rule.name] = rule.index
        for host in rule.hosts:
            other = host_owner.get(host)
            if other is None:
                host_owner[host] = rule
            elif other.tls != rule.tls:
                errs.add(where + ".hosts", "host %r is claimed by rules[%d] (%s) with tls %s and here with tls %s: "
                                           "one host has one tls mode" % (host, other.index, other.name, other.tls,
                                                                          rule.tls))
            else:
                errs.add(where + ".hosts", "host %r is already declared by rules[%d] (%s); one host belongs to one "
                                           "rule (list every caller in that rule)" % (host, other.index, other.name))
            if rule.name and len(name_prefix) + len(rule.name) + 1 + len(host) > 253:
                errs.add(where + ".hosts", "object name for host %r would exceed 253 characters; shorten the rule "
                                           "name or name_prefix" % host)
    if gateway["namespace"]:
        for rule in rules:
            for a_index, ident in enumerate(rule.allow):
                if ident.namespace == gateway["namespace"]:
                    errs.add("rules[%d] (%s).allow" % (rule.index, rule.name),
                             "namespace %r is the gateway's namespace, which is reserved for the gateway: only the "
                             "gateway can reach the external TLS ports there, and the anti-bypass NetworkPolicies "
                             "leave it open (docs/security.md)" % ident.namespace)
    if errs.items:
        raise PolicyError(errs.items)
    return Policy(rules=sorted(rules, key=lambda r: r.name), gateway=gateway, mesh=mesh,
                  trust_domain=trust_domain, cluster_domain=cluster_domain, api_versions=api_versions,
                  network_policy=network_policy, policy_name=policy_name, name_prefix=name_prefix,
                  allow_empty=allow_empty)


def _cidr_problem(value):
    if not isinstance(value, str):
        return "must be a string, got %r" % (value,)
    match = _CIDR_RE.fullmatch(value)
    if not match or any(int(part) > 255 for part in match.groups()[:4]) or int(match.group(5)) > 32:
        return "%r is not an IPv4 CIDR such as 10.96.0.1/32" % value
    if int(match.group(5)) == 0:
        return "%r would let the covered pods reach every address, the outside included" % value
    return None


def _normalize_network_policy(errs, raw, gateway):
    """Anti-bypass NetworkPolicies: which namespaces they cover.

    Covered = `namespaces` (named by the user) plus `network_policy_discovered` (the namespaces
    the egress_policy role found on the cluster with `namespace_selector`), minus the gateway's
    namespace and `exclude_namespaces`. Render mode has no cluster, so it covers only the named
    ones and says so.
    """
    where = "network_policy"
    netpol = _as_dict(errs, where, raw.get("network_policy"), NETPOL_KEYS) or {}
    enabled = _as_bool(errs, where + ".enabled", netpol.get("enabled"), False)
    named = _namespace_list(errs, where + ".namespaces", netpol.get("namespaces"))
    selector = netpol.get("namespace_selector")
    if selector is not None:
        if isinstance(selector, dict):
            if selector:  # {} selects every namespace
                _check_labels_map(errs, where + ".namespace_selector", selector)
        elif not isinstance(selector, str):
            errs.add(where + ".namespace_selector", "must be a mapping of labels or a label selector string, got %s"
                     % type(selector).__name__)
            selector = None
    if netpol.get("exclude_namespaces") is None:
        excluded = list(DEFAULT_NETPOL_EXCLUDED)
    else:
        excluded = _namespace_list(errs, where + ".exclude_namespaces", netpol.get("exclude_namespaces"))
    cidrs = []
    for index, cidr in enumerate(_as_list(errs, where + ".allowed_cidrs", netpol.get("allowed_cidrs"))):
        problem = _cidr_problem(cidr)
        if problem:
            errs.add("%s.allowed_cidrs[%d]" % (where, index), problem)
        elif cidr not in cidrs:
            cidrs.append(cidr)
    discovered = _namespace_list(errs, "network_policy_discovered", raw.get("network_policy_discovered"))
    gw_ns = gateway.get("namespace")
    for index, name in enumerate(named):
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
