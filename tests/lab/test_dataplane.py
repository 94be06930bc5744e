"""The lab's data plane, proven by traffic (README "The data plane").

The rendered seed example (examples/baidu.yml) and the passthrough example
(examples/passthrough.yml, which reuses the seed's gateway) are applied to the lab with
`kubectl apply --server-side`; the lab's istiod injects real Envoy sidecars into the client
pods and configures them and the real egress gateway; every request below is a real curl in
the pod's network namespace, answered (or not) by the lab internet's echo server, which says
what it saw. Object names, namespaces and selectors come from the rendered files.
"""

from __future__ import annotations

import json
import subprocess
import re
import time
from pathlib import Path

import pytest
import yaml

from lablib import BLACKHOLE_HOST, LAB_HOSTS, REPO_DIR, UNLISTED_HOST, echo

pytestmark = pytest.mark.lab

SEED = "baidu"
PASSTHROUGH = "passthrough"
MANAGER = "meshguard-lab-dataplane-test"
OTHER_NS = "lab-dp-other"


def objects(root: Path) -> list[dict]:
    out = []
    for f in sorted(root.rglob("*.yaml")):
        if f.name.startswith("mesh-config") or f.name.startswith("kustomization"):
            continue
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def principals(objs: list[dict]) -> set[tuple[str, str]]:
    """(namespace, service account) pairs an ALLOW AuthorizationPolicy names."""
    out = set()
    for o in objs:
        if o["kind"] == "AuthorizationPolicy":
            for rule in o["spec"].get("rules") or []:
                for frm in rule.get("from") or []:
                    for p in frm.get("source", {}).get("principals", []):
                        m = re.fullmatch(r"[^/]+/ns/([^/]+)/sa/([^/]+)", p)
                        if m:
                            out.add((m.group(1), m.group(2)))
    return out


def pod_manifest(name: str, ns: str, sa: str, image: str = "curlimages/curl", inject: bool = True) -> str:
    labels = {"app": name}
    if not inject:
        labels["sidecar.istio.io/inject"] = "false"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": image}]},
    })


def ensure_namespace(lab, ns: str, inject: bool = True) -> None:
    # a namespace another test is still deleting must be gone first
    lab.kubectl_run("wait", "--for=delete", f"namespace/{ns}", "--timeout=120s", check=False, timeout=150)
    lab.kubectl_run("create", "namespace", ns)
    if inject:
        lab.kubectl_run("label", "namespace", ns, "istio-injection=enabled")


def set_mesh(lab, configmap: str, mesh: str) -> None:
    lab.kubectl_run("-n", "istio-system", "patch", "configmap", configmap, "--type=merge",
                    "-p", json.dumps({"data": {"mesh": mesh}}))


class World:
    """What the module fixture set up: pods by role, the gateway, and helpers."""

    def __init__(self, lab, rendered: Path):
        self.lab = lab
        self.seed_objs = objects(rendered / SEED)
        self.pt_objs = objects(rendered / PASSTHROUGH)
        dep = next(o for o in self.seed_objs if o["kind"] == "Deployment")
        self.gw_ns = dep["metadata"]["namespace"]
        self.gw_deployment = dep["metadata"]["name"]
        self.gw_selector = dep["spec"]["selector"]["matchLabels"]
        allowed = principals([o for o in self.seed_objs if o["kind"] == "AuthorizationPolicy"])
        assert len(allowed) == 1, allowed
        (self.app_ns, self.allowed_sa), = allowed
        self.denied_sa = "bookinfo-reviews"
        ci = sorted(principals(self.pt_objs))
        self.ci_ns, self.ci_sa = ci[0]
        self.pods: dict[str, tuple[str, str]] = {}  # role -> (namespace, pod)
        self.gateway_pod = ""
        self.gateway_ip = ""
        self.first_request: dict = {}

    def curl(self, role: str, url: str, *args: str, timeout: float = 10):
        ns, pod = self.pods[role]
        return self.lab.curl(ns, pod, url, *args, timeout=timeout)

    def gateway_stats(self, regex: str) -> dict[str, int]:
        return self.lab.envoy_stats(self.gw_ns, self.gateway_pod, regex)

    def rbac_denied(self) -> int:
        return sum(v for k, v in self.gateway_stats("rbac").items()
                   if k.endswith("rbac.denied") and "shadow" not in k)

    def until(self, what: str, fn, timeout: float = 60, interval: float = 1.0):
        return self.lab.wait_for(what, fn, timeout=timeout, interval=interval)


@pytest.fixture(scope="module")
def world(dataplane, rendered_examples):  # pylint: disable=too-many-locals,too-many-statements
    lab = dataplane
    w = World(lab, rendered_examples)
    namespaces = [w.app_ns, OTHER_NS, w.ci_ns]
    mesh_cm = "istio"
    original_mesh = json.loads(lab.kubectl_run("-n", "istio-system", "get", "configmap", mesh_cm, "-o", "json").stdout)[
        "data"]["mesh"]
    try:
        for ns in namespaces:
            ensure_namespace(lab, ns)
        for ns, sa in ((w.app_ns, w.allowed_sa), (w.app_ns, w.denied_sa), (OTHER_NS, "other"), (w.ci_ns, w.ci_sa)):
            lab.kubectl_run("-n", ns, "create", "serviceaccount", sa)
        # the policy as rendered, applied as is (until the apply role lands: kubectl)
        for example in (SEED, PASSTHROUGH):
            lab.kubectl_run("apply", "--server-side", f"--field-manager={MANAGER}", "-k",
                            str(rendered_examples / example))
        mesh = yaml.safe_load(original_mesh) or {}
        mesh["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}  # the seed's mesh-config.yaml
        set_mesh(lab, mesh_cm, yaml.safe_dump(mesh))
        w.pods = {
            "allowed": (w.app_ns, "productpage"),
            "denied": (w.app_ns, "reviews"),
            "other": (OTHER_NS, "other"),
            "ci": (w.ci_ns, "runner"),
            "bypass": (w.app_ns, "bypass"),
            "nocurl": (w.app_ns, "nocurl"),
        }
        manifests = [
            pod_manifest("productpage", w.app_ns, w.allowed_sa),
            pod_manifest("reviews", w.app_ns, w.denied_sa),
            pod_manifest("other", OTHER_NS, "other"),
            pod_manifest("runner", w.ci_ns, w.ci_sa),
            # same identity as the allowed pod, but no sidecar: the bypass the docs warn about
            pod_manifest("bypass", w.app_ns, w.allowed_sa, inject=False),
            pod_manifest("nocurl", w.app_ns, w.allowed_sa, image="meshguard-lab/nocurl"),
        ]
        lab.kubectl_run("apply", "-f", "-", input="---\n".join(manifests))
        lab.kubectl_run("-n", w.gw_ns, "rollout", "status", f"deployment/{w.gw_deployment}", "--timeout=120s",
                        timeout=150)
        for ns in namespaces:
            pods = [p for (n, p) in w.pods.values() if n == ns]
            lab.wait_ready(ns, *pods)
        sel = ",".join(f"{k}={v}" for k, v in w.gw_selector.items())
        gws = json.loads(lab.kubectl_run("-n", w.gw_ns, "get", "pods", "-l", sel, "-o", "json").stdout)["items"]
        gws = [p for p in gws if not p["metadata"].get("deletionTimestamp")]
        assert len(gws) == 1, [p["metadata"]["name"] for p in gws]
        w.gateway_pod, w.gateway_ip = gws[0]["metadata"]["name"], gws[0]["status"]["podIP"]
        # the first request that gets through (config pushed, connections made): time it
        start = time.monotonic()

        w.until("productpage's first 200 from www.baidu.com",
                lambda: w.curl("allowed", "http://www.baidu.com/")[1] == 200, timeout=90)
        w.first_request = {"seconds_until_200": round(time.monotonic() - start, 2)}
        yield w
    finally:
        lab.kubectl_run("delete", "namespace", *namespaces, "--wait=false", "--ignore-not-found", check=False)
        for example in (PASSTHROUGH, SEED):
            lab.kubectl_run("delete", "-k", str(rendered_examples / example), "--ignore-not-found", "--wait=false",
                            check=False)
        set_mesh(lab, mesh_cm, original_mesh)
        lab.kubectl_run("wait", "--for=delete", *[f"namespace/{ns}" for ns in namespaces], "--timeout=120s",
                        check=False, timeout=150)


def test_lab_hosts_cover_every_example_host():
    hosts = set()
    for f in (REPO_DIR / "examples").glob("*.yml"):
        for rule in yaml.safe_load(f.read_text()).get("meshguard_egress_rules", []):
            hosts.update(h.lower() for h in rule.get("hosts", []))
    assert hosts and hosts <= set(LAB_HOSTS), f"add to tests/lab/manifests/lab-hosts.txt: {sorted(hosts - set(LAB_HOSTS))}"
    assert LAB_HOSTS[0] == "www.baidu.com"
    assert UNLISTED_HOST not in hosts and BLACKHOLE_HOST not in hosts


def test_sidecars_and_gateway_are_real_envoys_that_accepted_every_push(world):
    """Every xDS push to the gateway and the sidecars was accepted by upstream Envoy: a rejected
    listener or cluster would leave the last good config serving (README, LAB-NOTES)."""
    lab = world.lab
    for ns, pod in [(world.gw_ns, world.gateway_pod)] + [world.pods[r] for r in ("allowed", "denied", "other", "ci")]:
        stats = lab.envoy_stats(ns, pod, "update_(rejected|success)")
        rejected = {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
        assert not rejected, f"{ns}/{pod}: Envoy rejected config: {rejected}"
        assert stats.get("cluster_manager.cds.update_success", 0) > 0, f"{ns}/{pod}: no CDS push accepted"
        assert stats.get("listener_manager.lds.update_success", 0) > 0, f"{ns}/{pod}: no LDS push accepted"
        # the server is upstream Envoy of the pinned version, started by pilot-agent
        info = lab.exec(ns, pod, "curl", "-sS", "http://127.0.0.1:15000/server_info", container="istio-proxy")
        assert json.loads(info.stdout)["state"] == "LIVE"


def test_allowed_pod_gets_200_through_the_gateway_with_tls_origination(world):
    rc, code, body = world.curl("allowed", "http://www.baidu.com/s?wd=lab")
    assert (rc, code) == (0, 200), body
    seen = echo(body)
    assert seen, body
    # the server saw TLS with SNI www.baidu.com, from the gateway: origination at the gateway
    assert seen["tls"] is True and seen["sni"] == "www.baidu.com", seen
    assert seen["client"] == world.gateway_ip, seen
    assert (seen["method"], seen["path"], seen["host"]) == ("GET", "/s?wd=lab", "www.baidu.com"), seen
    assert seen["server_name"] == "www.baidu.com" and seen["server_port"] == 443, seen


def test_other_identities_are_denied_403_by_the_gateways_rbac(world):
    before = world.rbac_denied()
    for role in ("denied", "other"):
        rc, code, body = world.curl(role, "http://www.baidu.com/")
        assert (rc, code) == (0, 403), (role, body)
        assert "RBAC: access denied" in body, (role, body)
    assert world.rbac_denied() >= before + 2


def test_a_host_in_no_policy_is_blocked_by_registry_only(world):
    since = time.time()
    rc, code, body = world.curl("allowed", f"http://{UNLISTED_HOST}/")
    assert code == 502 or rc != 0, (rc, code, body)
    assert echo(body) is None, body
    rc, code, body = world.curl("allowed", f"https://{UNLISTED_HOST}/")
    assert rc != 0 and echo(body) is None, (rc, code, body)
    # the server never saw them (while a pod without sidecar does reach it)
    assert not [r for r in world.lab.internet_requests(since) if r["server_name"] == UNLISTED_HOST]
    assert world.curl("bypass", f"http://{UNLISTED_HOST}/")[1] == 200
    assert [r for r in world.lab.internet_requests(since) if r["server_name"] == UNLISTED_HOST]


def test_the_allowed_pod_cannot_skip_the_gateway_with_https(world):
    """Direct `curl https://www.baidu.com` from the allowed pod must not reach the server: only
    the gateway may see the TLS port (hardened builder, ISTIO-NOTES "Pitfalls")."""
    rc, code, body = world.curl("allowed", "https://www.baidu.com/")
    assert rc != 0 and echo(body) is None, (rc, code, body)


def test_passthrough_example_lets_the_listed_identity_through_by_sni(world):
    rc, code, body = world.curl("ci", "https://api.github.com/repos")
    assert (rc, code) == (0, 200), body
    seen = echo(body)
    assert seen["tls"] is True and seen["sni"] == "api.github.com", seen
    assert seen["client"] == world.gateway_ip, seen
    for role in ("allowed", "denied"):
        rc, code, body = world.curl(role, "https://api.github.com/")
        assert rc in (35, 56) and echo(body) is None, (role, rc, code, body)


def test_a_pod_without_sidecar_goes_straight_out(world):
    """The bypass the docs warn about: no sidecar, no gateway, no policy (NetworkPolicies would
    be the guard; the lab has no CNI to enforce them)."""
    rc, code, body = world.curl("bypass", "http://www.baidu.com/")
    assert (rc, code) == (0, 200), body
    seen = echo(body)
    ns, pod = world.pods["bypass"]
    pod_ip = world.lab.kubectl_run("-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.podIP}").stdout
    assert seen["client"] == pod_ip and seen["tls"] is False, seen


def test_a_pod_without_curl_fails_like_a_runtime(world):
    ns, pod = world.pods["nocurl"]
    proc = world.lab.exec(ns, pod, "curl", "-sS", "http://www.baidu.com/")
    assert proc.returncode == 127, proc
    assert 'exec: "curl": executable file not found in $PATH' in proc.stderr, proc.stderr


def test_blackhole_host_times_out(world):
    rc, _code, body = world.curl("bypass", f"http://{BLACKHOLE_HOST}/", timeout=2)
    assert rc == 28, body


def test_a_deliberate_leak_is_visible(world):
    """An extra hand-written ALLOW for the denied pod: it then gets 200. The lab can show a wrong
    policy, so its green means something. Removed again, the pod is denied again."""
    ap = next(o for o in world.seed_objs if o["kind"] == "AuthorizationPolicy" and o["spec"].get("rules"))
    leak = {
        "apiVersion": ap["apiVersion"], "kind": "AuthorizationPolicy",
        "metadata": {"name": "lab-deliberate-leak", "namespace": ap["metadata"]["namespace"]},
        "spec": {"selector": ap["spec"]["selector"], "action": "ALLOW", "rules": [{"from": [{"source": {
            "principals": [f"cluster.local/ns/{world.app_ns}/sa/{world.denied_sa}"]}}]}]},
    }
    lab = world.lab
    lab.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(leak))
    try:
        def leaked():
            _rc, code, body = world.curl("denied", "http://www.baidu.com/")
            return body if code == 200 else None
        # (a later request may meet a listener the gateway is draining after the push: judge
        # the 200 itself)
        seen = echo(world.until("the leak to let reviews through", leaked, timeout=60))
        assert seen and seen["sni"] == "www.baidu.com" and seen["client"] == world.gateway_ip, seen
    finally:
        lab.kubectl_run("delete", "-f", "-", input=yaml.safe_dump(leak), check=False)
    world.until("reviews to be denied again", lambda: world.curl("denied", "http://www.baidu.com/")[1] == 403,
                timeout=60)


def test_gateway_readiness_follows_the_proxy(world):
    """The gateway pod's Ready condition is the proxy's /healthz/ready: when its Envoy exits,
    the pod goes NotReady, the data plane restarts the proxy (restartCount, as a kubelet would)
    and the pod is Ready again; traffic flows again."""
    lab, ns, pod = world.lab, world.gw_ns, world.gateway_pod

    def status() -> tuple[str, int]:
        p = json.loads(lab.kubectl_run("-n", ns, "get", "pod", pod, "-o", "json").stdout)["status"]
        ready = next(c["status"] for c in p["conditions"] if c["type"] == "Ready")
        restarts = next(c.get("restartCount", 0) for c in p.get("containerStatuses", []) + p.get(
            "initContainerStatuses", []) if c["name"] == "istio-proxy")
        return ready, restarts
    ready, restarts = status()
    assert ready == "True"
    lab.exec(ns, pod, "curl", "-sS", "-X", "POST", "http://127.0.0.1:15000/quitquitquit", container="istio-proxy")
    world.until("gateway NotReady", lambda: status()[0] == "False", timeout=30, interval=0.3)
    world.until("gateway Ready again after a restart", lambda: status() == ("True", restarts + 1), timeout=60)
    lab.kubectl_run("-n", ns, "rollout", "status", f"deployment/{world.gw_deployment}", "--timeout=60s")
    world.until("traffic through the restarted gateway",
                lambda: world.curl("allowed", "http://www.baidu.com/")[1] == 200, timeout=60)


# --- the mixed example: plain HTTP (tls: none) and TLS origination with a client certificate --

MIXED = "mixed"


def rule_sources(objs: list[dict], host: str) -> list[tuple[str, str]]:
    """(namespace, service account or '*') of the ALLOW rules that name `host`."""
    out = []
    for o in objs:
        if o["kind"] != "AuthorizationPolicy":
            continue
        for rule in o["spec"].get("rules") or []:
            hosts = [h for to in rule.get("to") or [] for h in to.get("operation", {}).get("hosts", [])]
            if host not in hosts:
                continue
            for frm in rule.get("from") or []:
                for p in frm.get("source", {}).get("principals", []):
                    m = re.fullmatch(r"[^/]+/ns/([^/]+)/sa/([^/]+)", p)
                    if m:
                        out.append((m.group(1), m.group(2)))
    return sorted(out)


@pytest.fixture(scope="module")
def mixed(dataplane, rendered_examples, tmp_path_factory):  # pylint: disable=too-many-locals
    """The mixed example (its own revision, gateway with 2 replicas, policy name, L7 rules), the
    client certificate secret its payments rule names (issued by the lab CA), and clients."""
    lab = dataplane
    root = rendered_examples / MIXED
    objs = objects(root)
    dep = [o for o in objs if o["kind"] == "Deployment"][0]
    gw_ns = dep["metadata"]["namespace"]
    rev = dep["spec"]["template"]["metadata"]["labels"]["istio.io/rev"]
    selector = dep["spec"]["selector"]["matchLabels"]
    dr = [o for o in objs if o["kind"] == "DestinationRule"
          and o["spec"].get("trafficPolicy", {}).get("portLevelSettings", [{}])[0].get("tls", {}).get("credentialName")][0]
    credential = dr["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["credentialName"]
    (mirror_ns, _any_sa), = rule_sources(objs, "deb.debian.org")
    pay_ns, pay_sa = rule_sources(objs, "api.payments.example.com")[0]
    other_ns = "lab-dp-other-rev"
    namespaces = sorted({mirror_ns, pay_ns, other_ns})
    lab.ensure_revision(rev)
    mesh_cm = f"istio-{rev}"
    original_mesh = json.loads(lab.kubectl_run("-n", "istio-system", "get", "configmap", mesh_cm, "-o", "json").stdout)[
        "data"]["mesh"]
    pods = {"mirror": (mirror_ns, "builder"), "pay": (pay_ns, "checkout"), "other": (other_ns, "outsider")}
    created_gw_ns = False
    try:
        for ns in namespaces:
            ensure_namespace(lab, ns, inject=False)
            lab.kubectl_run("label", "namespace", ns, f"istio.io/rev={rev}")
        if lab.kubectl_run("get", "namespace", gw_ns, check=False).returncode != 0:
            lab.kubectl_run("create", "namespace", gw_ns)
            created_gw_ns = True
        for role, sa in (("mirror", "builder"), ("pay", pay_sa), ("other", "outsider")):
            lab.kubectl_run("-n", pods[role][0], "create", "serviceaccount", sa)
        # the client certificate the payments rule names: a secret in the gateway's namespace
        # (tls.crt/tls.key, ca.crt = the lab CA the server certificate chains to)
        pki = Path(lab.state) / "dataplane" / "pki"
        tmp = tmp_path_factory.mktemp("client-cert")
        subprocess_run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(tmp / "tls.key"), "-out", str(tmp / "tls.csr"), "-subj", "/CN=payments-client"])
        (tmp / "ext").write_text("extendedKeyUsage=clientAuth\n")
        subprocess_run(["openssl", "x509", "-req", "-in", str(tmp / "tls.csr"), "-CA", str(pki / "ca.crt"),
                        "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "1", "-out", str(tmp / "tls.crt"),
                        "-extfile", str(tmp / "ext")])
        lab.kubectl_run("-n", gw_ns, "create", "secret", "generic", credential, f"--from-file=tls.crt={tmp / 'tls.crt'}",
                        f"--from-file=tls.key={tmp / 'tls.key'}", f"--from-file=ca.crt={pki / 'ca.crt'}")
        lab.kubectl_run("apply", "--server-side", f"--field-manager={MANAGER}", "-k", str(root))
        mesh = yaml.safe_load(original_mesh) or {}
        mesh["outboundTrafficPolicy"] = {"mode": "REGISTRY_ONLY"}
        set_mesh(lab, mesh_cm, yaml.safe_dump(mesh))
        lab.kubectl_run("apply", "-f", "-", input="---\n".join(
            pod_manifest(pod, ns, sa) for (ns, pod), sa in zip(pods.values(), ("builder", pay_sa, "outsider"))))
        lab.kubectl_run("-n", gw_ns, "rollout", "status", f"deployment/{dep['metadata']['name']}", "--timeout=120s",
                        timeout=150)
        for ns, pod in pods.values():
            lab.wait_ready(ns, pod)
        sel = ",".join(f"{k}={v}" for k, v in selector.items())
        gws = json.loads(lab.kubectl_run("-n", gw_ns, "get", "pods", "-l", sel, "-o", "json").stdout)["items"]
        gw_ips = {p["status"]["podIP"] for p in gws if not p["metadata"].get("deletionTimestamp")}
        assert len(gw_ips) == dep["spec"]["replicas"], gw_ips

        def curl(role, url, *args):
            ns, pod = pods[role]
            return lab.curl(ns, pod, url, *args)
        lab.wait_for("the mirror's first 200", lambda: curl("mirror", "http://deb.debian.org/debian/")[1] == 200,
                     timeout=90)
        yield {"curl": curl, "gw_ips": gw_ips, "gw_ns": gw_ns, "gateways": [p["metadata"]["name"] for p in gws]}
    finally:
        lab.kubectl_run("delete", "namespace", *namespaces, "--wait=false", "--ignore-not-found", check=False)
        lab.kubectl_run("delete", "-k", str(root), "--ignore-not-found", "--wait=false", check=False)
        lab.kubectl_run("-n", gw_ns, "delete", "secret", credential, "--ignore-not-found", check=False)
        if created_gw_ns:
            lab.kubectl_run("delete", "namespace", gw_ns, "--wait=false", check=False)
        set_mesh(lab, mesh_cm, original_mesh)
        lab.kubectl_run("wait", "--for=delete", *[f"namespace/{ns}" for ns in namespaces], "--timeout=120s",
                        check=False, timeout=150)


def subprocess_run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_plain_http_rule_lets_its_namespace_through_and_denies_others(mixed):
    rc, code, body = mixed["curl"]("mirror", "http://deb.debian.org/debian/dists/stable/Release")
    assert (rc, code) == (0, 200), body
    seen = echo(body)
    assert seen["tls"] is False and seen["sni"] is None and seen["host"] == "deb.debian.org", seen
    assert seen["client"] in mixed["gw_ips"] and seen["server_port"] == 80, seen
    rc, code, body = mixed["curl"]("other", "http://deb.debian.org/debian/")
    assert (rc, code) == (0, 403) and "RBAC: access denied" in body, body


def test_origination_with_a_client_certificate_and_l7_rules(mixed):
    """The payments rule: POST to a listed path gets through; the gateway originates mutual TLS
    to port 8443 with the client certificate of the secret it names (the server saw it); a GET,
    or a path not listed, is denied by the rule's L7 limits."""
    rc, code, body = mixed["curl"]("pay", "http://api.payments.example.com/v2/charges", "-X", "POST", "-d", "{}")
    assert (rc, code) == (0, 200), body
    seen = echo(body)
    assert seen["tls"] is True and seen["sni"] == "api.payments.example.com" and seen["server_port"] == 8443, seen
    assert seen["client"] in mixed["gw_ips"] and seen["method"] == "POST", seen
    assert seen["client_cert"] and ["commonName", "payments-client"] in seen["client_cert"]["subject"], seen
    for args in (("http://api.payments.example.com/v2/charges",),
                 ("http://api.payments.example.com/v2/other", "-X", "POST")):
        rc, code, body = mixed["curl"]("pay", *args)
        assert (rc, code) == (0, 403), (args, body)
