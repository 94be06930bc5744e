"""Verify (docs/verify.md) on the lab: the exec machinery of access_probe against a real API
server (kwok's exec), the verify role's probe pods (injected by the lab's istiod, always removed),
and, with the lab's data plane (issue 8), the policy's claims proven by traffic.

Machinery tests run on any lab. Traffic tests need the data plane (fixture ``dataplane`` of
conftest.py) and skip with the reason when it is not there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from lablib import REPO_DIR

pytestmark = pytest.mark.lab

COLLECTIONS = REPO_DIR / "build" / "collections"
_LINK = COLLECTIONS / "ansible_collections" / "meshguard" / "egress"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    _LINK.symlink_to(REPO_DIR)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

# pylint: disable=wrong-import-position
from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import Client  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.verify import runner  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.verify.options import normalize_options  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.builder_probe import probe_pod_name  # noqa: E402

UNLISTED_HOST = "unlisted.meshguard-lab.net"   # lablib.UNLISTED_HOST (issue 8)
BLACKHOLE_HOST = "blackhole.meshguard-lab.net"  # lablib.BLACKHOLE_HOST (issue 8)
NS = "verify-lab"
OTHER_NS = "verify-lab-other"
APP_SA = "app"
DERIVED = ["allowed *", "denied *", "unlisted *", "bypass *", "l7-* *"]
PROBE_SELECTOR = "app.kubernetes.io/managed-by=meshguard.egress,egress.meshguard.io/component=verify-probe"


def _policy(namespace=NS, host="www.baidu.com"):
    allow = [{"namespace": namespace, "service_account": APP_SA}]
    return {"rules": [{"name": "baidu", "hosts": [host], "allow": allow}]}


def _pod(name, namespace, sa, image="docker.io/curlimages/curl:8.11.1", inject=True, labels=None):
    meta_labels = {"app": name}
    meta_labels.update(labels or {})
    meta_labels["sidecar.istio.io/inject"] = "true" if inject else "false"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": image,
                                                               "command": ["sleep", "3600"]}]}}


def _apply(lab, *objs):
    lab.kubectl_run("apply", "--server-side", "--field-manager=meshguard-verify-test", "-f", "-",
                    input="---\n".join(yaml.safe_dump(o) for o in objs))


def _fresh_namespace(lab, name, inject=False):
    lab.kubectl_run("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=120s",
                    check=False, timeout=150)
    lab.kubectl_run("create", "namespace", name)
    if inject:
        lab.kubectl_run("label", "namespace", name, "istio-injection=enabled")


def _wait_ready(lab, namespace, *pods):
    lab.kubectl_run("-n", namespace, "wait", "--for=condition=Ready", *["pod/" + p for p in pods],
                    "--timeout=120s", timeout=150)


def _api_client(kubeconfig):
    from kubernetes import config  # pylint: disable=import-outside-toplevel
    return config.new_client_from_config(config_file=kubeconfig)


def _run(lab_or_kubeconfig, raw_policy, **opts):
    kubeconfig = getattr(lab_or_kubeconfig, "kubeconfig", lab_or_kubeconfig)
    policy = normalize_policy(raw_policy)
    options = normalize_options(policy, opts)
    api = _api_client(kubeconfig)
    return runner.verify_run(policy, options, client=Client.from_api_client(api),
                             make_api=runner.thread_api_factory(api), concurrency=10)


def _probe_pods_left(lab):
    out = lab.kubectl_run("get", "pods", "-A", "-l", PROBE_SELECTOR, "-o", "json").stdout
    return [p["metadata"]["namespace"] + "/" + p["metadata"]["name"] for p in json.loads(out)["items"]
            if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def workloads(lab):
    """Namespace verify-lab (injection on) with an injected pod `app` (service account app), a pod
    without sidecar `plain`, a pod whose image has no curl `nocurl`; a read-only account."""
    _fresh_namespace(lab, NS, inject=True)
    lab.kubectl_run("-n", NS, "create", "serviceaccount", APP_SA)
    _apply(lab, _pod("app", NS, APP_SA, labels={"role": "client"}),
           _pod("plain", NS, APP_SA, inject=False, labels={"role": "plain"}),
           _pod("nocurl", NS, APP_SA, image="meshguard-lab/nocurl", labels={"role": "nocurl"}))
    _wait_ready(lab, NS, "app", "plain", "nocurl")
    yield lab
    lab.kubectl_run("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)


def _containers(lab, namespace, pod):
    obj = json.loads(lab.kubectl_run("-n", namespace, "get", "pod", pod, "-o", "json").stdout)
    spec = obj["spec"]
    return [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])]


# ---------------------------------------------------------------------------------------------
# Machinery: any lab

def test_istiod_injected_the_client_and_not_the_plain_pod(workloads):
    assert "istio-proxy" in _containers(workloads, NS, "app")
    assert "istio-proxy" not in _containers(workloads, NS, "plain")


def test_exec_probes_return_exit_code_output_and_duration_from_real_pods(workloads):
    """Every derived case ran through the exec API in the injected pod: an exit code from the error
    channel, curl's marker or error, a duration; none broken (whatever the data plane says)."""
    result = _run(workloads, _policy(), sources=[{"namespace": NS, "labels": {"role": "client"}}],
                  denied_identity=NS + "/" + APP_SA + "-denied", probe_pods=False, timeout=5,
                  exclude=["denied *"], unlisted_host=UNLISTED_HOST)
    rows = result["results"]
    assert [r["kind"] for r in rows] == ["allowed", "unlisted", "bypass"]
    for row in rows:
        assert row["pod"] == "app" and row["container"] == "app", row
        assert isinstance(row["exit_code"], int), row
        assert row["observed"] != "broken", row
        assert row["command"].startswith("curl -sS --max-time 5 "), row
        assert 0 < row["duration"] < 5 + runner.EXEC_GRACE, row


def test_broken_probes_are_reported_as_broken_never_denied(workloads):
    cases = [
        {"name": "no sidecar", "identity": NS + "/" + APP_SA, "host": "www.baidu.com", "expect": "denied"},
    ]
    # the no-sidecar pod as the identity's only source
    result = _run(workloads, _policy(), sources=[{"namespace": NS, "labels": {"role": "plain"}}],
                  probe_pods=False, cases=cases, exclude=["allowed *", "unlisted *", "bypass *", "denied *"])
    (row,) = result["results"]
    assert (row["observed"], row["verdict"]) == ("broken", "broken")
    assert "no istio-proxy sidecar" in row["cause"] and row["exit_code"] is None
    # a pod that does not exist
    result = _run(workloads, _policy(), sources=[{"namespace": NS, "pod": "does-not-exist"}], probe_pods=False,
                  cases=cases, exclude=["allowed *", "unlisted *", "bypass *", "denied *"])
    assert result["results"][0]["cause"] == "no pod named does-not-exist in namespace %s" % NS
    assert result["mismatches"][0].startswith("PROBE BROKEN: ")


def test_a_container_without_curl_is_probe_broken(workloads, request):
    """The lab's exec convention (issue 8, tests/lab/scripts/pod-exec): an image named *nocurl*
    has no curl, exit 127 with the container runtime's message."""
    if not (REPO_DIR / "tests" / "lab" / "scripts" / "pod-exec").exists():
        pytest.skip("issue 8: the lab's pod-exec (no curl in *nocurl* images) is not there yet")
    result = _run(workloads, _policy(), sources=[{"namespace": NS, "labels": {"role": "nocurl"}}],
                  probe_pods=False, exclude=["unlisted *", "bypass *", "denied *"])
    (row,) = result["results"]
    assert (row["observed"], row["exit_code"]) == ("broken", 127), row
    assert row["cause"].startswith("no curl in the container (exit 127)"), row


def test_exec_forbidden_by_rbac_is_probe_broken(workloads, tmp_path):
    """An account that may read pods but not exec into them: broken, with the reason."""
    lab = workloads
    lab.kubectl_run("-n", NS, "create", "serviceaccount", "reader", check=False)
    lab.kubectl_run("-n", NS, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods", check=False)
    lab.kubectl_run("-n", NS, "create", "rolebinding", "pod-reader", "--role=pod-reader",
                    "--serviceaccount=%s:reader" % NS, check=False)
    token = lab.kubectl_run("-n", NS, "create", "token", "reader").stdout.strip()
    config = yaml.safe_load(Path(lab.kubeconfig).read_text())
    cluster = config["clusters"][0]
    kubeconfig = tmp_path / "reader.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": cluster["name"], "user": "reader"}}],
        "current-context": "reader"}))
    result = _run(str(kubeconfig), _policy(), sources=[{"namespace": NS, "labels": {"role": "client"}}],
                  probe_pods=False, exclude=["unlisted *", "bypass *", "denied *"])
    (row,) = result["results"]
    assert row["observed"] == "broken" and row["cause"].startswith("exec forbidden by RBAC"), row


def _playbook(lab, report_dir, policy, *extra, check=False):
    """ansible-playbook meshguard.egress.verify against the lab; returns (proc, report or None)."""
    env = dict(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", K8S_AUTH_KUBECONFIG=lab.kubeconfig,
               ANSIBLE_NOCOLOR="1")
    policy_file = Path(report_dir) / "policy.json"
    policy_file.write_text(json.dumps(policy))
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "meshguard.egress.verify",
            "-e", "@" + str(policy_file), "-e", "meshguard_egress_verify_report_dir=" + str(report_dir)]
    for item in extra:
        args += ["-e", item]
    if check:
        args.append("--check")
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    name = policy.get("meshguard_egress_policy_name", "default")
    path = Path(report_dir) / ("verify-%s.json" % name)
    return proc, (json.loads(path.read_text()) if path.exists() else None)


def test_verify_role_check_mode_lists_the_matrix_and_creates_nothing(workloads, tmp_path):
    policy = {"meshguard_egress_rules": _policy()["rules"]}
    proc, report = _playbook(workloads, tmp_path, policy, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "allowed verify-lab/app -> www.baidu.com" in proc.stdout
    assert report is None and not _probe_pods_left(workloads)


def test_verify_role_probe_pods_are_injected_used_and_removed(workloads, tmp_path):
    """Probe pods for both identities (no sources): created, injected by istiod, Ready, probed
    (not broken), and gone afterwards - whether the play passed or failed."""
    policy = {"meshguard_egress_rules": _policy()["rules"]}
    proc, report = _playbook(workloads, tmp_path, policy, "meshguard_egress_verify_timeout=5",
                             "meshguard_egress_verify_unlisted_host=" + UNLISTED_HOST)
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert [c["pod"].startswith("meshguard-probe-") for c in report["cases"]] == [True] * len(report["cases"])
    assert not [c for c in report["cases"] if c["observed"] == "broken"], report["cases"]
    assert {c["service_account"] for c in report["cases"]} == {APP_SA, "default"}
    assert not _probe_pods_left(workloads)
    junit = ET.fromstring((tmp_path / "verify-default.xml").read_text().split("\n", 1)[1])
    assert int(junit.find("testsuite").get("tests")) == len(report["cases"])
    # the play's verdict is the report's
    assert (proc.returncode == 0) == report["summary"]["passed"], proc.stdout[-3000:]
    if not report["summary"]["passed"]:
        assert "verify FAILED for policy default" in proc.stdout
        for line in report["mismatches"]:
            assert line in proc.stdout


def test_verify_role_replaces_leftovers_and_removes_probe_pods_of_a_failing_run(workloads, tmp_path):
    """A probe pod left by an interrupted run (same name, other image) is replaced; probes that
    cannot run (an image without curl) fail the play as PROBE BROKEN; the pods are removed."""
    policy = {"meshguard_egress_rules": _policy()["rules"]}
    leftover = probe_pod_name(normalize_policy(_policy()), NS, APP_SA)
    _apply(workloads, dict(_pod(leftover, NS, APP_SA, image="meshguard-lab/leftover"),
                           metadata={"name": leftover, "namespace": NS,
                                     "labels": {"app.kubernetes.io/managed-by": "meshguard.egress",
                                                "egress.meshguard.io/policy": "default",
                                                "egress.meshguard.io/component": "verify-probe"}}))
    proc, report = _playbook(workloads, tmp_path, policy, "meshguard_egress_verify_timeout=3",
                             "meshguard_egress_verify_probe_image=meshguard-lab/nocurl")
    assert proc.returncode != 0 and report is not None, proc.stdout[-3000:]
    assert "Remove probe pods left over by an interrupted run" in proc.stdout
    assert "verify FAILED for policy default" in proc.stdout
    if (REPO_DIR / "tests" / "lab" / "scripts" / "pod-exec").exists():
        assert {c["observed"] for c in report["cases"]} == {"broken"}, report["cases"]
        assert "PROBE BROKEN: " in proc.stdout and "MISMATCH: " not in proc.stdout
    assert not _probe_pods_left(workloads)


def test_verify_role_names_a_missing_service_account(workloads, tmp_path):
    """An identity whose service account does not exist: its probe pod cannot be created; its
    cases are PROBE BROKEN naming the account, the other identities are still probed."""
    rules = [{"name": "baidu", "hosts": ["www.baidu.com"], "allow": [NS + "/" + APP_SA, NS + "/ghost"]}]
    proc, report = _playbook(workloads, tmp_path, {"meshguard_egress_rules": rules},
                             "meshguard_egress_verify_timeout=3",
                             json.dumps({"meshguard_egress_verify_exclude": ["unlisted *", "bypass *"]}))
    assert proc.returncode != 0 and report is not None, proc.stdout[-3000:]
    by = _by_name(report)
    ghost = by["allowed %s/ghost -> www.baidu.com" % NS]
    assert ghost["observed"] == "broken" and ghost["cause"].startswith(
        "service account %s/ghost does not exist" % NS), ghost
    assert "probe pod %s/meshguard-probe-ghost-" % NS in proc.stdout  # the API server's refusal is shown
    assert by["allowed %s/%s -> www.baidu.com" % (NS, APP_SA)]["observed"] != "broken"
    assert not _probe_pods_left(workloads)


# ---------------------------------------------------------------------------------------------
# Proven by traffic: needs the lab's data plane (issue 8)

@pytest.fixture(scope="module")
def seed(request, tmp_path_factory):
    """The seed example applied to the lab as rendered (kubectl apply --server-side until the
    apply roles land), REGISTRY_ONLY set, client namespace bookinfo with the allowed account."""
    try:
        lab = request.getfixturevalue("dataplane")
    except pytest.FixtureLookupError:
        pytest.skip("issue 8: the lab's data plane (fixture `dataplane`) is not there yet")
    try:
        rendered = request.getfixturevalue("rendered_examples")
    except pytest.FixtureLookupError:
        rendered = tmp_path_factory.mktemp("rendered")
        subprocess.run([str(REPO_DIR / "tests" / "tools" / "render-examples.sh"), str(rendered)], check=True,
                       capture_output=True, timeout=900)
    raw = yaml.safe_load((REPO_DIR / "examples" / "baidu.yml").read_text())
    (rule,) = raw["meshguard_egress_rules"]
    (allowed,) = rule["allow"]
    original = json.loads(lab.kubectl_run("-n", "istio-system", "get", "configmap", "istio", "-o", "json").stdout)
    mesh = yaml.safe_load(original["data"].get("mesh") or "") or {}
    mesh["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}
    _fresh_namespace(lab, allowed["namespace"], inject=True)
    lab.kubectl_run("-n", allowed["namespace"], "create", "serviceaccount", allowed["service_account"])
    try:
        lab.kubectl_run("apply", "--server-side", "--field-manager=meshguard-verify-test", "-k",
                        str(rendered / "baidu"))
        lab.kubectl_run("-n", "istio-system", "patch", "configmap", "istio", "--type=merge",
                        "-p", json.dumps({"data": {"mesh": yaml.safe_dump(mesh)}}))
        gateway = _seed_gateway(raw)
        lab.kubectl_run("-n", gateway["namespace"], "rollout", "status", "deployment/" + gateway["name"],
                        "--timeout=120s", timeout=150)
        yield lab, raw, allowed
    finally:
        lab.kubectl_run("delete", "-k", str(rendered / "baidu"), "--ignore-not-found", "--wait=false", check=False)
        lab.kubectl_run("-n", "istio-system", "patch", "configmap", "istio", "--type=merge",
                        "-p", json.dumps({"data": {"mesh": original["data"].get("mesh", "")}}), check=False)
        lab.kubectl_run("delete", "namespace", allowed["namespace"], "--ignore-not-found", "--wait=false",
                        check=False)


def _seed_gateway(raw):
    """The seed's gateway as the policy model normalises it (name, namespace, labels)."""
    gw = normalize_policy({"rules": raw["meshguard_egress_rules"],
                           "gateway": raw.get("meshguard_egress_gateway")}).gateway
    return {"name": gw["name"], "namespace": gw["namespace"], "labels": gw["labels"]}


def _seed_verify(seed, tmp_path, *extra):
    lab, raw, dummy = seed
    return _playbook(lab, tmp_path, raw, "meshguard_egress_verify_unlisted_host=" + UNLISTED_HOST,
                     "meshguard_egress_verify_timeout=5", *extra)


def _by_name(report):
    return dict((c["name"], c) for c in report["cases"])


def test_seed_scenario_passes(seed, tmp_path):
    lab, raw, allowed = seed
    ident = "%s/%s" % (allowed["namespace"], allowed["service_account"])
    # the first request after the config push may race Envoy's warm-up: retry the whole run a few times
    for attempt in range(3):
        proc, report = _seed_verify(seed, tmp_path)
        if report and report["summary"]["passed"]:
            break
        time.sleep(5 * (attempt + 1))
    assert proc.returncode == 0, proc.stdout[-4000:]
    cases = _by_name(report)
    assert cases["allowed %s -> www.baidu.com" % ident]["observed"] == "allowed"
    assert cases["allowed %s -> www.baidu.com" % ident]["http_status"] == 200
    denied = cases["denied %s/default -> www.baidu.com" % allowed["namespace"]]
    assert (denied["observed"], denied["http_status"]) == ("denied", 403)
    assert "RBAC: access denied" in denied["response"]
    assert cases["unlisted %s -> %s" % (ident, UNLISTED_HOST)]["observed"] == "blocked"
    assert cases["bypass %s -> www.baidu.com:443" % ident]["observed"] == "blocked"
    assert not _probe_pods_left(lab)


def test_a_leak_fails_verify_naming_the_pair(seed, tmp_path):
    lab, raw, allowed = seed
    leak = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "hand-made-leak", "namespace": _seed_gateway(raw)["namespace"]},
            "spec": {"selector": {"matchLabels": _seed_gateway(raw)["labels"]}, "action": "ALLOW",
                     "rules": [{"from": [{"source": {"principals": [
                         "cluster.local/ns/%s/sa/default" % allowed["namespace"]]}}]}]}}
    _apply(lab, leak)
    try:
        time.sleep(5)  # istiod pushes the new policy to the gateway
        proc, report = _seed_verify(seed, tmp_path)
    finally:
        lab.kubectl_run("-n", _seed_gateway(raw)["namespace"], "delete", "authorizationpolicy", "hand-made-leak",
                        check=False)
    assert proc.returncode != 0
    name = "denied %s/default -> www.baidu.com" % allowed["namespace"]
    assert _by_name(report)[name]["observed"] == "allowed"
    assert "MISMATCH: %s/default -> www.baidu.com expected denied, observed allowed" % allowed["namespace"] \
        in proc.stdout
    assert not _probe_pods_left(lab)


def test_an_over_tight_cluster_fails_verify_naming_the_allowed_identity(seed, tmp_path):
    lab, raw, allowed = seed
    aps = json.loads(lab.kubectl_run("-n", _seed_gateway(raw)["namespace"], "get", "authorizationpolicy", "-l",
                                     "egress.meshguard.io/rule=baidu", "-o", "json").stdout)["items"]
    assert len(aps) == 1
    saved = aps[0]
    lab.kubectl_run("-n", saved["metadata"]["namespace"], "delete", "authorizationpolicy", saved["metadata"]["name"])
    try:
        time.sleep(5)
        proc, report = _seed_verify(seed, tmp_path)
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
            saved["metadata"].pop(key, None)
        _apply(lab, saved)
    assert proc.returncode != 0
    ident = "%s/%s" % (allowed["namespace"], allowed["service_account"])
    row = _by_name(report)["allowed %s -> www.baidu.com" % ident]
    assert (row["observed"], row["http_status"]) == ("denied", 403)
    assert "MISMATCH: %s -> www.baidu.com expected allowed, observed denied" % ident in proc.stdout


def test_a_server_that_never_answers_is_blocked_by_timeout_within_the_limit(seed, tmp_path):
    """A second policy on the seed's gateway routes the lab's black-hole host (its server accepts
    connections and never answers) for the allowed identity; a user case expects it blocked."""
    lab, raw, allowed = seed
    ident = "%s/%s" % (allowed["namespace"], allowed["service_account"])
    gateway = _seed_gateway(raw)
    policy = {"meshguard_egress_policy_name": "verify-blackhole",
              "meshguard_egress_gateway": dict(gateway, manage=False),
              "meshguard_egress_mesh": {"manage": False},
              "meshguard_egress_rules": [{"name": "blackhole", "hosts": [BLACKHOLE_HOST], "tls": "none",
                                          "allow": [ident]}]}
    objs = build_resources(normalize_policy({k[len("meshguard_egress_"):]: v for k, v in policy.items()}))
    objs = [o for o in objs if o["kind"] not in ("Namespace", "ConfigMap")]
    _apply(lab, *objs)
    try:
        time.sleep(5)
        case = {"name": "blackhole", "identity": ident, "host": BLACKHOLE_HOST, "expect": "blocked"}
        proc, report = _playbook(lab, tmp_path, policy, "meshguard_egress_verify_timeout=3",
                                 json.dumps({"meshguard_egress_verify_cases": [case],
                                             "meshguard_egress_verify_exclude": DERIVED}))
    finally:
        for obj in objs:
            lab.kubectl_run("-n", obj["metadata"].get("namespace", "default"), "delete", obj["kind"].lower(),
                            obj["metadata"]["name"], "--ignore-not-found", check=False)
    assert report is not None, proc.stdout[-3000:]
    (row,) = report["cases"]
    assert (row["observed"], row["verdict"], row["exit_code"]) == ("blocked", "pass", 28), row
    assert row["duration"] < 3 + 3, row
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not _probe_pods_left(lab)


# ---------------------------------------------------------------------------------------------
# Every example verifies green after `site` (the apply roles of issue 7 and the data plane)

def _example_world():
    try:
        from test_apply import namespaces, play, torn_down  # pylint: disable=import-outside-toplevel
        from test_examples import (  # pylint: disable=import-outside-toplevel
            EXAMPLES, existing_gateway, load_objects, object_files, referenced_namespaces, revisions)
    except ImportError as exc:
        pytest.skip("issue 7: the apply lab helpers are not there yet (%s)" % exc)
    return namespaces, play, torn_down, existing_gateway, load_objects, object_files, referenced_namespaces, revisions


EXAMPLE_NAMES = sorted(p.stem for p in (REPO_DIR / "examples").glob("*.yml"))


def _client_certificate(lab, tmp_path, namespace, name):
    """A client certificate from the lab internet's CA as the Secret a `credential_name` names
    (tls.crt, tls.key, and ca.crt, which the gateway then uses to verify the server)."""
    pki = Path(lab.state) / "dataplane" / "pki"
    key, csr, crt = tmp_path / "client.key", tmp_path / "client.csr", tmp_path / "client.crt"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(csr), "-subj", "/O=meshguard lab/CN=" + name],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey",
                    str(pki / "ca.key"), "-CAcreateserial", "-days", "1", "-out", str(crt)], check=True,
                   capture_output=True)
    lab.kubectl_run("-n", namespace, "delete", "secret", name, "--ignore-not-found")
    lab.kubectl_run("-n", namespace, "create", "secret", "generic", name, "--from-file=tls.crt=%s" % crt,
                    "--from-file=tls.key=%s" % key, "--from-file=ca.crt=%s" % (pki / "ca.crt"))


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_example_verifies_green_after_site(request, tmp_path, example):
    try:
        lab = request.getfixturevalue("dataplane")
    except pytest.FixtureLookupError:
        pytest.skip("issue 8: the lab's data plane (fixture `dataplane`) is not there yet")
    (namespaces, play, torn_down, existing_gateway, load_objects, object_files, referenced_namespaces,
     revisions) = _example_world()
    rendered = request.getfixturevalue("rendered_examples")
    policy = yaml.safe_load((REPO_DIR / "examples" / ("%s.yml" % example)).read_text())
    objs = load_objects(object_files(rendered / example))
    mesh = policy.get("meshguard_egress_mesh") or {}
    for rev in sorted(revisions(objs) | {mesh.get("revision")} - {None}):
        lab.ensure_revision(rev)
    model = normalize_policy({k[len("meshguard_egress_"):]: v for k, v in policy.items()})
    clients = sorted(set(referenced_namespaces(objs)) | set(model.client_namespaces()) | set(mesh.get("namespaces") or []))
    with namespaces(lab, *clients), existing_gateway(lab, example), torn_down(lab, tmp_path, policy):
        for rule in model.rules:
            for ident in rule.allow:
                if ident.service_account:
                    lab.kubectl_run("-n", ident.namespace, "create", "serviceaccount", ident.service_account,
                                    check=False)
        applied = play(lab, tmp_path, "site", policy)
        assert applied.rc == 0, applied
        secrets = [rule.credential_name for rule in model.rules if rule.credential_name]
        try:
            for name in secrets:
                _client_certificate(lab, tmp_path, model.gateway["namespace"], name)
            report_dir = tmp_path / "reports"
            report_dir.mkdir()
            for attempt in range(3):  # istiod's push after site may still be on its way
                proc, report = _playbook(lab, report_dir, policy,
                                         "meshguard_egress_verify_unlisted_host=" + UNLISTED_HOST,
                                         "meshguard_egress_verify_timeout=5")
                if report is not None and report["summary"]["passed"]:
                    break
                time.sleep(5 * (attempt + 1))
        finally:
            # ours, not the policy's: teardown leaves a namespace that still holds it
            for name in secrets:
                lab.kubectl_run("-n", model.gateway["namespace"], "delete", "secret", name, "--ignore-not-found",
                                check=False)
        assert report is not None, proc.stdout[-4000:]
        assert proc.returncode == 0 and report["summary"]["passed"], "\n".join(report["mismatches"])
        assert not _probe_pods_left(lab)
