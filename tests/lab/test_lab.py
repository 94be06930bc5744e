"""The lab cluster itself: a real API server with live validation, kwok nodes and pods, the
Istio CRDs and mesh ConfigMaps, and `kubectl exec` that sees the pod's identity.

Expectations come from the pins (tests/versions.env), from the CRD file of the pinned Istio
module and from the objects the tests create, never from the lab scripts' own constants.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml

from lablib import LAB_DNS, versions

pytestmark = pytest.mark.lab


def _dr(name: str, ns: str, tls: dict) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"host": "www.example.com", "trafficPolicy": {"tls": tls}},
        }
    )


@pytest.fixture(scope="module")
def namespace(lab):
    ns = "lab-test-" + uuid.uuid4().hex[:6]
    lab.kubectl_run("create", "namespace", ns)
    yield ns
    lab.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


def test_server_is_the_pinned_kubernetes(lab):
    info = json.loads(lab.kubectl_run("version", "-o", "json").stdout)
    assert info["serverVersion"]["gitVersion"] == versions()["KUBERNETES_VERSION"]
    # the client is built from the same pin
    assert info["clientVersion"]["gitVersion"] == versions()["KUBERNETES_VERSION"]


def test_kwok_nodes_are_ready(lab):
    nodes = json.loads(lab.kubectl_run("get", "nodes", "-o", "json").stdout)["items"]
    assert nodes, "no nodes in the lab"
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert node["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake"


def test_istio_crds_of_the_pinned_module_are_established(lab):
    crd_file = Path(lab.bindir, "crd-all.gen.yaml").resolve()
    assert versions()["ISTIO_MODULE_VERSION"] in str(crd_file), crd_file
    wanted = {d["metadata"]["name"] for d in yaml.safe_load_all(crd_file.read_text()) if d}
    assert "destinationrules.networking.istio.io" in wanted
    live = json.loads(lab.kubectl_run("get", "crd", "-o", "json").stdout)["items"]
    established = {
        c["metadata"]["name"]
        for c in live
        if any(x["type"] == "Established" and x["status"] == "True" for x in c["status"]["conditions"])
    }
    assert wanted <= established, sorted(wanted - established)


def test_mesh_configmaps_look_installed(lab):
    cms = json.loads(lab.kubectl_run("-n", "istio-system", "get", "configmap", "-o", "json").stdout)["items"]
    mesh = {cm["metadata"]["name"]: cm for cm in cms if "mesh" in cm.get("data", {})}
    assert "istio" in mesh, sorted(mesh)
    revisioned = [n for n in mesh if n.startswith("istio-")]
    assert revisioned, "no istio-<rev> mesh ConfigMap"
    for name, cm in mesh.items():
        cfg = yaml.safe_load(cm["data"]["mesh"])
        assert isinstance(cfg, dict) and "defaultConfig" in cfg, name
        assert cfg.get("rootNamespace", "istio-system") == "istio-system"
    for name in revisioned:
        assert mesh[name]["metadata"]["labels"]["istio.io/rev"] == name[len("istio-"):]


def test_server_rejects_a_misspelled_enum(lab, namespace):
    bad = lab.kubectl_run(
        "apply", "--dry-run=server", "-f", "-", input=_dr("typo", namespace, {"mode": "ISTIO_MUTAL"}), check=False
    )
    assert bad.returncode != 0
    assert "ISTIO_MUTAL" in bad.stderr and "Unsupported value" in bad.stderr, bad.stderr
    # the same object with the right spelling is accepted: the rejection is about the enum
    lab.kubectl_run("apply", "--dry-run=server", "-f", "-", input=_dr("typo", namespace, {"mode": "ISTIO_MUTUAL"}))


def test_server_rejects_an_unknown_field_under_strict_validation(lab, namespace):
    doc = _dr("unknown", namespace, {"mode": "SIMPLE", "snii": "www.example.com"})
    strict = lab.kubectl_run("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=doc, check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.trafficPolicy.tls.snii"' in strict.stderr, strict.stderr
    # Without strict validation the API server prunes the field silently: the reason every
    # client of ours must ask for fieldValidation=Strict.
    lax = lab.kubectl_run("apply", "--dry-run=server", "--validate=false", "-o", "json", "-f", "-", input=doc)
    assert "snii" not in json.loads(lax.stdout)["spec"]["trafficPolicy"]["tls"]


def test_python_client_gets_strict_validation_only_when_asked(lab, namespace):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=lab.kubeconfig))
    body = yaml.safe_load(_dr("pyclient", namespace, {"mode": "SIMPLE", "snii": "x"}))
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "destinationrules", body, dry_run="All", field_validation="Strict"
        )
    assert err.value.status == 400 and "snii" in err.value.body
    kept = api.create_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "destinationrules", body, dry_run="All"
    )
    assert "snii" not in kept["spec"]["trafficPolicy"]["tls"]
    del kubernetes


def _pod(name: str, ns: str, sa: str, containers=("app",)) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {
                "serviceAccountName": sa,
                "containers": [{"name": c, "image": "registry.invalid/lab/" + c} for c in containers],
            },
        }
    )


@pytest.fixture(scope="module")
def pods(lab, namespace):
    """Two running pods with different service accounts, one with two containers."""
    for sa in ("alpha", "beta"):
        lab.kubectl_run("-n", namespace, "create", "serviceaccount", sa)
    lab.kubectl_run("apply", "-f", "-", input=_pod("pod-a", namespace, "alpha"))
    lab.kubectl_run("apply", "-f", "-", input=_pod("pod-b", namespace, "beta", containers=("main", "sidecar")))
    lab.kubectl_run("-n", namespace, "wait", "--for=condition=Ready", "pod/pod-a", "pod/pod-b", "--timeout=90s")
    return namespace


def _exec_env(lab, ns, pod, *extra):
    # The exec target is created by lab-podexec once the pod is bound: retry briefly.
    import time

    deadline = time.time() + 60
    while True:
        proc = lab.kubectl_run("-n", ns, "exec", pod, *extra, "--", "env", check=False)
        if proc.returncode == 0 or time.time() > deadline:
            break
        time.sleep(1)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def test_pods_are_scheduled_and_running(lab, pods):
    got = json.loads(lab.kubectl_run("-n", pods, "get", "pods", "-o", "json").stdout)["items"]
    assert {p["metadata"]["name"] for p in got} == {"pod-a", "pod-b"}
    for p in got:
        assert p["spec"]["nodeName"], "not scheduled"
        assert p["status"]["phase"] == "Running"
        assert p["status"].get("podIP")


def test_exec_runs_with_the_pods_identity(lab, pods):
    a = _exec_env(lab, pods, "pod-a")
    b = _exec_env(lab, pods, "pod-b", "-c", "sidecar")
    uid_a = lab.kubectl_run("-n", pods, "get", "pod", "pod-a", "-o", "jsonpath={.metadata.uid}").stdout
    assert (a["MESHGUARD_POD_NAMESPACE"], a["MESHGUARD_POD_NAME"], a["MESHGUARD_POD_SERVICE_ACCOUNT"]) == (
        pods,
        "pod-a",
        "alpha",
    )
    assert a["MESHGUARD_POD_UID"] == uid_a
    assert (b["MESHGUARD_POD_NAME"], b["MESHGUARD_POD_SERVICE_ACCOUNT"], b["MESHGUARD_CONTAINER_NAME"]) == (
        "pod-b",
        "beta",
        "sidecar",
    )
    # each pod runs in its own working directory, with its identity in pod.json
    pwd = lab.kubectl_run("-n", pods, "exec", "pod-b", "--", "pwd").stdout.strip()
    assert pwd == b["MESHGUARD_POD_DIR"] != a["MESHGUARD_POD_DIR"]
    ident = json.loads(lab.kubectl_run("-n", pods, "exec", "pod-b", "--", "cat", "pod.json").stdout)
    assert (ident["namespace"], ident["name"], ident["serviceAccount"]) == (pods, "pod-b", "beta")
    live = json.loads(lab.kubectl_run("-n", pods, "get", "pod", "pod-b", "-o", "json").stdout)
    assert ident["labels"] == live["metadata"]["labels"] and ident["labels"]["app"] == "pod-b"
    assert ident["containers"] == ["main", "sidecar"]


def test_exec_passes_exit_codes_and_stdin(lab, pods):
    # as against a real kubelet, kubectl exits with the command's code (kwok patch 0001)
    for code in (3, 56):
        proc = lab.kubectl_run("-n", pods, "exec", "pod-a", "--", "sh", "-c", f"echo out; echo err >&2; exit {code}", check=False)
        assert (proc.returncode, proc.stdout) == (code, "out\n"), proc.stderr
        assert "err\n" in proc.stderr
    # stdin reaches the command and its end ends the command's stdin (kwok patch 0002)
    proc = lab.kubectl_run("-n", pods, "exec", "-i", "pod-a", "--", "cat", input="hello lab\n", timeout=30)
    assert proc.stdout == "hello lab\n"


def test_exec_runs_in_the_pods_own_network(lab, pods):
    """`kubectl exec` runs the command in the pod's network namespace (README "Exec"): with the
    data plane, the pod's IP on eth0 and the lab DNS; without it, an empty namespace. Either
    way the machine's own network is out of reach: an unknown host does not resolve."""
    proc = lab.kubectl_run("-n", pods, "exec", "pod-a", "--", "curl", "-sS", "-m", "5", "http://www.example.com/",
                           check=False, timeout=30)
    assert proc.returncode in (6, 7), proc.stderr
    addrs = lab.kubectl_run("-n", pods, "exec", "pod-a", "--", "ip", "-o", "-4", "addr", "show").stdout
    if not lab.dataplane:
        assert "eth0" not in addrs, addrs
        return
    pod_ip = lab.kubectl_run("-n", pods, "get", "pod", "pod-a", "-o", "jsonpath={.status.podIP}").stdout
    assert re.search(rf"eth0\s+inet {re.escape(pod_ip)}/32", addrs), addrs
    resolv = lab.kubectl_run("-n", pods, "exec", "pod-a", "--", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {LAB_DNS}" in resolv and f"search {pods}.svc.cluster.local" in resolv, resolv
    other = lab.kubectl_run("-n", pods, "exec", "pod-b", "--", "ip", "-o", "-4", "addr", "show").stdout
    assert pod_ip not in other


def test_exec_finds_commands_in_the_hook_directory_first(lab, pods):
    env = _exec_env(lab, pods, "pod-a")
    assert env["PATH"].split(":")[0] == lab.hooks
    # `lab-whoami` exists only in the hook directory: kwok resolved it there.
    out = lab.kubectl_run("-n", pods, "exec", "pod-a", "--", "lab-whoami").stdout.split()
    assert out == [f"{pods}/pod-a", "serviceaccount=alpha"]


def test_exec_target_goes_away_with_the_pod(lab, namespace):
    lab.kubectl_run("apply", "-f", "-", input=_pod("short-lived", namespace, "default"))
    lab.kubectl_run("-n", namespace, "wait", "--for=condition=Ready", "pod/short-lived", "--timeout=90s")
    _exec_env(lab, namespace, "short-lived")
    lab.kubectl_run("-n", namespace, "delete", "pod", "short-lived", "--wait=true", "--timeout=60s")
    lab.kubectl_run("-n", namespace, "wait", "--for=delete", "exec.kwok.x-k8s.io/short-lived", "--timeout=60s")


# --- the real istiod: validating and injecting webhook on loopback -------------------------


def _wildcard_dns_service_entry(ns: str, labels: dict | None = None) -> str:
    meta = {"name": "wildcard-dns", "namespace": ns}
    if labels:
        meta["labels"] = labels
    return yaml.safe_dump(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta,
            "spec": {
                "hosts": ["*.example.com"],
                "resolution": "DNS",
                "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
            },
        }
    )


def test_istiod_rejects_what_the_crd_schema_accepts(lab, namespace):
    # Wildcard hosts cannot be resolved by DNS: Istio's validation refuses, the schema does not.
    bad = lab.kubectl_run(
        "apply", "--dry-run=server", "-f", "-", input=_wildcard_dns_service_entry(namespace), check=False
    )
    assert bad.returncode != 0
    assert 'admission webhook "validation.istio.io" denied the request' in bad.stderr, bad.stderr
    # objects of the default revision go through the per-revision webhook
    rev = lab.kubectl_run(
        "apply", "--dry-run=server", "-f", "-",
        input=_wildcard_dns_service_entry(namespace, {"istio.io/rev": "default"}), check=False,
    )
    assert 'admission webhook "rev.validation.istio.io" denied the request' in rev.stderr, rev.stderr
    # for a revision no istiod serves, only the CRD schema judges: the same object passes
    lab.kubectl_run(
        "apply", "--dry-run=server", "-f", "-",
        input=_wildcard_dns_service_entry(namespace, {"istio.io/rev": "no-such-revision"}),
    )


def test_istiod_injects_pods_in_injection_enabled_namespaces(lab):
    ns = "lab-inject-" + uuid.uuid4().hex[:6]
    lab.kubectl_run("create", "namespace", ns)
    try:
        lab.kubectl_run("label", "namespace", ns, "istio-injection=enabled")
        lab.kubectl_run("-n", ns, "create", "serviceaccount", "web")
        lab.kubectl_run("apply", "-f", "-", input=_pod("web", ns, "web"))
        lab.kubectl_run("-n", ns, "wait", "--for=condition=Ready", "pod/web", "--timeout=90s")
        pod = json.loads(lab.kubectl_run("-n", ns, "get", "pod", "web", "-o", "json").stdout)
        names = [c["name"] for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])]
        assert "istio-proxy" in names, names
        status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert status["revision"] == "default"
        # exec reaches the injected sidecar container too, with the pod's identity
        env = _exec_env(lab, ns, "web", "-c", "istio-proxy")
        assert (env["MESHGUARD_POD_SERVICE_ACCOUNT"], env["MESHGUARD_CONTAINER_NAME"]) == ("web", "istio-proxy")
    finally:
        lab.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


def test_istioctl_analyze_finds_nothing_wrong_with_the_bare_lab(lab):
    proc = lab.istioctl_run(
        "analyze", "--all-namespaces", "--failure-threshold=Warning", "--output-threshold=Warning", check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
