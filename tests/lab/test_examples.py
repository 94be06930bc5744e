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


def ensure_namespaces(lab, objs: list[dict], created: set[str]) -> None:
    """Create (for real) the namespaces the objects live in, so that a server-side dry run of a
    namespaced object can succeed; Namespace objects among them are created the same way."""
    wanted = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    wanted |= {o["metadata"]["namespace"] for o in objs if o.get("metadata", {}).get("namespace")}
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


def analyze(lab, files: list[Path], live: bool) -> subprocess.CompletedProcess:
    """istioctl analyze with warnings counted as failures (exit code != 0)."""
    args = ["analyze", "--failure-threshold=Warning", "--output-threshold=Info"]
    args += ["--all-namespaces"] if live else ["--use-kube=false"]
    return lab.istioctl_run(*args, *map(str, files), check=False)


@pytest.fixture(scope="module")
def created_namespaces(lab):
    created: set[str] = set()
    yield created
    for ns in sorted(created):
        lab.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    if not RENDER.is_file():
        pytest.fail(f"{RENDER.relative_to(REPO_DIR)} is missing: the examples cannot be rendered", pytrace=False)
    out = tmp_path_factory.mktemp("rendered")
    proc = subprocess.run([str(RENDER), str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"render-examples.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return out


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
def test_rendered_example_istioctl_analyze_live(lab, rendered, created_namespaces, example):
    files = object_files(rendered / example)
    ensure_namespaces(lab, load_objects(files), created_namespaces)
    proc = analyze(lab, files, live=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
            tls: {mode: SIMPLE}
    """
)

# An unknown field: strict server-side validation must refuse it.
BAD_FIELD = GOOD.replace("tls: {mode: SIMPLE}", "tls: {mode: SIMPLE, sniHost: www.example.com}")

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
    live = analyze(lab, files, live=True)
    assert live.returncode == 0, live.stdout + live.stderr


def test_harness_catches_an_unknown_field(lab, handwritten, created_namespaces):
    files = handwritten("bad-field", BAD_FIELD)
    ensure_namespaces(lab, load_objects(files), created_namespaces)
    failures = server_dry_run(lab, files)
    assert len(failures) == 1 and "sniHost" in failures[0], failures


def test_harness_catches_a_dangling_reference(lab, handwritten):
    files = handwritten("bad-ref", BAD_REF)
    for live in (False, True):
        proc = analyze(lab, files, live=live)
        assert proc.returncode != 0 and "IST0101" in proc.stdout, (live, proc.stdout, proc.stderr)
