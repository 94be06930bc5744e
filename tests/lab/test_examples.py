"""Rendered examples against the lab: the API server (strict field validation, Istio's CRD
schemas) and `istioctl analyze` (offline on the files, and live against the lab) must accept
every object the collection renders for examples/*.yml.

Contract with the renderer: tests/tools/render-examples.sh OUTDIR renders each example to
OUTDIR/<example>/ (multi-document YAML plus kustomization.yaml); files whose names start with
`mesh-config` are Istio install values, not Kubernetes objects, and are skipped. A missing
script is a failure, not a skip.

The harness itself is checked on hand-written Istio YAML (one good set, two bad ones) so that a
passing example run means something.
"""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from lablib import REPO_DIR

pytestmark = pytest.mark.lab

RENDER = REPO_DIR / "tests" / "tools" / "render-examples.sh"
EXAMPLES = sorted(p.stem for p in (REPO_DIR / "examples").glob("*.yml"))


def object_files(root: Path) -> list[Path]:
    """The files under root that hold Kubernetes objects (see the contract above)."""
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix in (".yaml", ".yml")
        and p.name not in ("kustomization.yaml", "kustomization.yml")
        and not p.name.startswith("mesh-config")
    ]
    return files


def load_objects(files: list[Path]) -> list[dict]:
    objs = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                assert isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc, f"{f}: not a k8s object"
                objs.append(doc)
    return objs


def referenced_namespaces(objs: list[dict]) -> set[str]:
    """Client namespaces an AuthorizationPolicy names (source namespaces and principals
    <trust-domain>/ns/<ns>/sa/<sa>): in a cluster where the policy makes sense they exist."""
    found = set()
    for o in objs:
        if o["kind"] != "AuthorizationPolicy":
            continue
        for rule in o.get("spec", {}).get("rules") or []:
            for frm in rule.get("from") or []:
                src = frm.get("source", {})
                found.update(n for n in src.get("namespaces", []) if "*" not in n)
                for principal in src.get("principals", []):
                    parts = principal.split("/")
                    if "ns" in parts and parts.index("ns") + 1 < len(parts):
                        ns = parts[parts.index("ns") + 1]
                        if "*" not in ns:
                            found.add(ns)
    return found


def revisions(objs: list[dict]) -> set[str]:
    """Istio revisions the objects select (istio.io/rev on them or on a pod template)."""
    revs = set()
    for o in objs:
        for labels in (
            o.get("metadata", {}).get("labels") or {},
            o.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {},
        ):
            if labels.get("istio.io/rev") not in (None, "", "default"):
                revs.add(labels["istio.io/rev"])
    return revs


def ensure_namespaces(lab, objs: list[dict], created: set[str]) -> None:
    """Create (for real) the namespaces the objects live in, so that a server-side dry run of a
    namespaced object can succeed, and the client namespaces their policies name; Namespace
    objects among them are created the same way. Istio revisions they select are installed."""
    wanted = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    wanted |= {o["metadata"]["namespace"] for o in objs if o.get("metadata", {}).get("namespace")}
    wanted |= referenced_namespaces(objs)
    for rev in sorted(revisions(objs)):
        lab.ensure_revision(rev)
    for ns in sorted(wanted):
        if lab.kubectl_run("get", "namespace", ns, check=False).returncode != 0:
            lab.kubectl_run("create", "namespace", ns)
            created.add(ns)


def server_dry_run(lab, files: list[Path]) -> list[str]:
    """`kubectl apply --dry-run=server --validate=strict` per file; returns the failures."""
    failures = []
    for f in files:
        proc = lab.kubectl_run("apply", "--dry-run=server", "--validate=strict", "-f", str(f), check=False)
        if proc.returncode != 0:
            failures.append(f"{f.name}: {proc.stderr.strip()}")
    return failures


def analyze(lab, files: list[Path], live: bool, revision: str = "default") -> subprocess.CompletedProcess:
    """istioctl analyze over all namespaces (without it, messages about objects outside the
    `default` namespace are dropped), warnings counted as failures (exit code != 0).
    live=False: the files alone (--use-kube=false); live=True: the lab's state plus the files,
    as seen by the control plane of `revision` (istioctl analyze --revision)."""
    args = ["analyze", "--all-namespaces", "--failure-threshold=Warning", "--output-threshold=Info"]
    args += ["--use-kube=false"] if not live else ["--revision", revision]
    return lab.istioctl_run(*args, *map(str, files), check=False)


@contextlib.contextmanager
def installed(lab, files: list[Path], objs: list[dict]):
    """Apply the objects to the lab for real (server-side, strict), wait until their
    Deployments are rolled out (kwok runs the pods; the lab's istiod injects them), and remove
    them again afterwards."""
    args = [a for f in files for a in ("-f", str(f))]
    try:
        lab.kubectl_run("apply", "--server-side", "--field-manager=meshguard-lab-test", "--validate=strict", *args)
        for o in objs:
            if o["kind"] == "Deployment":
                ns = o["metadata"].get("namespace", "default")
                lab.kubectl_run("-n", ns, "rollout", "status", "deployment/" + o["metadata"]["name"], "--timeout=120s")
        yield
    finally:
        lab.kubectl_run("delete", "--ignore-not-found", "--wait=true", "--timeout=120s", *args, check=False)


@pytest.fixture(scope="module")
def created_namespaces(lab):
    created: set[str] = set()
    yield created
    for ns in sorted(created):
        lab.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def rendered(rendered_examples) -> Path:
    """OUTDIR of tests/tools/render-examples.sh, rendered once per session (conftest.py)."""
    return rendered_examples


def test_there_are_examples():
    assert EXAMPLES, "examples/*.yml is empty"


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_example_passes_server_side_strict_validation(lab, rendered, created_namespaces, example):
    root = rendered / example
    assert root.is_dir(), f"render-examples.sh produced no {root}"
    files = object_files(root)
    objs = load_objects(files)
    assert objs, f"{example}: no Kubernetes objects rendered"
    ensure_namespaces(lab, objs, created_namespaces)
    assert server_dry_run(lab, files) == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_example_istioctl_analyze_offline(lab, rendered, example):
    files = object_files(rendered / example)
    assert files
    proc = analyze(lab, files, live=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_example_kustomization_passes_server_side_strict_validation(lab, rendered, created_namespaces, example):
    root = rendered / example
    assert (root / "kustomization.yaml").is_file()
    ensure_namespaces(lab, load_objects(object_files(root)), created_namespaces)
    proc = lab.kubectl_run("apply", "--dry-run=server", "--validate=strict", "-k", str(root), check=False)
    assert proc.returncode == 0, proc.stderr


@contextlib.contextmanager
def existing_gateway(lab, example: str):
    """A policy that reuses an existing egress gateway (meshguard_egress_gateway.manage: false,
    the example's own input) finds Istio's own egress gateway of that name installed."""
    policy = yaml.safe_load((REPO_DIR / "examples" / f"{example}.yml").read_text()) or {}
    gw = policy.get("meshguard_egress_gateway") or {}
    if gw.get("manage", True) is not False:
        yield
        return
    name, ns = gw.get("name", "istio-egressgateway"), gw.get("namespace", "istio-system")
    lab.egress_gateway(name, ns)
    try:
        yield
    finally:
        lab.egress_gateway(name, ns, delete=True)


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_example_installed_istioctl_analyze_live(lab, rendered, created_namespaces, example):
    """Installed in the lab (gateway pods running, injected by the lab's istiod), the example
    leaves istioctl analyze of the whole live cluster without errors or warnings."""
    files = object_files(rendered / example)
    objs = load_objects(files)
    ensure_namespaces(lab, objs, created_namespaces)
    # A revisioned gateway is judged by its own revision's view: the default revision's
    # analysis does not see other revisions' injection webhooks (IST0146 would be spurious).
    revs = sorted(revisions(objs)) or ["default"]
    with existing_gateway(lab, example), installed(lab, files, objs):
        procs = {rev: analyze(lab, [], live=True, revision=rev) for rev in revs}
    failed = {rev: p.stdout + p.stderr for rev, p in procs.items() if p.returncode != 0}
    assert not failed, failed


# --- the harness on hand-written Istio YAML ------------------------------------------------

GOOD = textwrap.dedent(
    """\
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: example-com, namespace: lab-harness}
    spec:
      hosts: [www.example.com]
      resolution: DNS
      ports:
        - {number: 80, name: http, protocol: HTTP}
        - {number: 443, name: https, protocol: HTTPS}
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: example-com, namespace: lab-harness}
    spec:
      host: www.example.com
      trafficPolicy:
        portLevelSettings:
          - port: {number: 443}
            tls: {mode: SIMPLE, sni: www.example.com, caCertificates: /etc/ssl/certs/ca-certificates.crt}
    """
)

# An unknown field: strict server-side validation must refuse it.
BAD_FIELD = GOOD.replace("sni: www.example.com", "sniHost: www.example.com")
assert BAD_FIELD != GOOD

# A VirtualService bound to a Gateway that does not exist: istioctl analyze reports IST0101.
BAD_REF = GOOD + textwrap.dedent(
    """\
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: example-com, namespace: lab-harness}
    spec:
      hosts: [www.example.com]
      gateways: [lab-harness/no-such-gateway]
      http:
        - route:
            - destination: {host: www.example.com, port: {number: 443}}
    """
)


@pytest.fixture
def handwritten(tmp_path):
    def write(name: str, text: str) -> list[Path]:
        d = tmp_path / name
        d.mkdir()
        (d / "objects.yaml").write_text(text)
        (d / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        (d / "mesh-config.yaml").write_text("meshConfig: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n")
        return object_files(d)

    return write


def test_harness_skips_kustomization_and_mesh_config(handwritten):
    assert [p.name for p in handwritten("skip", GOOD)] == ["objects.yaml"]


def test_harness_accepts_good_objects(lab, handwritten, created_namespaces):
    files = handwritten("good", GOOD)
    ensure_namespaces(lab, load_objects(files), created_namespaces)
    assert server_dry_run(lab, files) == []
    offline = analyze(lab, files, live=False)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    with installed(lab, files, load_objects(files)):
        live = analyze(lab, [], live=True)
    assert live.returncode == 0, live.stdout + live.stderr


def test_harness_catches_an_unknown_field(lab, handwritten, created_namespaces):
    files = handwritten("bad-field", BAD_FIELD)
    ensure_namespaces(lab, load_objects(files), created_namespaces)
    failures = server_dry_run(lab, files)
    assert len(failures) == 1 and "sniHost" in failures[0], failures


def test_harness_catches_a_dangling_reference(lab, handwritten, created_namespaces):
    files = handwritten("bad-ref", BAD_REF)
    ensure_namespaces(lab, load_objects(files), created_namespaces)
    offline = analyze(lab, files, live=False)
    assert offline.returncode != 0 and "IST0101" in offline.stdout, offline.stdout + offline.stderr
    with installed(lab, files, load_objects(files)):
        live = analyze(lab, [], live=True)
    assert live.returncode != 0 and "IST0101" in live.stdout, live.stdout + live.stderr


def test_harness_catches_an_analyzer_warning(lab, handwritten):
    """TLS origination without caCertificates: Istio's analyzer warns (IST0129)."""
    files = handwritten("warn", GOOD.replace(", caCertificates: /etc/ssl/certs/ca-certificates.crt", ""))
    proc = analyze(lab, files, live=False)
    assert proc.returncode != 0 and "IST0129" in proc.stdout, proc.stdout + proc.stderr
