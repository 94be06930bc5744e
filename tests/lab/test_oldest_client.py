"""site and verify on the lab with the oldest kubernetes client we claim (the floor of
requirements.txt, pinned in tests/requirements-oldest.txt; the rest of the lab tier runs with the
project venv's newest client). The small venv of `tests/tools/venv.sh oldest` runs, in a pytest
session of its own on the lab that is already up, the lab tests listed below: its
ansible-playbook, and so the modules it starts on localhost, run on that venv's Python.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from lablib import REPO_DIR

pytestmark = pytest.mark.lab

# site (egress_apply: reads, server-side apply, prune) then verify (access_probe: reads and exec
# into pods, probe pods created and deleted) on the seed example, and teardown. One test, to keep
# the lab tier short (about 80 s more); the project venv runs the whole tier with the newest client.
TESTS = [
    "tests/lab/test_verify.py::test_example_verifies_green_after_site[baidu]",
]


def _floor():
    text = (REPO_DIR / "requirements.txt").read_text()
    return re.search(r"^kubernetes>=(\S+)\s*$", text, re.M).group(1)


def test_site_and_verify_pass_with_the_oldest_client(lab):
    venv = subprocess.run([str(REPO_DIR / "tests" / "tools" / "venv.sh"), "oldest"], capture_output=True,
                          text=True, check=True, timeout=900).stdout.strip()
    python = os.path.join(venv, "bin", "python")
    version = subprocess.run([python, "-c", "import kubernetes; print(kubernetes.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == _floor()
    env = dict(os.environ, MESHGUARD_REQUIRE_LAB="1")
    proc = subprocess.run([python, "-m", "pytest", "-m", "lab", "-q", "-rs", "-p", "no:cacheprovider", *TESTS],
                          capture_output=True, text=True, cwd=str(REPO_DIR), env=env, timeout=3600, check=False)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\b%d passed\b" % len(TESTS), summary) and "skipped" not in summary, proc.stdout[-3000:]
