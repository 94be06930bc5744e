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

import pytest

from lablib import LAB_DIR, Lab, script


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
