#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: egress_resources
short_description: Build the Istio egress-gateway objects for a meshguard.egress policy
version_added: 0.1.0
description:
  - Validates a declarative egress policy (which workloads may reach which external hosts)
    and builds every Kubernetes and Istio object that enforces it through an Istio egress
    gateway, following Istio's documented egress tasks.
  - Per rule, a ServiceEntry (resolution DNS), a Gateway (server TLS mode ISTIO_MUTUAL), a
    DestinationRule with the gateway subsets (ISTIO_MUTUAL with the host as SNI), a
    VirtualService per host (mesh to gateway to external host), a DestinationRule per host
    for TLS origination (tls C(originate)), and an AuthorizationPolicy on the gateway that
    allows exactly the listed callers.
  - Shared objects, when enabled, are the managed gateway (ServiceAccount, Role, RoleBinding,
    Service, Deployment with gateway injection), C(Sidecar) resources for the outbound
    traffic policy, and anti-bypass NetworkPolicies. RV(mesh_config) says what must change
    in the mesh ConfigMap when O(mesh.method=configmap).
  - Talks to no cluster and changes nothing. Write the result to files with the
    C(meshguard.egress.render) playbook, or apply RV(resources) with M(kubernetes.core.k8s).
  - Every object is labelled C(app.kubernetes.io/managed-by=meshguard.egress),
    C(egress.meshguard.io/policy) and (per-rule objects) C(egress.meshguard.io/rule), so
    that an apply can prune exactly what it created. Output order and names are stable.
author:
  - meshguard.egress developers (@meshguard)
extends_documentation_fragment:
  - meshguard.egress.policy
options:
  render:
    description:
      - Also return RV(files), the objects as YAML files (one per rule plus shared objects and
        a C(kustomization.yaml)) for C(kubectl apply -k), Argo CD or Flux.
    type: bool
    default: false
  resources:
    description:
      - Return RV(resources), the objects as data. Set V(false) when only RV(files) are needed;
        a large nested result costs Ansible noticeable time to post-process.
    type: bool
    default: true
  unknown_variables:
    description:
      - Names of C(meshguard_egress_*) variables the calling role does not know (the
        C(meshguard.egress.policy) role passes them). Each gets a warning, with the closest
        known name when there is one, so a typo such as C(meshguard_egress_rule) is seen.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: The module never changes anything, so check mode returns the same result.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff; the apply roles show diffs.
notes:
  - The policy is validated completely before anything is built. Invalid input fails with
    one message listing every problem, each naming the rule (index and name) and the field.
  - Full reference of the policy model and of the objects built, with the Istio sources for
    each choice, is in the collection's C(docs/) directory.
seealso:
  - name: Istio task "Egress Gateways with TLS Origination"
    description: The documented shape the C(originate) mode follows.
    link: https://istio.io/latest/docs/tasks/traffic-management/egress/egress-gateway-tls-origination/
  - name: Istio AuthorizationPolicy reference
    description: Semantics of the generated ALLOW policies.
    link: https://istio.io/latest/docs/reference/config/security/authorization-policy/
"""

EXAMPLES = r"""
- name: Build the objects for the seed scenario (baidu, one service account allowed)
  meshguard.egress.egress_resources:
    rules:
      - name: baidu
        hosts: [www.baidu.com]
        tls: originate
        allow:
          - namespace: bookinfo
            service_account: bookinfo-productpage
  register: egress

- name: Show what would be applied
  ansible.builtin.debug:
    var: egress.summary

- name: Passthrough rule, a whole namespace allowed, on an existing gateway with chart ports
  meshguard.egress.egress_resources:
    gateway:
      manage: false
      name: egress
      namespace: istio-egress
      labels: {istio: egress}
      container_ports: {http: 80, https: 443}
    rules:
      - name: github
        hosts: [api.github.com]
        tls: passthrough
        allow: [ci]
    render: true
  register: github

- name: Older mesh (Istio 1.20) with a revision and NetworkPolicies against sidecar bypass
  meshguard.egress.egress_resources:
    api_versions:
      networking: networking.istio.io/v1beta1
      security: security.istio.io/v1beta1
    gateway:
      revision: 1-20-3
    network_policy:
      enabled: true
      namespaces: [builds]
    rules:
      - name: pypi
        hosts: [pypi.org, files.pythonhosted.org]
        allow: [{namespace: builds}]
        http:
          methods: [GET, HEAD]
"""

RETURN = r"""
resources:
  description: Every object to apply, in a stable order (gateway, mesh config, rules by name, NetworkPolicies).
  returned: when O(resources=true)
  type: list
  elements: dict
  sample:
    - apiVersion: networking.istio.io/v1
      kind: ServiceEntry
      metadata:
        name: meshguard-baidu
        namespace: istio-system
        labels:
          app.kubernetes.io/managed-by: meshguard.egress
          egress.meshguard.io/policy: default
          egress.meshguard.io/rule: baidu
          egress.meshguard.io/component: rule
      spec:
        hosts: [www.baidu.com]
        exportTo: ["*"]
        location: MESH_EXTERNAL
        ports:
          - {number: 80, name: http, protocol: HTTP}
          - {number: 443, name: https, protocol: HTTPS}
        resolution: DNS
files:
  description: Relative file path to YAML text; only with O(render=true).
  returned: when render is true
  type: dict
  sample:
    kustomization.yaml: "apiVersion: kustomize.config.k8s.io/v1beta1\n..."
    rules/baidu.yaml: "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n..."
summary:
  description: One line for the policy, then one line per rule.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      policy default: 1 rule, 12 objects; gateway istio-system/istio-egressgateway (managed);
      mesh REGISTRY_ONLY via ConfigMap istio-system/istio; anti-bypass NetworkPolicies off
    - "rule baidu [originate]: www.baidu.com port 443 <- bookinfo/bookinfo-productpage"
mesh_config:
  description: What the outbound traffic policy needs; with method configmap, the ConfigMap and key to patch.
  returned: always
  type: dict
  sample:
    manage: true
    method: configmap
    outbound_policy: REGISTRY_ONLY
    scope: mesh
    namespace: istio-system
    configmap: istio
    key: mesh
rules:
  description: The rules after validation, with every default filled in, sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - name: baidu
      hosts: [www.baidu.com]
      tls: originate
      port: 443
      allow: [{namespace: bookinfo, service_account: bookinfo-productpage}]
      http: null
      dry_run: false
      credential_name: null
policy:
  description: The normalised policy (every default filled in), for the roles that apply and verify it.
  returned: always
  type: dict
  sample:
    policy_name: default
    trust_domain: cluster.local
    gateway: {name: istio-egressgateway, namespace: istio-system, manage: true}
    gateway_host: istio-egressgateway.istio-system.svc.cluster.local
    hosts: [www.baidu.com]
labels:
  description: The ownership labels that select this policy's objects (for pruning and teardown).
  returned: always
  type: dict
  sample:
    app.kubernetes.io/managed-by: meshguard.egress
    egress.meshguard.io/policy: default
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshguard.egress.plugins.module_utils.argspec import (
    POLICY_ARG_SPEC, policy_from_params, unknown_variable_warnings)
from ansible_collections.meshguard.egress.plugins.module_utils.policy import PolicyError
from ansible_collections.meshguard.egress.plugins.module_utils.render import build_result


def main():
    argument_spec = dict(POLICY_ARG_SPEC)
    argument_spec["render"] = dict(type="bool", default=False)
    argument_spec["resources"] = dict(type="bool", default=True)
    argument_spec["unknown_variables"] = dict(type="list", elements="str", default=[])
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    for warning in unknown_variable_warnings(module.params["unknown_variables"]):
        module.warn(warning)
    try:
        result = build_result(policy_from_params(module.params), resources=module.params["resources"],
                              render=module.params["render"])
    except PolicyError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
