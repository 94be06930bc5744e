"""pytest plumbing for the lab tier (tests/lab/README.md).

The session fixture ``lab`` owns the lab's lifecycle inside a pytest session: it reuses a lab
that is already up (``make lab-up``) and leaves it running, or starts one (building the
binaries first when Go is there and the cache is cold) and stops it at the end of the session.

Without Go and without cached binaries the lab tier is skipped, unless MESHGUARD_REQUIRE_LAB=1
(CI, ``make lab-test``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lablib import LAB_DIR, REPO_DIR, SCRIPTS, Lab, script

# scripts/relay.py serves both the data plane and the tests (test_apply.py: `from relay import Relay`)
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

RENDER = REPO_DIR / "tests" / "tools" / "render-examples.sh"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "lab: needs the lab cluster (real kube-apiserver + kwok, tests/lab); started once per session",
    )


def _unavailable(msg: str):
    if os.environ.get("MESHGUARD_REQUIRE_LAB") == "1":
        pytest.fail(f"lab tier required (MESHGUARD_REQUIRE_LAB=1) but unavailable: {msg}", pytrace=False)
    pytest.skip(f"lab tier SKIPPED: {msg}")


@pytest.fixture(scope="session")
def lab():
    """Yield a Lab (kubeconfig path, kubectl path, ...) for a running lab cluster."""
    if script("build.sh", "--cached", check=False).returncode != 0:
        if shutil.which("go") is None:
            _unavailable("go not found and no cached lab binaries (see tests/lab/README.md)")
        # First build on this machine: slow (see README for timings); output goes to the terminal.
        proc = script("build.sh", check=False, capture=False)
        if proc.returncode != 0:
            pytest.fail("building the lab binaries failed (tests/lab/scripts/build.sh)", pytrace=False)
    started = False
    if script("lab.sh", "healthy", check=False).returncode != 0:
        proc = script("lab.sh", "up", check=False)
        if proc.returncode != 0:
            pytest.fail(f"lab.sh up failed:\n{proc.stderr}", pytrace=False)
        started = True
    bindir = script("lab.sh", "bindir").stdout.strip()
    kubeconfig = script("lab.sh", "kubeconfig").stdout.strip()
    hooks = os.environ.get("MESHGUARD_LAB_HOOKS", str(LAB_DIR / "hooks" / "bin"))
    yield Lab(
        kubeconfig=kubeconfig,
        kubectl=os.path.join(bindir, "kubectl"),
        istioctl=os.path.join(bindir, "istioctl"),
        bindir=bindir,
        state=os.path.dirname(kubeconfig),
        hooks=hooks,
    )
    if started and os.environ.get("MESHGUARD_LAB_KEEP") != "1":
        script("lab.sh", "down", check=False)


@pytest.fixture(scope="session")
def rendered_examples(tmp_path_factory):
    """Every example rendered by tests/tools/render-examples.sh OUTDIR (OUTDIR/<example>/...),
    once per session. A missing script is a failure, not a skip."""
    if not RENDER.is_file():
        pytest.fail(f"{RENDER.relative_to(REPO_DIR)} is missing: the examples cannot be rendered", pytrace=False)
    out = tmp_path_factory.mktemp("rendered")
    proc = subprocess.run([str(RENDER), str(out)], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"render-examples.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def dataplane(lab):
    """The lab, with its data plane running (README "The data plane"). Where this machine
    cannot run it, the tests that need it skip with the reason, and fail under
    MESHGUARD_REQUIRE_LAB=1 (unless it was switched off on purpose: MESHGUARD_LAB_DATAPLANE=0 or
    MESHGUARD_LAB_ISTIOD=0)."""
    if not lab.dataplane:
        if lab.dataplane_mode.startswith("off ("):  # switched off on purpose (lab.sh decide_dataplane)
            pytest.skip(f"lab data plane: {lab.dataplane_mode}")
        _unavailable(f"lab data plane: {lab.dataplane_mode}")
    return lab
