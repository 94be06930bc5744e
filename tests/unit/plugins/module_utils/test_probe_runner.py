# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/verify/runner.py on a fake exec API: the error channel, exec failures, the
per-probe deadline, concurrency, pod resolution and the whole verify_run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.verify import runner as pr
from ansible_collections.meshguard.egress.plugins.module_utils.verify.options import normalize_options
from ansible_collections.meshguard.egress.plugins.module_utils.verify.outcome import classify
from ansible_collections.meshguard.egress.plugins.module_utils.builder_probe import probe_pod_name

SEED = {"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                   "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]}]}
SUCCESS = json.dumps({"metadata": {}, "status": "Success"})


def exit_status(code):
    return json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                       "message": "command terminated with non-zero exit code: exit status %d" % code,
                       "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})


class FakeWS:
    """Enough of kubernetes.stream.ws_client.WSClient: frames arrive one update() at a time."""

    def __init__(self, frames, error, delay=0.0, hang=False):
        self.frames = list(frames)  # [(channel, text)]
        self.error = error
        self.delay = delay
        self.hang = hang
        self.channels = {}
        self.open = True
        self.closed = False

    def is_open(self):
        return self.open

    def update(self, timeout=0):
        if self.hang:
            time.sleep(min(timeout, 0.05))
            return
        if self.delay:
            time.sleep(self.delay)
            self.delay = 0
        if self.frames:
            channel, text = self.frames.pop(0)
            self.channels[channel] = self.channels.get(channel, "") + text
        else:
            if self.error is not None:
                self.channels[3] = self.error
            self.open = False

    def _read(self, channel):
        return self.channels.pop(channel, "")

    def peek_stdout(self):
        return bool(self.channels.get(1))

    def read_stdout(self):
        return self._read(1)

    def peek_stderr(self):
        return bool(self.channels.get(2))

    def read_stderr(self):
        return self._read(2)

    def read_channel(self, channel):
        return self._read(channel)

    def close(self):
        self.closed = True


class HandshakeError(Exception):
    """What kubernetes.stream raises when the websocket upgrade is refused."""

    def __init__(self, reason):
        super(HandshakeError, self).__init__(reason)
        self.status = 0
        self.reason = reason


class FakeExec:
    """A `stream` function: answers per (pod, url) from a script; records concurrency."""

    def __init__(self, script):
        self.script = script
        self.calls = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def __call__(self, fn, pod, namespace, container=None, command=None, **kwargs):
        assert fn == "exec-fn" and kwargs["_preload_content"] is False and kwargs["stdin"] is False
        with self.lock:
            self.calls.append((namespace, pod, container, command))
        answer = self.script(pod, command[-1])
        if isinstance(answer, Exception):
            raise answer
        ws = answer
        outer = self

        class Counting(FakeWS):
            def update(self, timeout=0):
                with outer.lock:
                    outer.running += 1
                    outer.max_running = max(outer.max_running, outer.running)
                try:
                    FakeWS.update(self, timeout)
                finally:
                    with outer.lock:
                        outer.running -= 1
        counted = Counting(ws.frames, ws.error, ws.delay, ws.hang)
        return counted


class FakeApi:
    connect_get_namespaced_pod_exec = "exec-fn"


def _curl(code, body="", rc=0):
    frames = [(1, body), (1, "\nmeshguard-probe: http_code=%s tls=0.000000 ip=10.0.0.7\n" % code)]
    return FakeWS(frames, SUCCESS if rc == 0 else exit_status(rc))


TARGET = {"pod": "p", "namespace": "bookinfo", "container": "app"}


def test_parse_error_channel():
    assert pr.parse_error_channel(SUCCESS) == (0, None)
    assert pr.parse_error_channel(exit_status(7)) == (7, None)
    rc, message = pr.parse_error_channel(json.dumps({"status": "Failure", "reason": "InternalError",
                                                     "message": 'exec: "curl": executable file not found'}))
    assert rc is None and "executable file not found" in message
    assert pr.parse_error_channel("")[0] is None
    assert pr.parse_error_channel("{not json")[0] is None


def test_exec_failure_reads_the_handshake_status():
    status, message = pr.exec_failure(HandshakeError("Handshake status 403 Forbidden -+-+- {} -+-+- b'{\"kind\":"
                                                     "\"Status\",\"message\":\"pods \\\"p\\\" is forbidden\"}'"))
    assert status == 403 and "forbidden" in message
    assert pr.exec_failure(HandshakeError("Handshake status 404 Not Found"))[0] == 404
    assert pr.exec_failure(ValueError("boom")) == (None, "boom")


def test_exec_once_collects_output_and_exit_code():
    fake = FakeExec(lambda pod, url: _curl("200", "hello"))
    out = pr.exec_once(FakeApi(), fake, TARGET, ["curl", "http://x/"], 5)
    assert out["rc"] == 0 and out["stdout"].startswith("hello\n") and "exec_error" not in out
    assert classify({"scheme": "http", "via_gateway": True}, out) == ("allowed", "HTTP 200")
    fake = FakeExec(lambda pod, url: FakeWS([(2, "curl: (6) Could not resolve host: x\n")], exit_status(6)))
    out = pr.exec_once(FakeApi(), fake, TARGET, ["curl", "http://x/"], 5)
    assert (out["rc"], out["stderr"]) == (6, "curl: (6) Could not resolve host: x\n")
    assert fake.calls == [("bookinfo", "p", "app", ["curl", "http://x/"])]


def test_exec_once_deadline_is_broken_not_blocked():
    fake = FakeExec(lambda pod, url: FakeWS([], None, hang=True))
    start = time.monotonic()
    out = pr.exec_once(FakeApi(), fake, TARGET, ["curl", "http://x/"], 1, grace=0.3)
    assert 1.2 <= time.monotonic() - start < 3
    assert out["deadline"] == 1.3 and "rc" not in out
    assert classify({"scheme": "http"}, out)[0] == "broken"


def test_exec_once_forbidden():
    fake = FakeExec(lambda pod, url: HandshakeError("Handshake status 403 Forbidden"))
    out = pr.exec_once(FakeApi(), fake, TARGET, ["curl", "http://x/"], 5)
    assert out["exec_status"] == 403
    assert classify({"scheme": "http"}, out)[0:1] == ("broken",)


def test_run_concurrently_runs_in_parallel_and_bounds_concurrency():
    fake = FakeExec(lambda pod, url: FakeWS([(1, "\nmeshguard-probe: http_code=200 tls=0.000000 ip=\n")], SUCCESS,
                                            delay=0.2))
    jobs = [(i, TARGET, ["curl", "http://h%d/" % i]) for i in range(20)]
    start = time.monotonic()
    out = pr.run_concurrently(jobs, 10, 5, FakeApi, stream=fake)
    elapsed = time.monotonic() - start
    assert sorted(out) == list(range(20)) and all(o["rc"] == 0 for o in out.values())
    # 20 probes of 0.2 s on 10 threads: two rounds, not twenty
    assert elapsed < 2.0, elapsed
    assert 2 <= fake.max_running <= 10


def test_run_concurrently_gives_up_on_a_hung_exec_without_holding_the_rest():
    def script(pod, url):
        if url.endswith("h0/"):
            return FakeWS([], None, hang=True)
        return _curl("200")
    jobs = [(i, TARGET, ["curl", "http://h%d/" % i]) for i in range(4)]
    out = pr.run_concurrently(jobs, 4, 1, FakeApi, stream=FakeExec(script), grace=0.2)
    assert out[0]["deadline"] == 1.2
    assert all(out[i]["rc"] == 0 for i in (1, 2, 3))


class FakeClient:
    def __init__(self, pods, forbidden=False, accounts=()):
        self.pods = pods
        self.accounts = set(accounts)
        self.forbidden = forbidden
        self.listed = []

    def list(self, api_version, kind, namespace=None, label_selector=None):
        if self.forbidden:
            raise K8sApiError("GET", "/api/v1/namespaces/%s/pods" % namespace, 403, "Forbidden",
                              {"message": "pods is forbidden"})
        self.listed.append((namespace, label_selector))
        want = dict(kv.split("=") for kv in label_selector.split(","))
        return [p for p in self.pods if p["metadata"]["namespace"] == namespace
                and all(p["metadata"].get("labels", {}).get(k) == x for k, x in want.items())]

    def get(self, api_version, kind, name, namespace=None):
        if kind == "ServiceAccount":
            return {"metadata": {"name": name}} if (namespace, name) in self.accounts else None
        for pod in self.pods:
            if pod["metadata"]["name"] == name and pod["metadata"]["namespace"] == namespace:
                return pod
        return None


def _pod(name, namespace, sa, labels=None, container="app", sidecar=True):
    containers = [{"name": container}] + ([{"name": "istio-proxy"}] if sidecar else [])
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"serviceAccountName": sa, "containers": containers}, "status": {"phase": "Running"}}


def _setup(**opts):
    policy = normalize_policy(dict(SEED))
    return policy, normalize_options(policy, opts)


def test_verify_run_end_to_end_on_fakes():
    policy, options = _setup(sources=[{"namespace": "bookinfo", "service_account": "bookinfo-productpage",
                                       "labels": {"app": "productpage"}}], timeout=3)
    probe_pod = probe_pod_name(policy, "bookinfo", "default")
    client = FakeClient([_pod("productpage-1", "bookinfo", "bookinfo-productpage", {"app": "productpage"}),
                         _pod(probe_pod, "bookinfo", "default", container="probe")])

    def script(pod, url):
        if pod == probe_pod:
            return _curl("403", "RBAC: access denied")
        if url == "http://www.baidu.com/":
            return _curl("200", "<html>")
        if url == "http://example.com/":
            return _curl("502")
        return FakeWS([(1, "\nmeshguard-probe: http_code=000 tls=0.000000 ip=\n"), (2, "curl: (35) reset")],
                      exit_status(35))
    fake = FakeExec(script)
    result = pr.verify_run(policy, options, client=client, make_api=FakeApi, stream=fake)
    assert result["passed"] is True, result["mismatches"]
    assert [r["observed"] for r in result["results"]] == ["allowed", "denied", "blocked", "blocked"]
    assert client.listed == [("bookinfo", "app=productpage")]
    assert sorted(set((c[1], c[2]) for c in fake.calls)) == [(probe_pod, "probe"), ("productpage-1", "app")]
    row = result["results"][0]
    assert (row["pod"], row["container"], row["exit_code"], row["http_status"], row["response"]) == \
        ("productpage-1", "app", 0, 200, "<html>")
    assert row["command"].startswith("curl -sS --max-time 3 ")
    assert result["report"]["junit"].startswith("<?xml")


def test_verify_run_broken_probes_are_not_executed():
    policy, options = _setup(sources=[{"namespace": "bookinfo", "service_account": "bookinfo-productpage",
                                       "labels": {"app": "productpage"}}])
    # productpage without sidecar; no probe pod at all
    client = FakeClient([_pod("productpage-1", "bookinfo", "bookinfo-productpage", {"app": "productpage"},
                              sidecar=False)])
    fake = FakeExec(lambda pod, url: _curl("403", "RBAC: access denied"))
    result = pr.verify_run(policy, options, client=client, make_api=FakeApi, stream=fake)
    assert fake.calls == []
    assert [r["observed"] for r in result["results"]] == ["broken"] * 4
    assert "no istio-proxy sidecar" in result["results"][0]["cause"]
    assert result["results"][1]["cause"] == ("service account bookinfo/default does not exist, so its probe pod could "
                                             "not be created: create it, or give a source (existing pods) for this "
                                             "identity")
    assert result["passed"] is False and all(m.startswith("PROBE BROKEN") for m in result["mismatches"])
    # the account exists, the pod does not: said so
    client.accounts.add(("bookinfo", "default"))
    result = pr.verify_run(policy, options, client=client, make_api=FakeApi, stream=fake)
    assert result["results"][1]["cause"].startswith("no pod named meshguard-probe-default-")


def test_verify_run_forbidden_pod_listing_is_broken():
    policy, options = _setup(sources=[{"namespace": "bookinfo", "labels": {"app": "productpage"}}],
                             probe_pods=False)
    result = pr.verify_run(policy, options, client=FakeClient([], forbidden=True), make_api=FakeApi,
                           stream=FakeExec(lambda pod, url: _curl("200")))
    causes = [r["cause"] for r in result["results"]]
    assert causes[0].startswith("listing pods forbidden by RBAC in namespace bookinfo")


def test_verify_run_without_probing_lists_the_matrix_and_probe_pods():
    policy, options = _setup()
    result = pr.verify_run(policy, options, probe=False)
    assert "results" not in result and len(result["matrix"]) == 4
    assert [p["metadata"]["namespace"] for p in result["probe_pods"]] == ["bookinfo", "bookinfo"]
    assert result["planned"][0].split() == ["case", "request", "expected"]
