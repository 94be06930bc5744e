"""Helpers for tests that use the lab cluster (tests/lab/README.md): the pins and the Lab handle
that the session fixture ``lab`` (tests/lab/conftest.py) yields."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO_DIR = LAB_DIR.parent.parent
SCRIPTS = LAB_DIR / "scripts"


def _lab_hosts() -> tuple[str, ...]:
    lines = (LAB_DIR / "manifests" / "lab-hosts.txt").read_text().splitlines()
    return tuple(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


# The lab internet (README "The data plane"): the lab DNS answers these hosts and an echo server
# replies for each of them (HTTP on 80, HTTPS on 443 and 8443, certificates from the lab CA).
# LAB_HOSTS: every host named in examples/*.yml, www.baidu.com first (manifests/lab-hosts.txt).
LAB_HOSTS = _lab_hosts()
# answered by the lab DNS and an echo server like the others, but in no policy
UNLISTED_HOST = "unlisted.meshguard-lab.net"
# answered by the lab DNS; its server accepts TCP connections and never replies
BLACKHOLE_HOST = "blackhole.meshguard-lab.net"
# the lab DNS server's address (pods' /etc/resolv.conf)
LAB_DNS = "198.18.0.53"


def echo(output: str) -> dict | None:
    """The echo server's JSON in `output` (e.g. curl's stdout, headers included or not): the
    last line that parses as a JSON object with the echo fields, or None. Its keys: method,
    path, host (the Host header), sni (None without TLS or SNI), tls (bool), client (the
    caller's address as the server saw it: a pod IP), client_port, server, server_port,
    server_name (the lab host whose address was called), headers (lower-case names),
    client_cert (subject and SANs of a client certificate, or None), body_bytes."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "method" in obj and "tls" in obj:
                return obj
    return None


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

    # --- the data plane (README "The data plane") ---

    @property
    def dataplane_mode(self) -> str:
        """"on" when this lab runs the data plane, else the reason it does not."""
        try:
            return Path(self.state, "dataplane.mode").read_text().strip()
        except OSError:
            return "unknown (no dataplane.mode in the lab state)"

    @property
    def dataplane(self) -> bool:
        return self.dataplane_mode == "on"

    def exec(self, namespace: str, pod: str, *cmd: str, container: str | None = None,
             input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """`kubectl exec` in pod `namespace/pod` (never raises on the command's exit code): the
        command runs inside the pod's network namespace, so `curl` is the pod's own traffic."""
        args = ["-n", namespace, "exec", *(["-i"] if input is not None else []), pod]
        if container:
            args += ["-c", container]
        return self.kubectl_run(*args, "--", *cmd, input=input, check=False, timeout=timeout)

    def curl(self, namespace: str, pod: str, url: str, *args: str, timeout: float = 10) -> tuple[int, str, str]:
        """curl URL from the pod; returns (curl's exit code, HTTP status or 0, body). The body of
        a lab echo server is JSON: see echo()."""
        proc = self.exec(namespace, pod, "curl", "-sS", "-m", str(timeout), "-w", "\n%{http_code}", *args, url,
                         timeout=timeout + 30)
        body, _sep, code = proc.stdout.rpartition("\n")
        return proc.returncode, int(code) if code.strip().isdigit() else 0, body + proc.stderr

    def envoy_stats(self, namespace: str, pod: str, filter_regex: str = "") -> dict[str, int]:
        """The counters and gauges of the pod's Envoy (admin /stats on 127.0.0.1:15000 inside the
        pod, read with the pod's curl through the istio-proxy container)."""
        path = "/stats" + (f"?filter={filter_regex}" if filter_regex else "")
        proc = self.exec(namespace, pod, "curl", "-sS", "-m", "5", f"http://127.0.0.1:15000{path}",
                         container="istio-proxy")
        if proc.returncode != 0:
            raise AssertionError(f"envoy stats of {namespace}/{pod}: {proc.stderr}")
        stats = {}
        for line in proc.stdout.splitlines():
            name, _sep, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                stats[name] = int(value)
        return stats

    def internet_requests(self, since: float = 0.0) -> list[dict]:
        """Every request the lab internet's echo servers answered at or after `since` (a
        time.time() value), oldest first: the echo() fields plus "time". Proof that a blocked
        request never reached the server, whatever the client saw."""
        path = Path(self.state, "dataplane", "requests.log")
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("time", 0) >= since:
                out.append(entry)
        return out

    def wait_ready(self, namespace: str, *pods: str, timeout: float = 120) -> None:
        """Wait for pods to be Ready (with the data plane: their proxy's /healthz/ready)."""
        self.kubectl_run("-n", namespace, "wait", "--for=condition=Ready", *[f"pod/{p}" for p in pods],
                         f"--timeout={int(timeout)}s", timeout=timeout + 30)

    def wait_for(self, what: str, predicate, timeout: float = 60, interval: float = 1.0):
        """Poll predicate() until it returns a true value (returned) or fail after timeout."""
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)
