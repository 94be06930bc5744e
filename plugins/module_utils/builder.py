# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the Kubernetes/Istio objects for a validated meshguard.egress Policy.

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

from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    ANNOTATION_HOSTS, COMPONENT_DEFAULT_DENY, COMPONENT_GATEWAY, COMPONENT_MESH, COMPONENT_NETPOL, COMPONENT_RULE,
    ownership_labels)
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import (
    DEFAULT_POLICY_NAME, NAME_SEPARATOR, subset_name)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import ORIGINATION_ALIAS_DOMAIN

DRY_RUN_ANNOTATION = "istio.io/dry-run"


def _meta(policy, name, namespace, component, rule=None, annotations=None):
    labels = ownership_labels(policy.policy_name, component, rule.name if rule is not None else None)
    meta = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _obj(api_version, kind, metadata, spec=None, **extra):
    obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    obj.update(extra)
    return obj


def _gateway_ref(policy, rule):
    return "%s/%s" % (policy.gateway["namespace"], rule_object_name(policy, rule))


def policy_object_name(policy, what):
    """Name of an object of the whole policy (allow-nothing, anti-bypass, outbound-policy) or the
    base of a rule's names: `<prefix><what>` for the default policy (the seed's names stay
    readable), `<prefix><policy>--<what>` for every other one.

    Two policies never share a name: names of the default policy contain no "--" (rule names,
    policy names and the prefix may not contain it, and the prefix ends where an alphanumeric
    name starts), every other policy's names contain exactly one, right after the policy name.
    """
    if policy.policy_name == DEFAULT_POLICY_NAME:
        return policy.name_prefix + what
    return policy.name_prefix + policy.policy_name + NAME_SEPARATOR + what


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
    return _obj(policy.api_versions["networking"], "ServiceEntry",
                _meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"], COMPONENT_RULE, rule,
                      _hosts_annotation(rule)),
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
    return _obj(policy.api_versions["networking"], "ServiceEntry",
                _meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
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
    return _obj(policy.api_versions["networking"], "Gateway",
                _meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"], COMPONENT_RULE, rule),
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
    return _obj(policy.api_versions["networking"], "DestinationRule",
                _meta(policy, rule_object_name(policy, rule) + "-gateway", policy.gateway["namespace"],
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
    return _obj(policy.api_versions["networking"], "VirtualService",
                _meta(policy, host_object_name(policy, rule, host), policy.gateway["namespace"],
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
    return _obj(policy.api_versions["networking"], "VirtualService",
                _meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
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
    return _obj(policy.api_versions["networking"], "DestinationRule",
                _meta(policy, gateway_host_object_name(policy, rule, host), policy.gateway["namespace"],
                      COMPONENT_RULE, rule),
                {"host": origination_host(host), "workloadSelector": {"matchLabels": dict(policy.gateway["labels"])},
                 "exportTo": ["."],
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
    return _obj(policy.api_versions["security"], "AuthorizationPolicy",
                _meta(policy, rule_object_name(policy, rule), policy.gateway["namespace"], COMPONENT_RULE, rule,
                      annotations),
                {"selector": {"matchLabels": dict(policy.gateway["labels"])}, "action": "ALLOW",
                 "rules": [policy_rule]})


def allow_nothing_policy(policy):
    """Istio's documented "allow-nothing" policy on the gateway: an ALLOW policy without rules
    matches nothing. It keeps the gateway default-deny when no other ALLOW policy is enforced
    there (no rules, or only dry-run rules), because a workload without any enforced ALLOW
    policy allows every request."""
    return _obj(policy.api_versions["security"], "AuthorizationPolicy",
                _meta(policy, policy_object_name(policy, "allow-nothing"), policy.gateway["namespace"],
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


# --- the egress gateway (istio/gateway chart style, gateway injection) ---------------------

def _gateway_pod_labels(policy):
    labels = dict(policy.gateway["labels"])
    if policy.gateway["revision"]:
        labels["istio.io/rev"] = policy.gateway["revision"]
    else:
        labels["sidecar.istio.io/inject"] = "true"
    return labels


def gateway_service_account(policy):
    gw = policy.gateway
    return _obj("v1", "ServiceAccount", _meta(policy, gw["service_account"], gw["namespace"], COMPONENT_GATEWAY))


def gateway_role(policy):
    gw = policy.gateway
    return _obj("rbac.authorization.k8s.io/v1", "Role", _meta(policy, gw["name"], gw["namespace"], COMPONENT_GATEWAY),
                rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}])


def gateway_role_binding(policy):
    gw = policy.gateway
    return _obj("rbac.authorization.k8s.io/v1", "RoleBinding",
                _meta(policy, gw["name"], gw["namespace"], COMPONENT_GATEWAY),
                roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": gw["name"]},
                subjects=[{"kind": "ServiceAccount", "name": gw["service_account"]}])


def gateway_service(policy):
    gw = policy.gateway
    # Port names carry the protocol for Istio's protocol selection; these are the names of
    # the legacy istio-egressgateway Service (http2 80->8080, https 443->8443).
    ports = [{"name": "http2", "port": gw["service_ports"]["http"], "protocol": "TCP",
              "targetPort": gw["container_ports"]["http"]},
             {"name": "https", "port": gw["service_ports"]["https"], "protocol": "TCP",
              "targetPort": gw["container_ports"]["https"]}]
    return _obj("v1", "Service", _meta(policy, gw["name"], gw["namespace"], COMPONENT_GATEWAY),
                {"type": "ClusterIP", "selector": dict(gw["labels"]), "ports": ports})


def gateway_deployment(policy):
    gw = policy.gateway
    container_ports = [
        {"containerPort": gw["container_ports"]["http"], "name": "http2", "protocol": "TCP"},
        {"containerPort": gw["container_ports"]["https"], "name": "https", "protocol": "TCP"},
        {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
    ]
    pod_spec = {
        "serviceAccountName": gw["service_account"],
        "containers": [{
            "name": "istio-proxy",
            # "auto": the injector replaces it with the proxy image of the mesh revision.
            "image": "auto",
            "ports": container_ports,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "2", "memory": "1Gi"}},
        }],
    }
    if min(gw["container_ports"].values()) < 1024:
        # The istio/gateway chart's way to let the non-root proxy bind ports below 1024.
        pod_spec["securityContext"] = {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
    return _obj("apps/v1", "Deployment", _meta(policy, gw["name"], gw["namespace"], COMPONENT_GATEWAY),
                {"replicas": gw["replicas"], "selector": {"matchLabels": dict(gw["labels"])},
                 "template": {"metadata": {"annotations": {"inject.istio.io/templates": "gateway"},
                                           "labels": _gateway_pod_labels(policy)},
                              "spec": pod_spec}})


def gateway_objects(policy):
    if not policy.gateway["manage"]:
        return []
    return [gateway_service_account(policy), gateway_role(policy), gateway_role_binding(policy),
            gateway_service(policy), gateway_deployment(policy)]


# --- mesh config -------------------------------------------------------------------------

def sidecar(policy, namespace):
    return _obj(policy.api_versions["networking"], "Sidecar",
                _meta(policy, policy_object_name(policy, "outbound-policy"), namespace, COMPONENT_MESH),
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


def patch_mesh_config_text(mesh_text, outbound_policy, yaml_module):
    """Return the `mesh` ConfigMap value with outboundTrafficPolicy.mode set; other keys kept.

    `yaml_module` is PyYAML (passed in so this module imports nothing optional).
    Comments in the original text are not preserved.
    """
    data = yaml_module.safe_load(mesh_text or "") or {}
    if not isinstance(data, dict):
        raise ValueError("the mesh config is not a YAML mapping")
    current = (data.get("outboundTrafficPolicy") or {}).get("mode")
    if current == outbound_policy:
        return mesh_text, False
    data.setdefault("outboundTrafficPolicy", {})
    if not isinstance(data["outboundTrafficPolicy"], dict):
        data["outboundTrafficPolicy"] = {}
    data["outboundTrafficPolicy"]["mode"] = outbound_policy
    return yaml_module.safe_dump(data, default_flow_style=False, sort_keys=True), True


# --- anti-bypass NetworkPolicies ----------------------------------------------------------

DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
# istiod's xDS and CA port (sidecars fetch their config and certificates there).
ISTIOD_PORTS = [{"port": 15012, "protocol": "TCP"}]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def anti_bypass_namespaces(policy):
    """The namespaces the anti-bypass NetworkPolicies cover (policy_sections.normalize_network_policy)."""
    return list(policy.network_policy["covered"]) if policy.network_policy["enabled"] else []


def _namespace_is(names):
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(names)}]}


def network_policy(policy, namespace, covered=None):
    """No pod of a covered namespace may open a connection outside the cluster; in-cluster
    traffic keeps working (Istio's egress docs, "Additional security considerations").

    Allowed destinations, and nothing else: pods of the covered namespaces (a pod of an
    uncovered namespace could relay to the outside, so it is not a destination), the egress
    gateway's pods on their container ports, DNS in kube-system, istiod on 15012, and
    `allowed_cidrs` (e.g. the API server, which is not a pod)."""
    gw = policy.gateway
    covered = anti_bypass_namespaces(policy) if covered is None else covered
    egress = [
        {"to": [{"namespaceSelector": _namespace_is(covered)}]},
        {"to": [{"namespaceSelector": _namespace_is([gw["namespace"]]),
                 "podSelector": {"matchLabels": dict(gw["labels"])}}],
         "ports": [{"port": gw["container_ports"][key], "protocol": "TCP"} for key in ("http", "https")]},
        {"to": [{"namespaceSelector": _namespace_is(["kube-system"])}], "ports": list(DNS_PORTS)},
        {"to": [{"namespaceSelector": _namespace_is([policy.mesh["istio_namespace"]]),
                 "podSelector": {"matchLabels": {"app": "istiod"}}}], "ports": list(ISTIOD_PORTS)},
    ]
    if policy.network_policy["allowed_cidrs"]:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in policy.network_policy["allowed_cidrs"]]})
    return _obj("networking.k8s.io/v1", "NetworkPolicy",
                _meta(policy, policy_object_name(policy, "anti-bypass"), namespace, COMPONENT_NETPOL),
                {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress})


def network_policy_objects(policy):
    covered = anti_bypass_namespaces(policy)
    return [network_policy(policy, ns, covered) for ns in covered]


def anti_bypass_summary(policy):
    """What the anti-bypass NetworkPolicies cover, said plainly."""
    netpol = policy.network_policy
    if not netpol["enabled"]:
        return "anti-bypass NetworkPolicies off: a pod that skips its sidecar can reach the outside"
    covered = anti_bypass_namespaces(policy)
    text = "anti-bypass NetworkPolicies cover %s" % (", ".join(covered) if covered else "NO namespace")
    if netpol["namespace_selector"] is not None and not netpol["discovered"]:
        text += " (namespace_selector is resolved on the cluster by the egress_policy role, not when rendering)"
    return text + "; pods of any other namespace, and of %s, can still bypass the gateway" % policy.gateway["namespace"]


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
            ", ".join(i.text() for i in rule.allow), l7))
    return lines
