#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: access_probe
short_description: Test a meshguard.egress policy with live access probes run in pods
version_added: 0.2.0
description:
  - Derives the access tests from the policy (nothing typed twice) and runs them as C(curl)
    commands inside pods over the Kubernetes exec API (what C(kubectl exec) does), many at
    once, each with its own timeout.
  - "Derived cases, with stable names: V(allowed <ns>/<sa> -> <host>) for every allowed
    identity and each host of its rule; V(denied <ns>/<sa> -> <host>) for a probe identity in
    no allow list to every host, and for each allowed identity to the hosts of the rules that do
    not list it; V(unlisted <ns>/<sa> -> <host>), an allowed identity to a host in no rule
    (blocked by REGISTRY_ONLY); V(bypass <ns>/<sa> -> <host>:<port>), an allowed identity
    straight to the host over TLS, skipping the gateway (blocked); V(l7-method ...) and
    V(l7-path ...), a method or path outside a rule's HTTP limits (denied). A namespace-wide
    identity is shown as V(<ns>/*) and probed as O(namespace_service_account)."
  - "Each result is classified as V(allowed) (HTTP 2xx/3xx; for TLS a completed handshake),
    V(denied) (HTTP 403 with C(RBAC: access denied); for TLS through the gateway a connection
    closed during the handshake), V(blocked) (HTTP 502/503/504, DNS failure, connection refused or
    reset, timeout: curl exit 6, 7, 28, 35, 52, 56), V(unexpected) (another HTTP answer), or
    V(broken) (no pod, pod not Running, no C(istio-proxy) sidecar, no curl, exec forbidden by
    RBAC, the exec call hung). A broken probe is never reported as denied."
  - Probes run in existing pods (O(sources), selected by labels or name) or in the probe pods
    that RV(probe_pods) describes (the C(meshguard.egress.verify) role creates and removes them).
  - In check mode, or with O(matrix_only=true), returns the matrix and the probe pods it needs
    and contacts no cluster.
author:
  - meshguard.egress developers (@meshguard)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  policy:
    description:
      - The normalised policy, i.e. RV(meshguard.egress.egress_resources#module:policy) (the
        C(meshguard.egress.policy) role registers it as C(meshguard_egress_policy_built.policy)).
        It is validated again.
    type: dict
    required: true
  denied_identity:
    description:
      - The identity that probes every host and must be denied everywhere, as C(namespace/service_account)
        or a mapping with C(namespace) and C(service_account). It must be in no allow list.
      - Default - O(namespace_service_account) in the first client namespace where no rule allows it,
        else in namespace C(default).
    type: raw
  namespace_service_account:
    description: The service account that probes for a namespace-wide identity (C(allow) without a service account).
    type: str
    default: default
  unlisted_host:
    description: A host in no rule, for the V(unlisted) case (REGISTRY_ONLY must block it).
    type: str
    default: example.com
  cases:
    description:
      - Extra cases. Each is a mapping with C(name) (unique), C(identity) (C(ns/sa) or a mapping),
        C(host), C(expect) (V(allowed), V(denied) or V(blocked)), and optionally C(scheme) (V(http)
        or V(https), default V(http)), C(port), C(method), C(path), C(via_gateway) (default true;
        decides whether a TLS reset means denied or blocked).
    type: list
    elements: dict
    default: []
  exclude:
    description: Names of derived or extra cases to leave out; shell-style patterns such as C(bypass *) allowed.
    type: list
    elements: str
    default: []
  sources:
    description:
      - Existing pods to probe from, per identity. Each is a mapping with C(namespace), optionally
        C(service_account) (omitted - any identity of the namespace), and either C(labels) (a pod
        selector; the first Running pod with an C(istio-proxy) sidecar and the right service account
        is used) or C(pod) (a pod name), and optionally C(container) (default - the first container
        that is not C(istio-proxy)).
      - Identities without a source probe from the probe pod named in RV(probe_pods).
    type: list
    elements: dict
    default: []
  probe_pods:
    description: Probe from short-lived probe pods for identities without a source (see RV(probe_pods)).
    type: bool
    default: true
  probe_image:
    description: Image of the probe pods' container; it must have C(curl) and C(sleep).
    type: str
    default: docker.io/curlimages/curl:8.11.1
  probe_pod_lifetime:
    description: Seconds after which a probe pod stops by itself (C(activeDeadlineSeconds)), even if nobody removes it.
    type: int
    default: 900
  probe_revision:
    description: Istio revision label (C(istio.io/rev)) for probe pods. Default - the policy's mesh revision; without one, C(sidecar.istio.io/inject=true).
    type: str
  timeout:
    description: Seconds each probe may take (curl C(--max-time)); the exec call itself gets 10 seconds more.
    type: int
    default: 10
  concurrency:
    description: How many probes run at the same time.
    type: int
    default: 10
  matrix_only:
    description: Return the matrix and the probe pods without probing (what check mode does).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Lists the matrix and the probe pods; probes nothing and contacts no cluster.
  diff_mode:
    support: none
    description: Probing changes nothing.
requirements:
  - kubernetes >= 25.3.0 (Python library; tested with 25.3.0 and 37.0.2)
notes:
  - The module does not fail when a case does not match; RV(passed) and RV(mismatches) say so. The
    C(meshguard.egress.verify) role fails naming each mismatch.
  - With an in-memory O(kubeconfig) (a dict), its secrets (token, password, client key and certificate data,
    OIDC tokens, exec plugin environment values) are kept out of the result and logs; its other values are
    shown.
  - Needs C(get) and C(list) on pods and C(create) on C(pods/exec) in the probed namespaces.
  - TLS probes use C(curl --insecure) - reachability is under test, not the server's certificate (the
    gateway verifies it when it originates TLS).
seealso:
  - name: docs/verify.md
    description: The matrix, the classification and the report in detail.
    link: https://example.invalid/meshguard/egress/docs/verify.md
"""

EXAMPLES = r"""
- name: Build the policy
  meshguard.egress.egress_resources:
    rules:
      - name: baidu
        hosts: [www.baidu.com]
        allow: [bookinfo/bookinfo-productpage]
  register: built

- name: Probe from the existing productpage pods (and a probe pod for the denied identity)
  meshguard.egress.access_probe:
    policy: "{{ built.policy }}"
    sources:
      - namespace: bookinfo
        service_account: bookinfo-productpage
        labels: {app: productpage}
    exclude: ["bypass *"]
    timeout: 5
  register: probed

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ probed.report.text }}"
"""

RETURN = r"""
matrix:
  description: The cases, in a stable order.
  returned: always
  type: list
  elements: dict
  sample:
    - name: allowed bookinfo/bookinfo-productpage -> www.baidu.com
      kind: allowed
      rule: baidu
      identity: bookinfo/bookinfo-productpage
      namespace: bookinfo
      service_account: bookinfo-productpage
      host: www.baidu.com
      port: 80
      scheme: http
      method: GET
      path: /
      via_gateway: true
      expect: allowed
      note: allowed by rule baidu
planned:
  description: The matrix as a table (one string per line).
  returned: always
  type: list
  elements: str
excluded:
  description: Names of the cases left out by O(exclude).
  returned: always
  type: list
  elements: str
notes:
  description: Derived cases that could not be built and why, and exclusions that matched nothing.
  returned: always
  type: list
  elements: str
probe_pods:
  description: The probe pods the matrix needs (identities without a source), as Pod manifests.
  returned: always
  type: list
  elements: dict
probe_pod_selector:
  description: Label selector of this policy's probe pods (for cleaning up).
  returned: always
  type: str
  sample: app.kubernetes.io/managed-by=meshguard.egress,egress.meshguard.io/component=verify-probe,egress.meshguard.io/policy=default
results:
  description: Each case with its probe result.
  returned: when probed
  type: list
  elements: dict
  contains:
    pod:
      description: The pod the probe ran in.
      type: str
    container:
      description: The container the probe ran in.
      type: str
    command:
      description: The command, shell-quoted.
      type: str
    exit_code:
      description: The command's exit code, from the exec error channel (null when it did not run).
      type: int
    http_status:
      description: The HTTP status curl received (null when none).
      type: int
    response:
      description: The start of the response body.
      type: str
    stderr:
      description: The start of the command's stderr.
      type: str
    duration:
      description: Seconds the exec call took.
      type: float
    observed:
      description: allowed, denied, blocked, unexpected or broken.
      type: str
    cause:
      description: Why it was classified so.
      type: str
    verdict:
      description: pass, fail (observed differs from expected) or broken (probe broken).
      type: str
passed:
  description: True when every case passed.
  returned: when probed
  type: bool
summary:
  description: Counts of cases, pass, fail, broken.
  returned: when probed
  type: dict
mismatches:
  description: One line per case that did not pass, naming identity, host, expected and observed.
  returned: when probed
  type: list
  elements: str
elapsed:
  description: Seconds all probes took together.
  returned: when probed
  type: float
report:
  description: The report - C(text) (the table, one string per line), C(json) (a document), C(junit) (JUnit XML).
  returned: when probed
  type: dict
"""

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_module import ClusterModule
from ansible_collections.meshguard.egress.plugins.module_utils.verify.options import (
    DEFAULT_PROBE_IMAGE, DEFAULT_TIMEOUT, DEFAULT_UNLISTED_HOST, normalize_options, policy_from_built)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.runner import thread_api_factory, verify_run

VERIFY_OPTIONS = ("denied_identity", "namespace_service_account", "unlisted_host", "cases", "exclude", "sources",
                  "probe_pods", "probe_image", "probe_pod_lifetime", "probe_revision", "timeout")


def main():
    argument_spec = dict(
        policy=dict(type="dict", required=True),
        denied_identity=dict(type="raw"),
        namespace_service_account=dict(type="str", default="default"),
        unlisted_host=dict(type="str", default=DEFAULT_UNLISTED_HOST),
        cases=dict(type="list", elements="dict", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        sources=dict(type="list", elements="dict", default=[]),
        probe_pods=dict(type="bool", default=True),
        probe_image=dict(type="str", default=DEFAULT_PROBE_IMAGE),
        probe_pod_lifetime=dict(type="int", default=900),
        probe_revision=dict(type="str"),
        timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        concurrency=dict(type="int", default=10),
        matrix_only=dict(type="bool", default=False),
    )
    # The matrix needs no kubernetes library: it is checked only when probing.
    module = ClusterModule(argument_spec, supports_check_mode=True, check_k8s=False)
    result = module.run(probe_task)
    module.exit_json(**result)


def probe_task(module):
    """The module's options to verify_run; a client only when probing (not in check mode nor matrix_only)."""
    params = module.params
    probe = not (module.check_mode or params["matrix_only"])
    policy = policy_from_built(params["policy"])
    options = normalize_options(policy, dict((k, params[k]) for k in VERIFY_OPTIONS))
    client = make_api = None
    if probe:
        client = module.client()
        make_api = thread_api_factory(client.api_client)
    result = verify_run(policy, options, client=client, make_api=make_api,
                        concurrency=max(1, params["concurrency"]), probe=probe)
    return dict(changed=False, **result)


if __name__ == "__main__":
    main()
