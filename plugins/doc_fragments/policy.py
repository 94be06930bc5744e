# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The meshguard.egress policy: the options every meshguard.egress module takes.
    # The roles take the same settings as variables prefixed with meshguard_egress_.
    DOCUMENTATION = r"""
options:
  rules:
    description:
      - The egress rules. Each rule names external hosts and the workloads allowed to reach them
        through the egress gateway. Everything not allowed by some rule is denied at the gateway.
      - Rules are validated together before anything is built; a problem is reported with the
        rule's index and name and the field, for example C(rules[0] (baidu).hosts[1]).
      - Role variable C(meshguard_egress_rules).
      - A list of mappings. Type V(raw) so that the policy model, not Ansible's generic type
        conversion, checks it and names the rule and field of every problem.
      - An empty list is refused unless O(allow_empty=true).
    type: raw
    default: []
    suboptions:
      name:
        description:
          - Rule name, unique, a DNS-1123 label without C(--), and not one of C(allow-nothing),
            C(anti-bypass), C(outbound-policy). Names the rule's objects and labels them
            C(egress.meshguard.io/rule=<name>).
        type: str
        required: true
      hosts:
        description:
          - Exact external FQDNs, lowercase. Wildcards, IP addresses and in-cluster names
            (C(.svc), C(.cluster.local), C(.local)) are rejected. A host belongs to one rule.
        type: list
        elements: str
        required: true
      tls:
        description:
          - C(originate) - the application speaks plain HTTP on port 80 and the egress gateway
            originates TLS to O(rules[].port) (the seed's case). L7 limits are possible.
          - C(passthrough) - the application speaks TLS itself; routing and authorization use
            the TLS SNI only. Denied callers see a connection reset, not HTTP 403.
          - C(none) - plain HTTP to the external host on O(rules[].port).
        type: str
        choices: [originate, passthrough, none]
        default: originate
      port:
        description:
          - The external service's port. Defaults to 443 for C(originate) and C(passthrough),
            80 for C(none). In C(originate) mode it cannot be 80, the application-facing port.
        type: int
      allow:
        description:
          - Who may call the hosts. Never empty. Each entry is a mapping with C(namespace) and an
            optional C(service_account), or the string C(namespace) or C(namespace/service_account).
          - An entry without service account allows every workload of the namespace.
          - Becomes C(from.source.principals) of the rule's AuthorizationPolicy on the gateway,
            C(<trust_domain>/ns/<ns>/sa/<sa>), or the prefix C(<trust_domain>/ns/<ns>/sa/*) for a
            whole namespace (never C(source.namespaces), which ignores the trust domain).
        type: list
        elements: raw
        required: true
      http:
        description:
          - Optional L7 limits, not allowed with O(rules[].tls=passthrough).
        type: dict
        suboptions:
          methods:
            description: Allowed HTTP methods, uppercase. Omit to allow all methods.
            type: list
            elements: str
          paths:
            description:
              - Allowed paths. Exact (C(/s)), prefix (C(/api/*)) or suffix (C(*.json)). Omit to
                allow all paths; a bare C(*) is rejected.
            type: list
            elements: str
      dry_run:
        description:
          - Mark the rule's AuthorizationPolicy with annotation C(istio.io/dry-run=true). Istio
            evaluates and logs it but does not enforce it. The gateway stays default-deny, so
            requests this rule would allow are denied until O(rules[].dry_run) is removed.
        type: bool
        default: false
      credential_name:
        description:
          - Secret (in the gateway's namespace) with a client certificate; switches TLS
            origination from C(SIMPLE) to C(MUTUAL). Only with C(originate). The Secret's
            C(cacert) verifies the external server.
        type: str
      ca_certificates:
        description:
          - Absolute path, inside the gateway's proxy container, of the CA bundle that verifies
            the external server when the gateway originates TLS (C(SIMPLE)). Defaults to
            C(/etc/ssl/certs/ca-certificates.crt), the OS bundle of Istio's proxy images.
            Only with C(originate), not with O(rules[].credential_name).
        type: str
  gateway:
    description:
      - The egress gateway. Role variable C(meshguard_egress_gateway). A mapping (type V(raw), checked
        by the policy model).
    type: raw
    suboptions:
      name:
        description: Gateway Deployment/Service name.
        type: str
        default: istio-egressgateway
      namespace:
        description: Namespace of the gateway and of every per-rule object.
        type: str
        default: istio-system
      labels:
        description:
          - Labels selecting the gateway pods (Gateway C(selector), AuthorizationPolicy
            C(selector.matchLabels)). Default C(app=<name>) and C(istio=<name without istio- prefix>),
            the labels Istio's installers give the gateway pods.
        type: dict
      service_ports:
        description: Service ports of the gateway, C(http) and C(https).
        type: dict
        default: {http: 80, https: 443}
      container_ports:
        description:
          - Container (target) ports of the gateway, C(http) and C(https). AuthorizationPolicy
            C(ports) match these, not the Service ports. The istioctl/IstioOperator gateway uses
            8080/8443; the istio/gateway Helm chart uses 80/443.
        type: dict
        default: {http: 8080, https: 8443}
      revision:
        description:
          - Istio revision. A managed gateway is labelled C(istio.io/rev=<revision>) instead of
            C(sidecar.istio.io/inject=true); also selects the C(istio-<revision>) mesh ConfigMap.
        type: str
      manage:
        description:
          - V(true) builds the gateway (ServiceAccount, Role, RoleBinding, Service, Deployment with
            gateway injection). V(false) reuses an existing gateway described by these settings.
        type: bool
        default: true
      replicas:
        description: Replicas of a managed gateway.
        type: int
        default: 1
      service_account:
        description: Service account of a managed gateway. Defaults to the gateway name.
        type: str
  mesh:
    description:
      - The outbound traffic policy. Role variable C(meshguard_egress_mesh). A mapping (type V(raw),
        checked by the policy model).
    type: raw
    suboptions:
      manage:
        description: Whether to manage the outbound traffic policy at all.
        type: bool
        default: true
      outbound_policy:
        description:
          - The mode to set.
          - V(ALLOW_ANY) with rules is refused unless O(mesh.allow_fail_open=true) (pods would reach
            every host around the egress gateway).
        type: str
        choices: [REGISTRY_ONLY, ALLOW_ANY]
        default: REGISTRY_ONLY
      method:
        description:
          - C(configmap) sets C(outboundTrafficPolicy.mode) in the C(mesh) key of the
            C(istio)/C(istio-<revision>) ConfigMap (mesh-wide).
          - C(sidecar) creates C(Sidecar) resources with C(outboundTrafficPolicy).
        type: str
        choices: [configmap, sidecar]
        default: configmap
      scope:
        description:
          - C(mesh) for the whole mesh; C(namespaces) for the namespaces in O(mesh.namespaces)
            (needs O(mesh.method=sidecar)).
        type: str
        choices: [mesh, namespaces]
        default: mesh
      namespaces:
        description:
          - Namespaces for O(mesh.scope=namespaces).
          - Must include every namespace a rule allows, unless O(mesh.allow_fail_open=true).
        type: list
        elements: str
      istio_namespace:
        description: Istio's root namespace, where the mesh ConfigMap lives.
        type: str
        default: istio-system
      revision:
        description: Revision of the mesh ConfigMap. Defaults to O(gateway.revision).
        type: str
      configmap:
        description: Mesh ConfigMap name. Defaults to C(istio) or C(istio-<revision>).
        type: str
      allow_fail_open:
        description:
          - Accept an outbound policy that leaves callers the rules allow on C(ALLOW_ANY)
            (O(mesh.outbound_policy=ALLOW_ANY), or O(mesh.scope=namespaces) without an allowed
            namespace), for example while migrating. Without it such a policy is refused.
        type: bool
        default: false
  trust_domain:
    description: The mesh trust domain used in principals C(<trust_domain>/ns/<ns>/sa/<sa>); written lower-case.
    type: str
    default: cluster.local
  cluster_domain:
    description: Kubernetes cluster DNS domain, used for the gateway service host.
    type: str
    default: cluster.local
  api_versions:
    description:
      - API versions to emit, for older meshes. C(networking) is one of
        C(networking.istio.io/v1) (Istio 1.22+, default), C(networking.istio.io/v1beta1),
        C(networking.istio.io/v1alpha3); C(security) is C(security.istio.io/v1) (Istio 1.17+,
        default) or C(security.istio.io/v1beta1).
      - Role variable C(meshguard_egress_api_versions). A mapping (type V(raw), checked by the policy model).
    type: raw
  network_policy:
    description:
      - Anti-bypass Kubernetes NetworkPolicies, so that a pod that skips its sidecar cannot go
        straight out. Every covered namespace gets a NetworkPolicy that lets its pods reach only
        pods of the covered namespaces, the egress gateway pods, DNS in C(kube-system), istiod
        and O(network_policy.allowed_cidrs); nothing outside the cluster.
      - Covered are O(network_policy.namespaces) plus, when applied by the C(egress_policy) role,
        the namespaces matching O(network_policy.namespace_selector) on the cluster, minus the
        gateway's namespace and O(network_policy.exclude_namespaces). Pods of any namespace that
        is not covered can still bypass the gateway; the summary says which are covered.
      - Role variable C(meshguard_egress_network_policy). A mapping (type V(raw), checked by the policy model).
    type: raw
    suboptions:
      enabled:
        description: Generate the NetworkPolicies. Needs O(network_policy.namespaces) or O(network_policy.namespace_selector).
        type: bool
        default: false
      namespaces:
        description: Namespaces to cover, by name (the only ones covered when rendering).
        type: list
        elements: str
      namespace_selector:
        description:
          - Label selector (a mapping of labels, or a selector string such as C(istio-injection=enabled))
            of the namespaces to cover, resolved on the cluster by the C(egress_policy) role.
            V({}) selects every namespace.
        type: raw
      exclude_namespaces:
        description:
          - Namespaces never covered. Default C(kube-node-lease), C(kube-public), C(kube-system),
            the control plane's own pods (CoreDNS must reach upstream resolvers).
        type: list
        elements: str
      allowed_cidrs:
        description:
          - IPv4 CIDRs the covered pods may also reach, for in-cluster endpoints that are not pods
            (the Kubernetes API server). C(/0) is refused.
        type: list
        elements: str
  network_policy_discovered:
    description:
      - The namespaces the C(egress_policy) role found on the cluster with
        O(network_policy.namespace_selector); set by that role, not by users.
    type: list
    elements: str
    default: []
  allow_empty:
    description:
      - Allow a policy without rules. The gateway then denies every request (only the
        allow-nothing AuthorizationPolicy). Without it an empty O(rules), often a misspelt
        variable such as C(meshguard_egress_rule), fails.
      - Role variable C(meshguard_egress_allow_empty). A boolean (type V(raw), checked by the policy model).
    type: raw
    default: false
  policy_name:
    description:
      - Name of this policy, written to label C(egress.meshguard.io/policy). Applies and prunes
        only touch objects of the same policy name, so independent policies can share a cluster.
      - Every object name of a policy other than C(default) carries it (C(<prefix><policy>--<rule>)),
        so two policies never build objects of the same name. At most 30 characters, no C(--).
    type: str
    default: default
  name_prefix:
    description: Prefix of every generated object name (no C(--)).
    type: str
    default: meshguard-
"""
