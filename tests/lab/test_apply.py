"""The apply playbooks (meshguard.egress.site / teardown) against the lab cluster: a real
kube-apiserver with RBAC and strict field validation, Istio's CRDs and istiod's validating and
injecting webhooks (tests/lab/README.md).

Every test leaves the lab as it found it (teardown in `finally`), since the lab is shared by the
whole session. Results are read from ansible-playbook's recap and from the cluster itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from lablib import REPO_DIR
from relay import Relay
from test_examples import EXAMPLES, existing_gateway, load_objects, object_files, referenced_namespaces, revisions

pytestmark = pytest.mark.lab

MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
OUR_KINDS = ("serviceentries.networking.istio.io,gateways.networking.istio.io,destinationrules.networking.istio.io,"
             "virtualservices.networking.istio.io,sidecars.networking.istio.io,"
             "authorizationpolicies.security.istio.io,networkpolicies.networking.k8s.io,"
             "deployments.apps,services,serviceaccounts,roles.rbac.authorization.k8s.io,"
             "rolebindings.rbac.authorization.k8s.io,poddisruptionbudgets.policy")
COLLECTIONS = REPO_DIR / "build" / "collections"
RBAC = REPO_DIR / "docs" / "rbac" / "automation-account.yaml"

SEED = {
    "meshguard_egress_rules": [
        {"name": "baidu", "hosts": ["www.baidu.com"], "tls": "originate", "port": 443,
         "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]},
    ],
    "meshguard_egress_mesh": {"outbound_policy": "REGISTRY_ONLY", "method": "configmap"},
}
GITHUB = {"name": "github", "hosts": ["api.github.com"], "tls": "passthrough",
          "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-reviews"}]}


# --- running the playbooks ------------------------------------------------------------------

class Play:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", self.out)
        self.changed = int(recap.group(2)) if recap else None
        self.failed = int(recap.group(4)) if recap else None

    def __repr__(self):
        return f"Play(rc={self.rc}, changed={self.changed})\n{self.out[-6000:]}"


def _collection_link():
    link = COLLECTIONS / "ansible_collections" / "meshguard" / "egress"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_DIR)


def play(lab, tmp_path: Path, playbook: str, policy: dict, *args: str, env: dict | None = None,
         timeout: float = 600) -> Play:
    _collection_link()
    vars_file = tmp_path / f"policy-{time.monotonic_ns()}.yml"
    vars_file.write_text(yaml.safe_dump(policy))
    run_env = dict(lab.env)
    run_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "K8S_AUTH_KUBECONFIG": lab.kubeconfig,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + lab.env["PATH"],
    })
    run_env.update(env or {})
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), f"meshguard.egress.{playbook}",
         "-e", f"@{vars_file}", *args],
        text=True, capture_output=True, env=run_env, timeout=timeout, check=False, cwd=str(REPO_DIR))
    return Play(proc)


def owned(lab, policy_name: str | None = None) -> dict[str, dict]:
    """Our objects in the lab: 'Kind ns/name' -> object."""
    selector = MANAGED + (f",egress.meshguard.io/policy={policy_name}" if policy_name else "")
    proc = lab.kubectl_run("get", OUR_KINDS, "-A", "-l", selector, "-o", "json")
    items = json.loads(proc.stdout)["items"]
    return {f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in items}


def versions(objs: dict[str, dict]) -> dict[str, str]:
    return {k: o["metadata"]["resourceVersion"] for k, o in objs.items()}


def mesh_configmap(lab, name: str = "istio", namespace: str = "istio-system") -> dict:
    return json.loads(lab.kubectl_run("get", "configmap", name, "-n", namespace, "-o", "json").stdout)


def mesh_mode(cm: dict) -> str | None:
    return ((yaml.safe_load(cm["data"]["mesh"]) or {}).get("outboundTrafficPolicy") or {}).get("mode")


@contextlib.contextmanager
def namespaces(lab, *names: str):
    created = []
    for ns in names:
        if lab.kubectl_run("get", "namespace", ns, check=False).returncode != 0:
            lab.kubectl_run("create", "namespace", ns)
            created.append(ns)
    try:
        yield
    finally:
        for ns in created:
            lab.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


@contextlib.contextmanager
def torn_down(lab, tmp_path, *policies: dict):
    """Run teardown for each policy afterwards, whatever happened, and check it left nothing."""
    try:
        yield
    finally:
        for policy in policies:
            result = play(lab, tmp_path, "teardown", policy)
            assert result.rc == 0, result
            name = policy.get("meshguard_egress_policy_name", "default")
            assert owned(lab, name) == {}, f"teardown of {name} left objects"


# --- the seed scenario: converge, idempotence, check mode, diff, teardown -------------------

def test_seed_converges_idempotently_check_mode_writes_nothing_and_teardown_restores(lab, tmp_path):
    cm_before = mesh_configmap(lab)
    with namespaces(lab, "bookinfo"), torn_down(lab, tmp_path, SEED):
        # --check on an empty cluster: the API server's dry run accepts everything, nothing is stored
        check = play(lab, tmp_path, "site", SEED, "--check", "--diff")
        assert check.rc == 0, check
        assert "kind: ServiceEntry" in check.out and "www.baidu.com" in check.out
        assert owned(lab) == {}
        assert mesh_configmap(lab)["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"]

        first = play(lab, tmp_path, "site", SEED)
        assert first.rc == 0, first
        assert first.changed and first.changed > 0
        objs = owned(lab, "default")
        kinds = sorted(k.split()[0] for k in objs)
        for kind in ("AuthorizationPolicy", "DestinationRule", "Deployment", "Gateway", "ServiceEntry",
                     "VirtualService", "Service", "ServiceAccount", "PodDisruptionBudget"):
            assert kind in kinds, kinds
        # istiod injected the gateway (gateway template) and the Deployment became Available
        pods = json.loads(lab.kubectl_run("get", "pods", "-n", "istio-system", "-l", "app=istio-egressgateway",
                                          "-o", "json").stdout)["items"]
        assert pods and all(p["metadata"]["annotations"].get("sidecar.istio.io/status") for p in pods)
        cm = mesh_configmap(lab)
        assert mesh_mode(cm) == "REGISTRY_ONLY"
        before_mesh = yaml.safe_load(cm_before["data"]["mesh"]) or {}
        after_mesh = yaml.safe_load(cm["data"]["mesh"])
        assert {k: v for k, v in after_mesh.items() if k != "outboundTrafficPolicy"} == \
            {k: v for k, v in before_mesh.items() if k != "outboundTrafficPolicy"}
        assert {k: v for k, v in cm["data"].items() if k != "mesh"} == \
            {k: v for k, v in cm_before["data"].items() if k != "mesh"}

        # a second run: changed=0 for every task, and no object was written
        second = play(lab, tmp_path, "site", SEED)
        assert second.rc == 0, second
        assert second.changed == 0, second
        assert versions(owned(lab, "default")) == versions(objs)

        # --check --diff of a changed policy: shows the change, writes nothing
        changed = dict(SEED, meshguard_egress_rules=SEED["meshguard_egress_rules"] + [GITHUB])
        preview = play(lab, tmp_path, "site", changed, "--check", "--diff")
        assert preview.rc == 0, preview
        assert preview.changed and preview.changed > 0
        assert "api.github.com" in preview.out and "+kind: VirtualService" in preview.out
        assert versions(owned(lab, "default")) == versions(objs)

    # after teardown (torn_down checked that none of our objects is left): the ConfigMap is as before
    cm_after = mesh_configmap(lab)
    assert cm_after["data"].keys() == cm_before["data"].keys()
    assert yaml.safe_load(cm_after["data"]["mesh"]) == yaml.safe_load(cm_before["data"]["mesh"])
    assert {k: v for k, v in cm_after["data"].items() if k != "mesh"} == \
        {k: v for k, v in cm_before["data"].items() if k != "mesh"}
    assert "egress.meshguard.io/previous-outbound-policy" not in (cm_after["metadata"].get("annotations") or {})


# --- every example ------------------------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES)
def test_example_converges_on_the_lab_idempotently_and_tears_down(lab, tmp_path, rendered_examples, example):
    policy = yaml.safe_load((REPO_DIR / "examples" / f"{example}.yml").read_text())
    objs = load_objects(object_files(rendered_examples / example))
    # the world the policy assumes: client namespaces, the Istio revisions it selects, an
    # existing gateway when it reuses one (the gateway namespace itself the role creates)
    for rev in sorted(revisions(objs) | {(policy.get("meshguard_egress_mesh") or {}).get("revision")} - {None}):
        lab.ensure_revision(rev)
    netpol = policy.get("meshguard_egress_network_policy") or {}
    mesh = policy.get("meshguard_egress_mesh") or {}
    clients = sorted(referenced_namespaces(objs) | set(netpol.get("namespaces") or [])
                     | set(mesh.get("namespaces") or []))
    with namespaces(lab, *clients), existing_gateway(lab, example), torn_down(lab, tmp_path, policy):
        first = play(lab, tmp_path, "site", policy)
        assert first.rc == 0, first
        assert owned(lab, policy.get("meshguard_egress_policy_name", "default"))
        second = play(lab, tmp_path, "site", policy, "--diff")  # a failure shows what changed
        assert second.rc == 0 and second.changed == 0, second


# --- prune, foreign objects, several policies -------------------------------------------------

TEAM_B = {
    "meshguard_egress_policy_name": "team-b",
    "meshguard_egress_gateway": {"manage": False},
    "meshguard_egress_mesh": {"manage": False},
    "meshguard_egress_rules": [{"name": "pypi", "hosts": ["pypi.org"],
                                "allow": [{"namespace": "builds", "service_account": "ci"}]}],
}


def test_removed_rule_is_pruned_foreign_and_other_policy_objects_survive(lab, tmp_path):
    two = dict(SEED, meshguard_egress_rules=SEED["meshguard_egress_rules"] + [GITHUB])
    foreign = {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "meshguard-github-copy", "namespace": "istio-system", "labels": {"team": "other"}},
        "spec": {"hosts": ["api.github.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                 "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]},
    }
    with namespaces(lab, "bookinfo", "builds"), torn_down(lab, tmp_path, TEAM_B, SEED):
        assert play(lab, tmp_path, "site", two).rc == 0
        lab.kubectl_run("apply", "-f", "-", input=json.dumps(foreign))
        try:
            result = play(lab, tmp_path, "site", TEAM_B)
            assert result.rc == 0, result
            team_b = versions(owned(lab, "team-b"))
            assert team_b
            with_github = owned(lab, "default")
            github = {k for k, o in with_github.items() if o["metadata"]["labels"].get("egress.meshguard.io/rule") == "github"}
            assert github

            result = play(lab, tmp_path, "site", SEED)
            assert result.rc == 0, result
            left = owned(lab, "default")
            assert set(left) == set(with_github) - github
            assert lab.kubectl_run("get", "serviceentry", "meshguard-github-copy", "-n", "istio-system",
                                   check=False).returncode == 0
            assert versions(owned(lab, "team-b")) == team_b

            # teardown of default leaves team-b's objects untouched
            assert play(lab, tmp_path, "teardown", SEED).rc == 0
            assert owned(lab, "default") == {}
            assert versions(owned(lab, "team-b")) == team_b
        finally:
            lab.kubectl_run("delete", "serviceentry", "meshguard-github-copy", "-n", "istio-system",
                            "--ignore-not-found", check=False)


def test_unlabelled_object_of_the_same_name_is_refused_and_nothing_is_written(lab, tmp_path):
    squatter = {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "meshguard-baidu", "namespace": "istio-system"},
        "spec": {"hosts": ["www.baidu.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                 "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]},
    }
    policy = dict(SEED, meshguard_egress_mesh={"manage": False})
    with namespaces(lab, "bookinfo"), torn_down(lab, tmp_path, policy):
        lab.kubectl_run("apply", "-f", "-", input=json.dumps(squatter))
        try:
            rv = json.loads(lab.kubectl_run("get", "serviceentry", "meshguard-baidu", "-n", "istio-system",
                                            "-o", "json").stdout)["metadata"]["resourceVersion"]
            result = play(lab, tmp_path, "site", policy)
            assert result.rc != 0, result
            assert "refusing to change ServiceEntry istio-system/meshguard-baidu" in result.out, result
            # the egress_policy role wrote none of its objects (the gateway role ran before it)
            assert not [k for k, o in owned(lab, "default").items()
                        if o["metadata"]["labels"].get("egress.meshguard.io/component") in ("rule", "default-deny")]
            after = json.loads(lab.kubectl_run("get", "serviceentry", "meshguard-baidu", "-n", "istio-system",
                                               "-o", "json").stdout)
            assert after["metadata"]["resourceVersion"] == rv
        finally:
            lab.kubectl_run("delete", "serviceentry", "meshguard-baidu", "-n", "istio-system",
                            "--ignore-not-found", check=False)


def test_host_claimed_by_two_policies_fails_naming_both(lab, tmp_path):
    team_b = dict(TEAM_B, meshguard_egress_rules=[{"name": "search", "hosts": ["www.baidu.com"],
                                                   "allow": [{"namespace": "builds", "service_account": "ci"}]}])
    with namespaces(lab, "bookinfo", "builds"), torn_down(lab, tmp_path, SEED, team_b):
        assert play(lab, tmp_path, "site", SEED).rc == 0
        before = versions(owned(lab))
        result = play(lab, tmp_path, "site", team_b)
        assert result.rc != 0, result
        assert "www.baidu.com" in result.out and "'team-b'" in result.out and "'default'" in result.out, result
        assert versions(owned(lab)) == before


# --- least privilege ------------------------------------------------------------------------

def _service_account_kubeconfig(lab, tmp_path) -> Path:
    token = lab.kubectl_run("-n", "meshguard-automation", "create", "token", "meshguard-egress",
                            "--duration=1h").stdout.strip()
    config = yaml.safe_load(lab.kubectl_run("config", "view", "--raw", "--minify", "--flatten").stdout)
    config["users"] = [{"name": "meshguard-egress", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "meshguard-egress"
    path = tmp_path / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_least_privilege_account_converges_and_a_missing_permission_is_named(lab, tmp_path):
    with namespaces(lab, "bookinfo"):
        lab.kubectl_run("apply", "-f", str(RBAC))
        try:
            sa_env = {"K8S_AUTH_KUBECONFIG": str(_service_account_kubeconfig(lab, tmp_path))}
            with torn_down(lab, tmp_path, SEED):
                first = play(lab, tmp_path, "site", SEED, env=sa_env)
                assert first.rc == 0, first
                second = play(lab, tmp_path, "site", SEED, env=sa_env)
                assert second.rc == 0 and second.changed == 0, second
                teardown = play(lab, tmp_path, "teardown", SEED, env=sa_env)
                assert teardown.rc == 0, teardown
                assert owned(lab, "default") == {}

                # remove one permission: the run fails naming it, before writing anything
                role = json.loads(lab.kubectl_run("get", "clusterrole", "meshguard-egress-read", "-o", "json").stdout)
                for rule in role["rules"]:
                    if "virtualservices" in rule.get("resources", []):
                        rule["resources"].remove("virtualservices")
                lab.kubectl_run("replace", "-f", "-", input=json.dumps(role))
                failed = play(lab, tmp_path, "site", dict(SEED, meshguard_egress_mesh={"manage": False}), env=sa_env)
                assert failed.rc != 0, failed
                assert 'cannot list resource "virtualservices" in API group "networking.istio.io"' in failed.out, failed
                assert "permission denied (HTTP 403)" in failed.out
        finally:
            lab.kubectl_run("delete", "-f", str(RBAC), "--ignore-not-found", "--wait=false", check=False)


# --- bad input: nothing reaches the cluster ------------------------------------------------------

class ConnectionCounter:
    """A TCP listener standing in for an API server: it counts connections and closes them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self):
        self.sock.close()


def test_bad_input_sends_no_request_and_names_rule_and_field(lab, tmp_path):
    counter = ConnectionCounter()
    env = {"K8S_AUTH_KUBECONFIG": "", "K8S_AUTH_HOST": f"https://127.0.0.1:{counter.port}",
           "K8S_AUTH_API_KEY": "not-a-token", "K8S_AUTH_VALIDATE_CERTS": "false"}
    try:
        bad = dict(SEED, meshguard_egress_rules=[dict(SEED["meshguard_egress_rules"][0], hosts=["*.baidu.com"])])
        result = play(lab, tmp_path, "site", bad, env=env)
        assert result.rc != 0
        assert "rules[0] (baidu).hosts[0]" in result.out, result
        assert counter.count == 0
        # the same setup with a good policy does reach the "API server": the counter can count
        result = play(lab, tmp_path, "site", SEED, env=env)
        assert result.rc != 0
        assert counter.count > 0
    finally:
        counter.close()


# --- the API server goes away in the middle of a converge ------------------------------------------
# A Relay (scripts/relay.py) in front of the lab's API server: cut() closes its listener and every
# connection at once, start() listens again on the same port.


def rules_with_a_service_entry(objs: dict[str, dict]) -> set[str]:
    return {o["metadata"]["labels"].get("egress.meshguard.io/rule") for k, o in objs.items()
            if k.startswith("ServiceEntry ")}


def test_api_server_gone_mid_converge_fails_clearly_and_a_rerun_converges(lab, tmp_path):
    config = yaml.safe_load(lab.kubectl_run("config", "view", "--raw", "--minify", "--flatten").stdout)
    server = config["clusters"][0]["cluster"]["server"]
    match = re.match(r"https://([^:/]+):(\d+)", server)
    proxy = Relay((match.group(1), int(match.group(2)))).start()
    config["clusters"][0]["cluster"]["server"] = f"https://{match.group(1)}:{proxy.port}"
    kubeconfig = tmp_path / "proxied-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {"K8S_AUTH_KUBECONFIG": str(kubeconfig)}
    many = dict(SEED, meshguard_egress_rules=[
        {"name": f"svc{i:02d}", "hosts": [f"svc{i:02d}.example.com"],
         "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]} for i in range(30)])
    with namespaces(lab, "bookinfo"), torn_down(lab, tmp_path, many):
        holder = {}

        def converge():
            holder["result"] = play(lab, tmp_path, "site", many, env=env)

        runner = threading.Thread(target=converge)
        runner.start()
        # cut as soon as the gateway exists: the rule objects are then being applied or about to be
        lab.wait_for("the gateway Deployment", lambda: lab.kubectl_run(
            "get", "deployment", "istio-egressgateway", "-n", "istio-system", check=False).returncode == 0,
            timeout=300, interval=0.2)
        proxy.cut()
        runner.join(timeout=600)
        result = holder["result"]
        assert result.rc != 0, result
        assert ("did not answer" in result.out or "Connection refused" in result.out
                or "Max retries exceeded" in result.out), result
        assert len(rules_with_a_service_entry(owned(lab, "default"))) < 30

        proxy.start(retry_for=30)  # the same port: the kubeconfig names it
        again = play(lab, tmp_path, "site", many, env=env)
        assert again.rc == 0, again
        objs = owned(lab, "default")
        assert len(rules_with_a_service_entry(objs)) == 30
        # nothing duplicated: one AuthorizationPolicy per rule, plus allow-nothing
        assert len([k for k in objs if k.startswith("AuthorizationPolicy ")]) == 31
        third = play(lab, tmp_path, "site", many, env=env)
        assert third.rc == 0 and third.changed == 0, third
    proxy.cut()
