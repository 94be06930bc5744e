# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/k8s_client.py (and k8s_module.connect) through the real kubernetes library and
kubernetes.core against a small HTTP server on 127.0.0.1 that answers like an API server: what
goes on the wire (method, path, query, headers, body), how answers and failures come back, and
the exec request of the probe runner. Run with the newest client (the project venv) and with
the oldest we claim (make test-oldest-client); skipped where the library is missing (ansible-test
units)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import tempfile
import threading
import time

import pytest

kubernetes = pytest.importorskip("kubernetes")
import kubernetes.stream  # noqa: E402 pylint: disable=wrong-import-position

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from urllib.parse import parse_qsl, urlsplit  # noqa: E402

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import api_error  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils import k8s_client as kc  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils import k8s_module  # noqa: E402
from ansible_collections.meshguard.egress.plugins.module_utils.verify import runner  # noqa: E402

TOKEN = "meshguard-unit-token-7f3a"
DISCOVERY = {
    ("GET", "/version"): (200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}),
    ("GET", "/api"): (200, {"kind": "APIVersions", "versions": ["v1"]}),
    ("GET", "/apis"): (200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
}


def status(code, reason, message):
    return (code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                   "message": message, "code": code})


class FakeApiServer:
    """Answers (method, path) from `routes` ((status, JSON) or a callable(request) returning one);
    records every request but discovery as {method, path, query, headers, body}."""

    def __init__(self):
        self.routes = dict(DISCOVERY)
        self.requests = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = {"method": self.command, "path": url.path, "query": dict(parse_qsl(url.query)),
                           "headers": dict((k.lower(), v) for k, v in self.headers.items()),
                           "body": json.loads(raw) if raw else None}
                route = server.routes.get((self.command, url.path))
                if (self.command, url.path) not in DISCOVERY:
                    server.requests.append(request)
                    time.sleep(server.delay)
                code, payload = route(request) if callable(route) else (route or status(404, "NotFound", "no route"))
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

            def log_message(self, *args):  # quiet
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that gave up: not our concern
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    # The discovery caches of kubernetes and kubernetes.core go to tempfile.gettempdir().
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake = FakeApiServer()
    yield fake
    fake.stop()


@pytest.fixture
def client(server):
    return k8s_module.connect({"host": server.url, "api_key": TOKEN}, timeout=5)


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_get_is_a_plain_json_request_with_the_token(server, client):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"}}
    server.routes[("GET", "/api/v1/namespaces/istio-system/configmaps/istio")] = (200, cm)
    assert client.get("v1", "ConfigMap", "istio", "istio-system") == cm
    (sent,) = server.requests
    assert sent["headers"]["authorization"] == "Bearer " + TOKEN
    assert sent["headers"]["accept"] == "application/json"
    assert client.requests == 1


def test_a_missing_object_is_none_and_an_error_keeps_status_and_message(server, client):
    assert client.get("v1", "ConfigMap", "nope", "default") is None
    server.routes[("GET", "/api/v1/namespaces/default/configmaps/locked")] = status(
        403, "Forbidden", 'configmaps "locked" is forbidden: User "robot" cannot get resource')
    with pytest.raises(kc.K8sApiError) as info:
        client.get("v1", "ConfigMap", "locked", "default")
    assert info.value.status == 403 and info.value.forbidden
    assert info.value.api_message == 'configmaps "locked" is forbidden: User "robot" cannot get resource'
    assert "HTTP 403 Forbidden" in str(info.value)


def test_apply_is_a_server_side_apply_with_our_field_manager(server, client):
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
           "metadata": {"name": "baidu", "namespace": "istio-system"}, "spec": {"hosts": ["www.baidu.com"]}}
    path = "/apis/networking.istio.io/v1/namespaces/istio-system/serviceentries/baidu"
    server.routes[("PATCH", path)] = lambda request: (200, request["body"])
    assert client.apply(obj, force=True, dry_run=True) == obj
    (sent,) = server.requests
    assert sent["headers"]["content-type"] == "application/apply-patch+yaml"
    assert sent["query"] == {"fieldManager": "meshguard-egress", "fieldValidation": "Strict", "force": "true",
                             "dryRun": "All"}
    assert sent["body"] == obj


def test_patch_create_and_delete_send_their_content_types_and_bodies(server, client):
    base = "/api/v1/namespaces/istio-system/configmaps"
    server.routes[("PATCH", base + "/istio")] = lambda request: (200, {"patched": request["body"]})
    server.routes[("POST", base)] = lambda request: (201, request["body"])
    server.routes[("DELETE", base + "/istio")] = (200, {"kind": "Status", "status": "Success"})
    assert client.patch("v1", "ConfigMap", "istio", "istio-system", {"data": {"a": "b"}}) == {
        "patched": {"data": {"a": "b"}}}
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "7"}]
    client.patch("v1", "ConfigMap", "istio", "istio-system", ops, patch_type="json")
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "istio-system"}})
    assert client.delete("v1", "ConfigMap", "istio", "istio-system", uid="u-1") is True
    assert [(r["method"], r["headers"].get("content-type"), r["body"]) for r in server.requests] == [
        ("PATCH", "application/merge-patch+json", {"data": {"a": "b"}}),
        ("PATCH", "application/json-patch+json", ops),
        ("POST", "application/json",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "istio-system"}}),
        ("DELETE", "application/json", {"apiVersion": "v1", "kind": "DeleteOptions",
                                        "propagationPolicy": "Background", "preconditions": {"uid": "u-1"}}),
    ]
    assert client.delete("v1", "ConfigMap", "gone", "istio-system") is False


def test_list_follows_continue_tokens_and_unknown_kinds_are_discovered_once(server, client):
    def pods(request):
        if request["query"].get("continue") == "page2":
            return 200, {"items": [{"metadata": {"name": "b"}}], "metadata": {}}
        return 200, {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "page2"}}
    server.routes[("GET", "/apis/example.com/v1")] = (200, {"resources": [
        {"name": "widgets", "kind": "Widget", "namespaced": True}, {"name": "widgets/status", "kind": "Widget"}]})
    server.routes[("GET", "/apis/example.com/v1/namespaces/ns/widgets")] = pods
    assert [p["metadata"]["name"] for p in client.list("example.com/v1", "Widget", "ns", "app=x")] == ["a", "b"]
    client.list("example.com/v1", "Widget", "ns")
    assert [(r["path"], r["query"]) for r in server.requests] == [
        ("/apis/example.com/v1", {}),
        ("/apis/example.com/v1/namespaces/ns/widgets", {"limit": "500", "labelSelector": "app=x"}),
        ("/apis/example.com/v1/namespaces/ns/widgets", {"limit": "500", "labelSelector": "app=x", "continue": "page2"}),
        ("/apis/example.com/v1/namespaces/ns/widgets", {"limit": "500"}),
        ("/apis/example.com/v1/namespaces/ns/widgets", {"limit": "500", "continue": "page2"}),
    ]


def test_concurrent_requests_on_one_client(server, client):
    server.routes[("GET", "/api/v1/namespaces/ns/configmaps/cm")] = lambda request: (
        200, {"metadata": {"name": request["query"].get("n", "")}})
    results = {}

    def worker(index):
        for n in range(10):
            results[(index, n)] = client.request("GET", "/api/v1/namespaces/ns/configmaps/cm", {"n": "%d-%d" % (index, n)})
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[key]["metadata"]["name"] == "%d-%d" % key for key in results) and len(results) == 80
    assert client.requests == 80


def test_a_server_that_stops_answering_is_status_0_and_did_not_answer(server, client):
    server.stop()
    with pytest.raises(kc.K8sApiError) as info:
        client.get("v1", "ConfigMap", "istio", "istio-system")
    assert info.value.status == 0 and "refused" in str(info.value).lower()
    assert "did not answer" in api_error(info.value, "get ConfigMap istio-system/istio")


def test_a_slow_server_times_out_as_no_answer(server, client):
    client.timeout = 1
    server.delay = 6
    started = time.monotonic()
    with pytest.raises(kc.K8sApiError) as info:
        client.request("GET", "/api/v1/namespaces")
    assert info.value.status == 0 and "timed out" in str(info.value).lower()
    # urllib3 retries a read of a GET three times (the library's default): 4 x 1 s, not 6 s per try
    assert time.monotonic() - started < 5.5


def test_an_answer_that_is_not_json_is_an_api_error(server, client):
    server.routes[("GET", "/healthz")] = (200, b"<html>proxy login</html>")
    with pytest.raises(kc.K8sApiError) as info:
        client.request("GET", "/healthz")
    assert info.value.status == 200 and "not JSON" in str(info.value)


@pytest.mark.parametrize("fault", [
    TypeError("ApiClient.call_api() got an unexpected keyword argument 'path_params'"),
    AttributeError("'ApiClient' object has no attribute 'request'"),
    ImportError("cannot import name 'ApiResponse'"),
])
def test_a_library_fault_is_reported_as_such_with_the_library_version(server, client, fault):
    def broken(*args, **kwargs):
        raise fault
    client.dynamic_client.request = broken
    with pytest.raises(kc.K8sLibraryError) as info:
        client.get("v1", "ConfigMap", "istio", "istio-system")
    text = str(info.value)
    assert "kubernetes Python library %s failed" % kubernetes.__version__ in text
    assert type(fault).__name__ in text and str(fault) in text and "did not answer" not in text
    assert info.value.version == kubernetes.__version__ and type(fault).__name__ in info.value.traceback
    # the apply engine catches K8sApiError only: a library fault is not turned into "did not answer"
    assert not isinstance(info.value, kc.K8sApiError)


def test_connect_reports_an_unreachable_server_and_an_old_library(monkeypatch, server):
    with pytest.raises(kc.ClientError) as info:
        k8s_module.connect({"host": "http://127.0.0.1:%d" % closed_port(), "api_key": TOKEN})
    assert "Could not create the Kubernetes API client" in str(info.value)
    monkeypatch.setattr(kc, "kubernetes_version", lambda: "24.2.0")
    with pytest.raises(kc.K8sLibraryError) as info:
        k8s_module.connect({"host": server.url, "api_key": TOKEN})
    assert str(info.value) == ("the kubernetes Python library 24.2.0 is older than %s, the oldest meshguard.egress "
                               "supports (pip install 'kubernetes>=%s')" % (kc.MIN_KUBERNETES, kc.MIN_KUBERNETES))


def test_the_library_version_check():
    assert kc.library_version_problem("24.2.0") and kc.library_version_problem("25.2.0a1")
    assert kc.library_version_problem(kc.MIN_KUBERNETES) is None
    assert kc.library_version_problem("37.0.2") is None and kc.library_version_problem("100.0.0") is None


def test_the_probe_runner_exec_request_on_the_clients_connection(server, client):
    """The exec path (kubernetes.stream on CoreV1Api.connect_get_namespaced_pod_exec, one ApiClient
    per thread) sends the websocket upgrade to the pod's exec URL with the token; the fake server
    refuses it (403), which the runner reports as the exec status."""
    api = runner.thread_api_factory(client.api_client)()
    assert api.api_client is not client.api_client
    target = {"pod": "p", "namespace": "ns", "container": "istio-proxy"}
    server.routes[("GET", "/api/v1/namespaces/ns/pods/p/exec")] = status(403, "Forbidden", "exec forbidden")
    outcome = runner.exec_once(api, kubernetes.stream.stream, target, ["curl", "-sS", "http://x/"], 5)
    assert outcome.exec_status == 403
    (sent,) = server.requests
    assert sent["headers"]["authorization"] == "Bearer " + TOKEN
    assert sent["headers"]["upgrade"].lower() == "websocket"
    assert sent["query"]["container"] == "istio-proxy" and sent["query"]["command"] == "http://x/"
