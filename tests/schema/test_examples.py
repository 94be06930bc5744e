"""Every example policy (examples/*.yml) renders to Istio objects that Istio's own CRD schemas
accept (tests/schema/istio_schema.py: strict fields, enums, CEL rule equivalents, ObjectMeta).

Objects are built through the collection's public path, `tests/tools/render-examples.sh
OUTDIR` (the render playbook), which writes OUTDIR/<example>/ as multi-document YAML files
plus a kustomization.yaml. Files named mesh-config* are Istio install values, not Kubernetes
objects, and are skipped. Non-Istio kinds (Deployment, Service, NetworkPolicy, RBAC,
Kustomization, ...) are not checked here: the lab tier applies them to a real API server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = REPO / "tests" / "tools" / "render-examples.sh"
EXAMPLES = sorted(REPO.glob("examples/*.yml"))
ISTIO_GROUP_SUFFIX = ".istio.io"


def _example_params():
    if not EXAMPLES:
        # Nothing to parametrize would make pytest skip silently; this must fail instead.
        return [pytest.param(None, id="no-examples")]
    return [pytest.param(p.stem, id=p.stem) for p in EXAMPLES]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """Render all examples once per session; fail (never skip) if that is not possible."""
    if not RENDER_SCRIPT.is_file():
        pytest.fail(f"{RENDER_SCRIPT.relative_to(REPO)} does not exist yet: cannot build the example objects", pytrace=False)
    if not EXAMPLES:
        pytest.fail("no examples/*.yml policies found", pytrace=False)
    out = tmp_path_factory.mktemp("rendered-examples")
    proc = subprocess.run(
        ["bash", str(RENDER_SCRIPT), str(out)], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"render-examples.sh failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return out


def _objects(example_dir: Path):
    """(file, index, object) for every YAML document of every object file of one example."""
    for path in sorted(example_dir.rglob("*")):
        if not path.is_file() or path.suffix not in (".yaml", ".yml") or path.name.startswith("mesh-config"):
            continue
        with path.open(encoding="utf-8") as f:
            for index, obj in enumerate(yaml.safe_load_all(f)):
                if obj is not None:
                    yield path.relative_to(example_dir), index, obj


def _is_istio(obj) -> bool:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group.endswith(ISTIO_GROUP_SUFFIX)


@pytest.mark.parametrize("example", _example_params())
def test_example_istio_objects_match_crd_schemas(istio, rendered, example):
    if example is None:
        pytest.fail("no examples/*.yml policies found", pytrace=False)
    example_dir = rendered / example
    assert example_dir.is_dir(), f"render-examples.sh wrote no {example}/ directory under {rendered}"

    problems, checked, skipped = [], [], []
    for path, index, obj in _objects(example_dir):
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            problems.append(f"{path} document {index}: not a Kubernetes object: {str(obj)[:200]}")
            continue
        label = f"{path} document {index} ({obj['apiVersion']} {obj['kind']} {obj.get('metadata', {}).get('name')})"
        if not _is_istio(obj):
            skipped.append(label)
            continue
        checked.append(label)
        problems.extend(f"{label}: {err}" for err in istio.validate(obj))

    # A policy always yields the per-rule Istio objects; finding none means the test checked nothing.
    assert checked, f"{example}: no Istio objects found in {example_dir} (skipped: {skipped})"
    assert not problems, f"{example}: {len(problems)} schema violation(s):\n" + "\n".join(problems)


@pytest.mark.parametrize("example", _example_params())
def test_example_has_the_documented_istio_kinds(rendered, example):
    """Each policy yields at least one object of every kind of the documented pattern."""
    if example is None:
        pytest.fail("no examples/*.yml policies found", pytrace=False)
    objects = [item[2] for item in _objects(rendered / example)]
    kinds = {obj.get("kind") for obj in objects if isinstance(obj, dict) and _is_istio(obj)}
    expected = {"ServiceEntry", "Gateway", "DestinationRule", "VirtualService", "AuthorizationPolicy"}
    assert expected <= kinds, f"{example}: missing {sorted(expected - kinds)} (found {sorted(kinds)})"
