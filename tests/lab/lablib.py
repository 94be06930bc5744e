"""Helpers for tests that use the lab cluster (tests/lab/README.md): the pins and the Lab handle
that the session fixture ``lab`` (tests/lab/conftest.py) yields."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO_DIR = LAB_DIR.parent.parent
SCRIPTS = LAB_DIR / "scripts"


def versions() -> dict[str, str]:
    """The pins of tests/versions.env."""
    pins = {}
    for line in (REPO_DIR / "tests" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pins[key.strip()] = value.strip()
    return pins


def script(name: str, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / name), *args],
        check=check,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


@dataclasses.dataclass(frozen=True)
class Lab:
    """A running lab cluster."""

    kubeconfig: str
    kubectl: str
    istioctl: str
    bindir: str
    state: str
    hooks: str

    @property
    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at the lab and the lab's binaries on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = self.bindir + os.pathsep + env.get("PATH", "")
        return env

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        """Run a command (kubectl, istioctl, ...) against the lab; returns CompletedProcess."""
        proc = subprocess.run(
            list(args), input=input, text=True, capture_output=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl_run(self, *args: str, **kw):
        return self.run(self.kubectl, *args, **kw)

    def ensure_revision(self, revision: str) -> None:
        """Install Istio revision `revision` into the lab if it is not there yet (its mesh
        ConfigMap, injection templates, and its own istiod with webhooks)."""
        proc = subprocess.run(
            [str(SCRIPTS / "lab.sh"), "revision", revision], text=True, capture_output=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"lab.sh revision {revision} failed:\n{proc.stderr}")

    def egress_gateway(self, name: str, namespace: str, delete: bool = False) -> None:
        """Install (or remove) Istio's own egress gateway `name` in `namespace`, as istioctl's
        components.egressGateways does: the gateway a policy with manage: false reuses."""
        proc = subprocess.run(
            [str(SCRIPTS / "lab.sh"), "egress-gateway", name, namespace, *(["--delete"] if delete else [])],
            text=True, capture_output=True, timeout=300, check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"lab.sh egress-gateway {name} {namespace} failed:\n{proc.stderr}")

    def istioctl_run(self, *args: str, **kw):
        return self.run(self.istioctl, "--kubeconfig", self.kubeconfig, *args, **kw)
