# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs verify's probes: finds the pod for each identity and executes the curl commands
concurrently over the Kubernetes exec API (``kubernetes.stream.stream`` on
``connect_get_namespaced_pod_exec``), each with its own deadline, recording an ``Outcome`` each.

``verify_run`` is the whole run the access_probe module calls: matrix.py's cases, probe_pods.py's
pods, outcome.py's commands and judgement, report.py's report. The client (``client``: get and
list, k8s_client.py) and the exec API (``make_api``, ``stream``) are passed in.

Thread safety: ``kubernetes.stream.stream`` swaps a method of the ApiClient for the duration of a
call (``ApiClient.request`` up to kubernetes 36, ``ApiClient.call_api`` from 37 on), so two exec
calls on one ApiClient race. Every worker thread therefore has its own
ApiClient built on the shared Configuration.

Not for: deciding what to probe or what a result means (the pure rooms above).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import threading
import time

try:
    import queue
except ImportError:  # pragma: no cover - Python 2
    import Queue as queue  # noqa: N813

from ansible_collections.meshguard.egress.plugins.module_utils.builder_probe import PROBE_CONTAINER, probe_pod_name
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError
from ansible_collections.meshguard.egress.plugins.module_utils.verify.matrix import build_matrix
from ansible_collections.meshguard.egress.plugins.module_utils.verify.outcome import Outcome, curl_command
from ansible_collections.meshguard.egress.plugins.module_utils.verify.probe_pods import pick_pod, plan_probe_pods, \
    probe_identities, probe_pod_selector, source_for
from ansible_collections.meshguard.egress.plugins.module_utils.verify.report import report, result_row, table

# Seconds the exec call may take beyond curl's own --max-time before the probe counts as broken.
EXEC_GRACE = 10
ERROR_CHANNEL = 3
_HANDSHAKE_RE = re.compile(r"Handshake status (\d{3})")


def parse_error_channel(text):
    """(exit code or None, message) from the exec error channel (a metav1.Status as JSON)."""
    if not text:
        return None, "the exec stream closed without a status"
    try:
        status = json.loads(text)
    except ValueError:
        return None, "unreadable exec status: %s" % text[:200]
    if status.get("status") == "Success":
        return 0, None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message")), None
            except (TypeError, ValueError):
                break
    return None, status.get("message") or text[:200]


def exec_failure(exc):
    """(HTTP status or None, message) of an exception raised when the exec call could not start."""
    status = getattr(exc, "status", None) or None
    text = getattr(exc, "reason", None) or str(exc)
    match = _HANDSHAKE_RE.search(text)
    if match:
        status = int(match.group(1))
    body = getattr(exc, "body", None)
    if body:
        text = "%s %s" % (text, body if isinstance(body, str) else body.decode("utf-8", "replace"))
    return status, " ".join(text.split())[:400]


def exec_once(core_api, stream, target, argv, timeout, grace=EXEC_GRACE):
    """Run argv in the target container; return the Outcome classify() reads."""
    start = time.monotonic()
    try:
        resp = stream(core_api.connect_get_namespaced_pod_exec, target["pod"], target["namespace"],
                      container=target["container"], command=argv, stderr=True, stdin=False, stdout=True,
                      tty=False, _preload_content=False)
    except Exception as exc:  # ApiException(status=0, reason="Handshake status 403 ...") and friends
        status, error = exec_failure(exc)
        return Outcome(timeout=timeout, exec_status=status, exec_error=error, duration=time.monotonic() - start)
    stdout, stderr, recorded = [], [], {}
    try:
        if not _read_until_closed(resp, start + timeout + grace, stdout, stderr):
            recorded["deadline"] = timeout + grace
        stdout.append(resp.read_stdout() if resp.peek_stdout() else "")
        stderr.append(resp.read_stderr() if resp.peek_stderr() else "")
        if "deadline" not in recorded:
            recorded["rc"], message = parse_error_channel(resp.read_channel(ERROR_CHANNEL))
            if message:
                recorded["exec_error"] = message
    except Exception as exc:  # the connection broke while reading
        recorded["exec_status"], recorded["exec_error"] = exec_failure(exc)
    finally:
        try:
            resp.close()
        except Exception:  # pylint: disable=broad-except
            pass
    return Outcome(timeout=timeout, stdout="".join(stdout), stderr="".join(stderr),
                   duration=time.monotonic() - start, **recorded)


def _read_until_closed(resp, deadline, stdout, stderr):
    """Collect output while the exec stream is open; False when `deadline` (monotonic) passed first."""
    while resp.is_open():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        resp.update(timeout=min(1.0, left))
        if resp.peek_stdout():
            stdout.append(resp.read_stdout())
        if resp.peek_stderr():
            stderr.append(resp.read_stderr())
    return True


def _kubernetes():
    from kubernetes import client as k8s  # pylint: disable=import-outside-toplevel
    from kubernetes.stream import stream  # pylint: disable=import-outside-toplevel
    return k8s, stream


def thread_api_factory(api_client):
    """A function returning a fresh CoreV1Api on the same configuration and headers (one per thread)."""
    k8s, dummy = _kubernetes()

    def make():
        own = k8s.ApiClient(configuration=api_client.configuration)
        own.default_headers.update(getattr(api_client, "default_headers", {}) or {})
        return k8s.CoreV1Api(own)
    return make


def run_concurrently(jobs, concurrency, timeout, make_api, stream=None, grace=EXEC_GRACE):
    """Run jobs [(key, target, argv)] on `concurrency` daemon threads; return {key: Outcome}.

    A job whose exec call never returns (a hung API server) does not hold up the others past the
    overall budget: its outcome is a deadline (probe broken)."""
    if stream is None:
        dummy, stream = _kubernetes()
        # The websocket handshake has no timeout of its own: bound it (and every socket read).
        import websocket  # pylint: disable=import-outside-toplevel
        websocket.setdefaulttimeout(timeout + grace)
    todo = queue.Queue()
    for job in jobs:
        todo.put(job)
    results = {}
    lock = threading.Lock()
    done = threading.Event()

    def worker():
        api = None
        while True:
            try:
                key, target, argv = todo.get_nowait()
            except queue.Empty:
                return
            try:
                if api is None:
                    api = make_api()
                outcome = exec_once(api, stream, target, argv, timeout, grace)
            except Exception as exc:  # pylint: disable=broad-except
                status, message = exec_failure(exc)
                outcome = Outcome(exec_status=status, exec_error=message, duration=0.0)
            with lock:
                results[key] = outcome
                if len(results) == len(jobs):
                    done.set()

    threads = [threading.Thread(target=worker, name="meshguard-probe-%d" % i)
               for i in range(max(1, min(concurrency, len(jobs))))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    if jobs:
        rounds = -(-len(jobs) // max(1, min(concurrency, len(jobs))))
        done.wait(rounds * (timeout + grace) + grace)
    with lock:
        for key, dummy, dummy2 in jobs:
            results.setdefault(key, Outcome(deadline=timeout + grace, timeout=timeout))
        return dict(results)


def resolve_targets(client, policy, options, identities):
    """{(namespace, service_account): (target, problem)} for each identity the cases run as."""
    found = {}
    for namespace, service_account in identities:
        src = source_for(options, namespace, service_account)
        if src is None and not options.probe_pods:
            found[(namespace, service_account)] = (None, (
                "no source for identity %s/%s and probe_pods is off: add a source (labels or pod)"
                % (namespace, service_account)))
            continue
        try:
            pods, where = _candidate_pods(client, policy, src, namespace, service_account)
        except K8sApiError as exc:
            what = "listing pods forbidden by RBAC" if exc.forbidden else "reading pods failed"
            found[(namespace, service_account)] = (None, "%s in namespace %s: %s" % (what, namespace, exc))
            continue
        target, problem = pick_pod(pods, namespace, service_account, where,
                                   (src or {}).get("container") or (None if src else PROBE_CONTAINER))
        if src is None and not pods:
            problem = _missing_probe_pod(client, namespace, service_account) or problem
        found[(namespace, service_account)] = (target, problem)
    return found


def _candidate_pods(client, policy, src, namespace, service_account):
    """(pods, how they were found) for an identity: the source's selector or pod, else its probe pod."""
    if src is not None and src.get("labels"):
        selector = ",".join("%s=%s" % (k, v) for k, v in sorted(src["labels"].items()))
        return client.list("v1", "Pod", namespace, label_selector=selector), "matching %s" % selector
    name = src["pod"] if src is not None else probe_pod_name(policy, namespace, service_account)
    pod = client.get("v1", "Pod", name, namespace)
    return [pod] if pod else [], "named %s" % name


def _missing_probe_pod(client, namespace, service_account):
    """Why a probe pod is missing, when the cluster can tell: its service account does not exist."""
    try:
        if client.get("v1", "ServiceAccount", service_account, namespace) is None:
            return ("service account %s/%s does not exist, so its probe pod could not be created: create it, "
                    "or give a source (existing pods) for this identity" % (namespace, service_account))
    except K8sApiError:
        pass
    return None


def verify_run(policy, options, client=None, make_api=None, stream=None, concurrency=10, probe=True):
    """Build the matrix and, with probe=True, run it. Returns the module's result (without `changed`)."""
    cases, excluded, notes = build_matrix(policy, options)
    result = {
        "matrix": [case.as_dict() for case in cases], "excluded": excluded, "notes": notes,
        "planned": table(cases, planned=True),
        "probe_pods": plan_probe_pods(policy, options, cases),
        "probe_pod_selector": probe_pod_selector(policy),
    }
    if not probe:
        return result
    targets = resolve_targets(client, policy, options, probe_identities(cases))
    argvs = [curl_command(case, options.timeout) for case in cases]
    jobs = []
    for index, case in enumerate(cases):
        target, problem = targets[(case.namespace, case.service_account)]
        if problem is None:
            jobs.append((index, target, argvs[index]))
    started = time.monotonic()
    outcomes = run_concurrently(jobs, concurrency, options.timeout, make_api, stream) if jobs else {}
    elapsed = round(time.monotonic() - started, 3)
    rows = []
    for index, case in enumerate(cases):
        target, problem = targets[(case.namespace, case.service_account)]
        outcome = Outcome(pod_problem=problem) if problem else outcomes[index]
        rows.append(result_row(case, target, argvs[index], outcome))
    rep = report(policy, rows, excluded, notes)
    rep["json"]["elapsed"] = elapsed
    result.update({
        "results": rows, "passed": rep["summary"]["passed"], "summary": rep["summary"],
        "mismatches": rep["mismatches"], "elapsed": elapsed,
        "report": {"text": rep["text"], "json": rep["json"], "junit": rep["junit"]},
    })
    return result
