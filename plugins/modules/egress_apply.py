#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: egress_apply
short_description: Apply, prune or remove the objects of a meshguard.egress policy on a cluster
version_added: 0.2.0
description:
  - Applies the objects built by M(meshguard.egress.egress_resources) with server-side apply
    (field manager C(meshguard-egress), strict field validation) in one task, then deletes the
    objects of this policy that are no longer wanted (prune by the ownership labels
    C(app.kubernetes.io/managed-by=meshguard.egress) and C(egress.meshguard.io/policy)).
  - Only the O(components) named are applied and pruned, so the roles C(mesh_config),
    C(egress_gateway) and C(egress_policy) manage their own objects and never prune each other's.
  - Objects without this policy's labels are never changed or deleted. When an object of the same
    kind and name already exists without them (or belongs to another policy), the task fails
    before anything is written. A host claimed by a rule of another policy fails the same way,
    naming both policies.
  - Order on an empty cluster, concurrent within each step - namespaces, the gateway workload,
    AuthorizationPolicies (so a route never exists before the policy that guards it), then the
    other Istio objects and NetworkPolicies. Deletes go in reverse order.
  - An object that already holds what is wanted is not sent at all (the live object carries a
    hash of the wanted object in the annotation C(egress.meshguard.io/applied-hash) and every
    wanted field), so a converged policy re-applies with no write. C(changed) is reported only
    when the server stored a new version.
  - With O(mesh_config) and the C(mesh-config) component, merges C(outboundTrafficPolicy.mode)
    into the C(mesh) key of Istio's ConfigMap (C(istio) or C(istio-<revision>)), keeping every
    other key, and records the previous value in the annotation
    C(egress.meshguard.io/previous-outbound-policy) so that O(state=absent) restores it.
author:
  - meshguard.egress developers (@meshguard)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  resources:
    description:
      - The objects to apply, usually all of RV(meshguard.egress.egress_resources#module:resources).
        Each must carry this policy's ownership labels; objects of components not in O(components)
        are left out (another task manages them).
      - Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
  policy_name:
    description: The policy whose objects are applied and pruned (label C(egress.meshguard.io/policy)).
    type: str
    required: true
  components:
    description:
      - The components this task manages (label C(egress.meshguard.io/component)). Pruning and
        O(state=absent) touch only objects of these components.
    type: list
    elements: str
    required: true
    choices: [rule, gateway, mesh-config, anti-bypass, default-deny]
  state:
    description:
      - V(present) applies O(resources) and prunes the policy's other objects of O(components).
      - V(absent) deletes every object of the policy in O(components) and restores the mesh
        ConfigMap (when O(mesh_config) is given).
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Take over fields that another field manager owns (server-side apply C(force)). Without it,
        such a conflict fails the task and names the other manager.
    type: bool
    default: false
  prune:
    description: Delete the policy's objects of O(components) that are not in O(resources).
    type: bool
    default: true
  api_versions:
    description:
      - The Istio API versions in use (C(networking), C(security)), as in the policy; used to list
        the kinds to prune when no wanted object names them.
    type: dict
    default: {}
  create_namespaces:
    description:
      - Create missing namespaces that the objects go to, labelled as this policy's (component
        C(gateway)). Such a namespace is deleted by prune or teardown only when nothing else is in it.
      - Without it, a missing namespace fails the task before anything is written.
    type: bool
    default: false
  mesh_config:
    description:
      - RV(meshguard.egress.egress_resources#module:mesh_config). With C(mesh-config) in
        O(components), C(manage=true) and C(method=configmap), the outbound traffic policy is set
        in (or, with O(state=absent), restored to) Istio's mesh ConfigMap.
    type: dict
  wait:
    description:
      - After applying, wait until every Deployment among O(resources) is Available (the managed
        gateway). Not in check mode, not with O(state=absent).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
  workers:
    description: Requests sent concurrently within one step.
    type: int
    default: 8
attributes:
  check_mode:
    support: full
    description: The API server's dry run (C(dryRun=All)); nothing is written.
  diff_mode:
    support: full
    description: One before/after YAML document per created, changed or deleted object.
notes:
  - Needs the C(kubernetes) Python library and the C(kubernetes.core) collection (for the connection).
  - The permissions needed are listed in the collection's C(docs/rbac.md).
  - With an in-memory O(kubeconfig) (a dict), its secrets (token, password, client key and certificate data,
    OIDC tokens, exec plugin environment values) are kept out of the result and logs; its other values are
    shown.
seealso:
  - module: meshguard.egress.egress_resources
  - module: kubernetes.core.k8s
requirements:
  - kubernetes >= 25.3.0 (Python library; tested with 25.3.0 and 37.0.2)
  - PyYAML
"""

EXAMPLES = r"""
- name: Build the policy's objects
  meshguard.egress.egress_resources:
    rules: "{{ meshguard_egress_rules }}"
  register: built

- name: Apply the rule objects and prune removed rules
  meshguard.egress.egress_apply:
    resources: "{{ built.resources }}"
    policy_name: default
    components: [rule, default-deny]

- name: Remove everything the policy created, restore the mesh ConfigMap
  meshguard.egress.egress_apply:
    policy_name: default
    components: [rule, default-deny, gateway, mesh-config, anti-bypass]
    mesh_config: "{{ built.mesh_config }}"
    state: absent

- name: Set the connection once for every module of the collection
  module_defaults:
    group/meshguard.egress.k8s:
      kubeconfig: /etc/automation/kubeconfig
      context: prod
  block:
    - name: Apply
      meshguard.egress.egress_apply:
        resources: "{{ built.resources }}"
        policy_name: default
        components: [rule, default-deny, gateway, mesh-config, anti-bypass]
"""

RETURN = r"""
created:
  description: Objects created (or, in check mode, that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: ["ServiceEntry istio-system/meshguard-baidu"]
updated:
  description: Objects whose stored version changed.
  returned: always
  type: list
  elements: str
deleted:
  description: Objects deleted by prune or teardown.
  returned: always
  type: list
  elements: str
unchanged:
  description: Objects that already were as wanted (no write, or a no-op write).
  returned: always
  type: list
  elements: str
kept:
  description: Objects of this policy left in place (a namespace that holds other objects, or an object replaced under us).
  returned: always
  type: list
  elements: str
mesh_changed:
  description: Whether the mesh ConfigMap was changed (or would be, in check mode).
  returned: always
  type: bool
"""

from ansible_collections.meshguard.egress.plugins.module_utils.apply.runner import converge
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_module import ClusterModule
from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENTS
from ansible_collections.meshguard.egress.plugins.module_utils.apply.meshconfig import configmap_to_manage


def main():
    argument_spec = dict(
        resources=dict(type="list", elements="dict", default=[]),
        policy_name=dict(type="str", required=True),
        components=dict(type="list", elements="str", required=True, choices=list(COMPONENTS)),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
        prune=dict(type="bool", default=True),
        api_versions=dict(type="dict", default={}),
        create_namespaces=dict(type="bool", default=False),
        mesh_config=dict(type="dict"),
        workers=dict(type="int", default=8),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
    )
    module = ClusterModule(argument_spec, supports_check_mode=True)
    result = module.run(apply_task)
    module.exit_json(**result)


def apply_task(module):
    """The module's options to apply.converge: the mesh ConfigMap checked before any client is made."""
    params = module.params
    mesh = configmap_to_manage(params["mesh_config"], params["components"])
    result, warnings = converge(
        module.client(), params["resources"], params["policy_name"], params["components"], state=params["state"],
        mesh=mesh, force=params["force"], check_mode=module.check_mode, diff=module.diff,
        api_versions=params["api_versions"], create_namespaces=params["create_namespaces"], prune=params["prune"],
        workers=params["workers"], wait=params["wait"], wait_timeout=params["wait_timeout"])
    for warning in warnings:
        module.warn(warning)
    return result


if __name__ == "__main__":
    main()
