# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the Kubernetes/Istio objects for a validated meshguard.egress Policy: the Istio
objects of each rule, the allow-nothing AuthorizationPolicy, the outbound-policy Sidecars and
what the mesh_config role must change (mesh_config), and the assembly of every object of a
policy (build_groups, build_resources, summary_lines).

Beside it, one room each: the gateway workload (builder_gateway.py), the anti-bypass
NetworkPolicies (builder_netpol.py), the skeleton every object shares (manifest.py), the
mesh ConfigMap (apply/meshconfig.py). Not here: validation (policy.py), files (render.py).

One function per kind. The shapes follow Istio's own egress tasks:
- "Egress Gateways with TLS Origination" (tls: originate): ServiceEntry with ports 80/HTTP
  and 443/HTTPS, resolution DNS; Gateway server port 80 protocol HTTPS with
  tls.mode ISTIO_MUTUAL; DestinationRule for the gateway with a subset whose port 80
  uses ISTIO_MUTUAL + sni; VirtualService mesh->gateway->external; DestinationRule for
  the external host with tls.mode SIMPLE on 443 (TLS origination).
- "Egress Gateways", HTTPS with mTLS to the gateway (tls: passthrough): ServiceEntry
  port 443/TLS; Gateway server 443/TLS ISTIO_MUTUAL; VirtualService `tls` route with
  sniHosts from the mesh and a `tcp` route from the gateway (tls routes do not match
  behind ISTIO_MUTUAL termination: istio/istio#37293, #51471).
- tls: none: like originate, but the gateway forwards plain HTTP to the external port.

Every object carries ownership labels so that an apply can prune exactly what this
collection created. Output is deterministic: rules are sorted by name, hosts and callers
are sorted, and objects come in a fixed order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.builder_gateway import gateway_objects
from ansible_collections.meshguard.egress.plugins.module_utils.builder_netpol import (
    anti_bypass_summary, network_policy_objects)
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    ANNOTATION_HOSTS, COMPONENT_DEFAULT_DENY, COMPONENT_MESH, COMPONENT_RULE)
from ansible_collections.meshguard.egress.plugins.module_utils.manifest import manifest, object_meta, policy_object_name
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import subset_name
from ansible_collections.meshguard.egress.plugins.module_utils.validation import ORIGINATION_ALIAS_DOMAIN, identity_text

DRY_RUN_ANNOTATION = "istio.io/dry-run"


def _gateway_ref(policy, rule):
    return "%s/%s" % (policy.gateway["namespace"], rule_object_name(policy, rule))


def rule_object_name(policy, rule):
    """Name of the per-rule ServiceEntry, Gateway and AuthorizationPolicy (a DNS label)."""
    return policy_object_name(policy, rule.name)


def host_object_name(policy, rule, host):
    """Name of the per-host VirtualService the sidecars use (a DNS subdomain): the rule's name,
    a dot, the host (the rule's name has no dot, so this is unambiguous)."""
    return "%s.%s" % (rule_object_name(policy, rule), host)


def gateway_host_object_name(policy, rule, host):
    """Name of the per-host objects only the gateway uses (its VirtualService, and in originate
    mode its ServiceEntry and DestinationRule): `<rule name>-gateway.<host>`. A rule named
    `<x>-gateway` cannot have the same host as rule `<x>` (one host, one rule), so the names
    never clash."""
    return "%s-gateway.%s" % (rule_object_name(policy, rule), host)


# Request headers the egress gateway strips before a request leaves the mesh.
INTERNAL_REQUEST_HEADERS = ("x-forwarded-client-cert", "x-forwarded-for", "x-envoy-external-address")


def origination_host(host):
    """The name the gateway routes an originate host's traffic to (see gateway_service_entry)."""
    return "%s.%s" % (host, ORIGINATION_ALIAS_DOMAIN)


def _gateway_port(policy, rule, which="service_ports"):
    return policy.gateway[which]["https" if rule.tls == "passthrough" else "http"]


def _hosts_annotation(rule):
    return {ANNOTATION_HOSTS: ",".join(rule.hosts)}


def service_entry(policy, rule):
    """The ServiceEntry every sidecar sees: only the port the application uses.

    In originate mode that is the plain-HTTP app port, never the external TLS port: a TLS port
    visible to every sidecar with no VirtualService routing it gets a default SNI chain to
    `outbound|443||<host>` straight from the client sidecar, skipping the gateway and its
    AuthorizationPolicy (pilot/pkg/networking/core/tls.go buildSidecarOutboundTLSFilterChainOpts,
    "HTTPS or TLS ports without associated virtual service"). The TLS port is declared only
    to the gateway's namespace, under a name of its own, by gateway_service_entry().
    """
    if rule.tls == "originate":
        ports = [{"number": rule.app_port, "name": "http", "protocol": "HTTP"}]
    elif rule.tls == "passthrough":
        ports = [{"number": rule.port, "name": "tls", "protocol": "TLS"}]
    else:
        ports = [{"number": rule.port, "name": "http", "protocol": "HTTP"}]
    return manifest(policy.api_versions["networking"], "ServiceEntry",
                    object_meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"],
                                COMPONENT_RULE, rule, _hosts_annotation(rule)),
                    {"hosts": list(rule.hosts), "exportTo": ["*"], "location": "MESH_EXTERNAL",
                     "ports": ports, "resolution": "DNS"})


def gateway_service_entry(policy, rule, host):
    """Originate mode: the external TLS port, known to the gateway's namespace only.

    A ServiceEntry of its own name (`<host>.egress.meshguard.internal`) whose DNS endpoint is
    the host, exported to the gateway's namespace only: the gateway's VirtualService routes
    there and the origination DestinationRule (SNI and SAN = the host) applies there, while
    client namespaces know the host only with its plain-HTTP app port. An alias rather than
    a second ServiceEntry of the same host: same-host entries with different exportTo are not
    merged (pilot/pkg/model/sidecar.go canMergeServices) and which one a proxy gets depends on
    ordering inside istiod (push_context.go servicesExportedToNamespace), and `istioctl analyze`
    resolves a host to one entry and reports the TLS port missing (IST0101). One ServiceEntry
    per host, since endpoints are shared by all hosts of an entry.
    Any other pod in the gateway's namespace sees it too: keep that namespace for the gateway.
    """
    return manifest(policy.api_versions["networking"], "ServiceEntry",
                    object_meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
                                COMPONENT_RULE, rule, {ANNOTATION_HOSTS: host}),
                    {"hosts": [origination_host(host)], "exportTo": ["."], "location": "MESH_EXTERNAL",
                     "ports": [{"number": rule.port, "name": "https", "protocol": "HTTPS"}], "resolution": "DNS",
                     "endpoints": [{"address": host}]})


def _gateway_server(port, name, protocol, hosts):
    # Hosts as "./H": only VirtualServices in the gateway's namespace (ours) bind to this
    # server. A bare "H" means "*/H", and a VirtualService of any namespace exported to the
    # gateway's namespace is ordered before public ones (push_context.go
    # VirtualServicesForGateway), so it could take over the allowed callers' traffic.
    # ISTIO_MUTUAL: the sidecar->gateway hop is Istio mTLS, so the gateway sees the
    # caller's SPIFFE identity and AuthorizationPolicy principals match (istio/istio#22609).
    return {"port": {"number": port, "name": name, "protocol": protocol},
            "hosts": ["./" + host for host in hosts], "tls": {"mode": "ISTIO_MUTUAL"}}


def gateway(policy, rule):
    port = _gateway_port(policy, rule)
    if rule.tls == "passthrough":
        # One server per host: one ISTIO_MUTUAL TLS server listing several hosts is one filter
        # chain with one tcp_proxy, which takes the first VirtualService whose tcp match
        # succeeds (core/gateway.go createGatewayTCPFilterChainOpts,
        # buildGatewayNetworkFiltersFromTCPRoutes): host B's traffic would go to host A.
        servers = [_gateway_server(port, "tls-%s" % subset_name(policy.policy_name, rule.name, host), "TLS", [host])
                   for host in rule.hosts]
    else:
        servers = [_gateway_server(port, "https", "HTTPS", rule.hosts)]
    return manifest(policy.api_versions["networking"], "Gateway",
                    object_meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"],
                                COMPONENT_RULE, rule),
                    {"selector": dict(policy.gateway["labels"]), "servers": servers})


def gateway_destination_rule(policy, rule):
    """Subsets of the gateway service, one per host, carrying ISTIO_MUTUAL with the host as SNI.

    Lives in the gateway's namespace (the gateway service's namespace, where clients look
    DestinationRules up after their own) and is exported to every namespace so that the
    clients' sidecars apply it. Istio merges the per-rule DestinationRules for the gateway
    host (pilot/pkg/model/destination_rule.go mergeDestinationRule); subset names are unique.
    """
    port = _gateway_port(policy, rule)
    subsets = [{"name": subset_name(policy.policy_name, rule.name, host),
                "trafficPolicy": {"portLevelSettings": [
                    {"port": {"number": port}, "tls": {"mode": "ISTIO_MUTUAL", "sni": host}}]}}
               for host in rule.hosts]
    return manifest(policy.api_versions["networking"], "DestinationRule",
                    object_meta(policy, rule_object_name(policy, rule) + "-gateway", policy.gateway["namespace"],
                                COMPONENT_RULE, rule),
                    {"host": policy.gateway_host(), "exportTo": ["*"], "subsets": subsets})


def virtual_service(policy, rule, host):
    """What the sidecars do with the host: send it to the gateway subset of the host, over
    ISTIO_MUTUAL. Exported to every namespace, bound to `mesh` only."""
    to_gateway = {"destination": {"host": policy.gateway_host(),
                                  "subset": subset_name(policy.policy_name, rule.name, host),
                                  "port": {"number": _gateway_port(policy, rule)}}, "weight": 100}
    spec = {"hosts": [host], "gateways": ["mesh"], "exportTo": ["*"]}
    if rule.tls == "passthrough":
        spec["tls"] = [{"match": [{"gateways": ["mesh"], "port": rule.port, "sniHosts": [host]}],
                        "route": [to_gateway]}]
    else:
        spec["http"] = [{"name": "mesh-to-egress-gateway", "match": [{"gateways": ["mesh"], "port": rule.app_port}],
                         "route": [to_gateway]}]
    return manifest(policy.api_versions["networking"], "VirtualService",
                    object_meta(policy, host_object_name(policy, rule, host), policy.gateway["namespace"],
                                COMPONENT_RULE, rule), spec)


def gateway_virtual_service(policy, rule, host):
    """What the gateway does with the host: forward it to the external service (in originate
    mode to the gateway-only name that carries the TLS port). Bound to our Gateway only and
    exported to the gateway's namespace only: no sidecar ever sees this route."""
    gw_ref = _gateway_ref(policy, rule)
    gw_port = _gateway_port(policy, rule)
    target = origination_host(host) if rule.tls == "originate" else host
    to_external = {"destination": {"host": target, "port": {"number": rule.port}}, "weight": 100}
    spec = {"hosts": [host], "gateways": [gw_ref], "exportTo": ["."]}
    if rule.tls == "passthrough":
        # tls routes do not match behind ISTIO_MUTUAL termination (istio/istio#37293, #51471)
        spec["tcp"] = [{"match": [{"gateways": [gw_ref], "port": gw_port}], "route": [to_external]}]
    else:
        # The gateway would otherwise forward the caller's mesh identity and certificate
        # (x-forwarded-client-cert: Istio gateways set Envoy's forward_client_cert_details) and
        # the caller's pod address (x-forwarded-for, x-envoy-external-address) to the external
        # service, as the lab's echo server showed: internal identities stay inside the mesh.
        spec["http"] = [{"name": "egress-gateway-to-external", "match": [{"gateways": [gw_ref], "port": gw_port}],
                         "headers": {"request": {"remove": list(INTERNAL_REQUEST_HEADERS)}},
                         "route": [to_external]}]
    return manifest(policy.api_versions["networking"], "VirtualService",
                    object_meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
                                COMPONENT_RULE, rule), spec)


def origination_destination_rule(policy, rule, host):
    """TLS origination at the gateway: SIMPLE, verifying the server against a CA bundle, or
    MUTUAL with a client certificate Secret (whose cacert verifies the server).

    Only the gateway originates TLS, so the rule selects the gateway pods (workloadSelector)
    and is exported to its own namespace only (Istio requires that with a selector).

    `subjectAltNames: [host]`: with `sni` set, Istio turns its automatic SAN check off
    (pilot/pkg/networking/core/cluster_tls.go setAutoSniAndAutoSanValidation), so without it
    any certificate chaining to the bundle would be accepted, whatever name it is for.
    """
    if rule.credential_name:
        tls = {"mode": "MUTUAL", "credentialName": rule.credential_name, "sni": host, "subjectAltNames": [host]}
    else:
        tls = {"mode": "SIMPLE", "caCertificates": rule.ca_certificates, "sni": host, "subjectAltNames": [host]}
    return manifest(policy.api_versions["networking"], "DestinationRule",
                    object_meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
                                COMPONENT_RULE, rule),
                    {"host": origination_host(host),
                     "workloadSelector": {"matchLabels": dict(policy.gateway["labels"])}, "exportTo": ["."],
                     "trafficPolicy": {"portLevelSettings": [{"port": {"number": rule.port}, "tls": tls}]}})


def authorization_sources(policy, rule):
    """The `from` list: one source of principals, `<td>/ns/<ns>/sa/<sa>` for a service account
    and the prefix `<td>/ns/<ns>/sa/*` for a whole namespace (Identity.principal): both keep the
    trust domain, which `source.namespaces` would ignore."""
    principals = [i.principal(policy.trust_domain) for i in rule.allow]
    if not principals:  # unreachable for a validated policy; never emit an empty `from`
        raise ValueError("rule %s has no callers" % rule.name)
    return [{"source": {"principals": principals}}]


def authorization_host_values(rule):
    """Host header values for `to.operation.hosts`: `H` and `H:*`, the shape Istio's security
    best practices recommend ("Writing host match policies"). Istio matches hosts
    case-insensitively, exactly, or by prefix/suffix with one `*`
    (pilot/pkg/security/authz/matcher/header.go HostMatcher): `H:*` is the prefix `H:`, which
    only a Host header of H with a port has; no other host starts with it."""
    values = []
    for host in rule.hosts:
        values.append(host)
        values.append("%s:*" % host)
    return values


def authorization_policy(policy, rule):
    container_port = str(_gateway_port(policy, rule, "container_ports"))
    if rule.tls == "passthrough":
        # Only the SNI is visible on a TCP chain; `hosts` is HTTP-only and would make an
        # ALLOW rule never match. connection.sni works for TCP.
        operation = {"ports": [container_port]}
        when = [{"key": "connection.sni", "values": list(rule.hosts)}]
    else:
        operation = {"hosts": authorization_host_values(rule), "ports": [container_port]}
        if rule.methods:
            operation["methods"] = list(rule.methods)
        if rule.paths:
            operation["paths"] = list(rule.paths)
        when = None
    policy_rule = {"from": authorization_sources(policy, rule), "to": [{"operation": operation}]}
    if when:
        policy_rule["when"] = when
    annotations = {DRY_RUN_ANNOTATION: "true"} if rule.dry_run else None
    return manifest(policy.api_versions["security"], "AuthorizationPolicy",
                    object_meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"],
                                COMPONENT_RULE, rule, annotations),
                    {"selector": {"matchLabels": dict(policy.gateway["labels"])}, "action": "ALLOW",
                     "rules": [policy_rule]})


def allow_nothing_policy(policy):
    """Istio's documented "allow-nothing" policy on the gateway: an ALLOW policy without rules
    matches nothing. It keeps the gateway default-deny when no other ALLOW policy is enforced
    there (no rules, or only dry-run rules), because a workload without any enforced ALLOW
    policy allows every request."""
    return manifest(policy.api_versions["security"], "AuthorizationPolicy",
                    object_meta(policy, policy_object_name(policy, "allow-nothing"), policy.gateway["namespace"],
                                COMPONENT_DEFAULT_DENY),
                    {"selector": {"matchLabels": dict(policy.gateway["labels"])}, "action": "ALLOW"})


def rule_objects(policy, rule):
    objs = [service_entry(policy, rule), gateway(policy, rule), gateway_destination_rule(policy, rule)]
    for host in rule.hosts:
        objs.append(virtual_service(policy, rule, host))
    for host in rule.hosts:
        if rule.tls == "originate":
            objs.append(gateway_service_entry(policy, rule, host))
        objs.append(gateway_virtual_service(policy, rule, host))
        if rule.tls == "originate":
            objs.append(origination_destination_rule(policy, rule, host))
    objs.append(authorization_policy(policy, rule))
    return objs


# --- the mesh's outbound traffic policy (editing Istio's mesh ConfigMap: apply/meshconfig.py) ----

def sidecar(policy, namespace):
    return manifest(policy.api_versions["networking"], "Sidecar",
                    object_meta(policy, policy_object_name(policy, "outbound-policy"), namespace, COMPONENT_MESH),
                    {"outboundTrafficPolicy": {"mode": policy.mesh["outbound_policy"]}})


def sidecar_namespaces(policy):
    mesh = policy.mesh
    if not mesh["manage"] or mesh["method"] != "sidecar":
        return []
    # scope mesh: a Sidecar without workloadSelector in the root namespace is the mesh default.
    return list(mesh["namespaces"]) if mesh["scope"] == "namespaces" else [mesh["istio_namespace"]]


def mesh_objects(policy):
    return [sidecar(policy, ns) for ns in sidecar_namespaces(policy)]


def mesh_config(policy):
    """What the mesh_config role must change, whichever method is chosen."""
    mesh = policy.mesh
    result = {"manage": mesh["manage"], "method": mesh["method"], "outbound_policy": mesh["outbound_policy"],
              "scope": mesh["scope"]}
    if mesh["method"] == "configmap":
        result.update({"namespace": mesh["istio_namespace"], "configmap": mesh["configmap"], "key": "mesh"})
    else:
        result["sidecar_namespaces"] = sidecar_namespaces(policy)
    return result


# --- everything ---------------------------------------------------------------------------

def build_groups(policy):
    """[(group, [objects])] in a fixed order; a group becomes one rendered file.

    Order: gateway, mesh config, default deny, rules by name, NetworkPolicies."""
    groups = []
    gw_objs = gateway_objects(policy)
    if gw_objs:
        groups.append(("gateway/%s" % policy.gateway["name"], gw_objs))
    mesh_objs = mesh_objects(policy)
    if mesh_objs:
        groups.append(("mesh/outbound-policy", mesh_objs))
    groups.append(("authorization/allow-nothing", [allow_nothing_policy(policy)]))
    for rule in policy.rules:
        groups.append(("rules/%s" % rule.name, rule_objects(policy, rule)))
    np_objs = network_policy_objects(policy)
    if np_objs:
        groups.append(("network-policies/anti-bypass", np_objs))
    return groups


def build_resources(policy):
    return [obj for dummy, objs in build_groups(policy) for obj in objs]


def summary_lines(policy, resources):
    gw = policy.gateway
    mesh = policy.mesh
    if not mesh["manage"]:
        mesh_text = "mesh outbound policy not managed"
    elif mesh["method"] == "configmap":
        mesh_text = "mesh %s via ConfigMap %s/%s" % (
            mesh["outbound_policy"], mesh["istio_namespace"], mesh["configmap"])
    else:
        mesh_text = "mesh %s via Sidecar in %s" % (mesh["outbound_policy"], ", ".join(sidecar_namespaces(policy)))
    lines = ["policy %s: %d rule%s, %d objects; gateway %s/%s (%s); %s; %s" % (
        policy.policy_name, len(policy.rules), "" if len(policy.rules) == 1 else "s", len(resources),
        gw["namespace"], gw["name"], "managed" if gw["manage"] else "existing", mesh_text,
        anti_bypass_summary(policy))]
    for rule in policy.rules:
        l7 = ""
        if rule.methods or rule.paths:
            l7 = " only %s %s" % ("|".join(rule.methods or ["any method"]), " ".join(rule.paths or ["any path"]))
        lines.append("rule %s [%s%s]: %s port %d <- %s%s" % (
            rule.name, rule.tls, ", dry-run" if rule.dry_run else "", ", ".join(rule.hosts), rule.port,
            ", ".join(identity_text(i.namespace, i.service_account) for i in rule.allow), l7))
    return lines
