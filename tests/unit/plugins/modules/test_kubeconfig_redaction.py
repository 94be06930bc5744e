# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets of an in-memory kubeconfig (module option ``kubeconfig`` as a dict) stay out of
the module results and of ``ansible-playbook -vvv`` output (k8s_module.ClusterModule), while the
rest of the kubeconfig and of the result is not masked. A real playbook run: egress_apply against
an API server that is not there (127.0.0.1, a closed port) fails, access_probe with matrix_only
succeeds without a cluster (both through the same ClusterModule). Needs ansible-playbook and the
kubernetes library next to this Python (the project venv); skipped under ansible-test units."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_module import kubeconfig_secrets
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils.test_k8s_client import closed_port

TOKEN = "meshguard-secret-token-5d1c9e"
KEY_DATA = "bWVzaGd1YXJkLWNsaWVudC1rZXk="
POLICY = normalize_policy({"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                                      "allow": [{"namespace": "bookinfo", "service_account": "app"}]}]}).as_dict()
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "build", "collections"))


def _kubeconfig(server):
    return {"apiVersion": "v1", "kind": "Config", "current-context": "default", "preferences": {},
            "clusters": [{"name": "default", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "users": [{"name": "default", "user": {"token": TOKEN}}]}


def test_the_secrets_of_a_kubeconfig():
    config = _kubeconfig("https://127.0.0.1:6443")
    config["users"].append({"name": "exec", "user": {
        "client-key-data": KEY_DATA, "exec": {"command": "aws", "env": [{"name": "AWS_SECRET", "value": "s3cr3t"}]},
        "auth-provider": {"name": "oidc", "config": {"client-id": "meshguard", "client-secret": "cs",
                                                     "id-token": "idt", "refresh-token": "rt"}}}})
    assert kubeconfig_secrets(config) == set([TOKEN, KEY_DATA, "s3cr3t", "cs", "idt", "rt"])
    assert kubeconfig_secrets("/home/me/.kube/config") == set()


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply against a server that is not there
      meshguard.egress.egress_apply: {kubeconfig: "{{ kc }}", policy_name: default, components: [rule]}
      register: applied
      ignore_errors: true
    - name: The matrix needs no cluster
      meshguard.egress.access_probe: {kubeconfig: "{{ kc }}", policy: "{{ policy }}", matrix_only: true}
      register: matrix
    - name: Keep what was registered
      ansible.builtin.copy:
        content: "{{ {'applied': applied, 'matrix': matrix} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no ansible-playbook next to this Python")
def test_no_kubeconfig_secret_in_results_or_verbose_output(tmp_path):
    pytest.importorskip("kubernetes")
    server = "https://127.0.0.1:%d" % closed_port()
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps({"kc": _kubeconfig(server), "policy": POLICY,
                                                   "out": str(tmp_path / "out.json")}))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("K8S_AUTH_"))
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               HOME=str(tmp_path))
    proc = subprocess.run([PLAYBOOK, "-vvv", str(tmp_path / "play.yml"), "-e", "@" + str(tmp_path / "vars.json")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    results = json.loads((tmp_path / "out.json").read_text())
    assert TOKEN not in output and TOKEN not in json.dumps(results)
    applied, matrix = results["applied"], results["matrix"]
    assert applied["failed"] and "Could not create the Kubernetes API client" in applied["msg"], applied
    assert "127.0.0.1" in applied["msg"]
    # only the secret is masked: the kubeconfig's names and server, and "default" elsewhere, stay
    assert not matrix.get("failed") and "denied bookinfo/default -> www.baidu.com" in [
        case["name"] for case in matrix["matrix"]]
    # -vvv printed each invocation: the kubeconfig with its token, and only its token, masked
    assert output.count('"token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"') == 2, output[-4000:]
    assert output.count('"server": "%s"' % server) == 2 and output.count('"current-context": "default"') == 2
