# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One probe: the curl command a case runs, what came back (the ``Outcome`` record) and the
judgement of it.

* ``curl_command(case, timeout)`` is the argv a probe pod runs for a case: the body, then a
  ``-w`` marker line (``parse_curl_output`` reads it back).
* ``classify(case, outcome)`` turns an Outcome into one of ``allowed`` / ``denied`` /
  ``blocked`` / ``unexpected`` / ``broken`` and a cause. A broken probe (no pod, no sidecar,
  no curl, exec refused) is never "denied". ``verdict`` compares that with the expectation.

A case is read by key (a Case, a result row or a plain dict with the case's keys all work).
Not for: running the command (runner.py) or the report (report.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex

from ansible_collections.meshguard.egress.plugins.module_utils.verify.record import Record

OBSERVATIONS = ("allowed", "denied", "blocked", "unexpected", "broken")
# curl -w output, on a line of its own after the body; parsed by parse_curl_output().
CURL_MARKER = "meshguard-probe:"
_CURL_WRITE_OUT = "\\n" + CURL_MARKER + " http_code=%{http_code} tls=%{time_appconnect} ip=%{remote_ip}\\n"
_MARKER_RE = re.compile(re.escape(CURL_MARKER) + r" http_code=(\d{3}) tls=([0-9.]+) ip=(\S*)$")
RBAC_DENIED_BODY = "RBAC: access denied"
SNIPPET_CHARS = 240

# curl exit codes (curl(1) "EXIT CODES") and what they mean for a probe.
CURL_DNS = 6            # could not resolve host
CURL_CONNECT = 7        # failed to connect
CURL_TIMEOUT = 28       # operation timed out (--max-time)
CURL_RESETS = (35, 52, 56)  # TLS connect error, empty reply, failure receiving (reset)
NOT_FOUND_EXITS = (126, 127)  # shell/runtime: command not executable / not found
_NOT_FOUND_TEXT = ("executable file not found", "no such file or directory", "command not found", "not found in $path")


class Outcome(Record):
    """What the runner recorded for one probe; every field is optional (not recorded: None, and
    absent from the mapping).

    pod_problem: why no pod can run the probe (probe_pods.pick_pod); exec_status: HTTP status of a
    failed exec call (403 = forbidden by RBAC); exec_error: its message, or the error channel's;
    deadline: seconds after which the exec call was given up; rc: exit code from the error channel;
    stdout, stderr: what the command wrote; duration: seconds the exec took; timeout: curl's
    --max-time."""

    FIELDS = ("pod_problem", "exec_status", "exec_error", "deadline", "rc", "stdout", "stderr", "duration", "timeout")
    __slots__ = FIELDS
    REQUIRED = False


def url(case):
    default = 443 if case["scheme"] == "https" else 80
    port = "" if case["port"] == default else ":%d" % case["port"]
    return "%s://%s%s%s" % (case["scheme"], case["host"], port, case["path"])


def curl_command(case, timeout):
    """The argv a probe runs: body and a -w marker line to stdout, errors to stderr."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "--noproxy", "*", "-A", "meshguard-egress-verify",
            "-w", _CURL_WRITE_OUT]
    if case["scheme"] == "https":
        # Reachability, not the server's certificate, is under test (the gateway verifies it when it
        # originates TLS); a completed handshake means the connection got through.
        argv.append("--insecure")
    if case["method"] != "GET":
        argv += ["-X", case["method"]]
    argv.append(url(case))
    return argv


def command_text(argv):
    return " ".join(shlex.quote(a) for a in argv)


def parse_curl_output(stdout):
    """(http_code int or None, tls_handshake_seconds float or None, remote_ip, body) from a probe's stdout.

    The -w marker line is the last one curl writes; without it everything is body (and code/tls None)."""
    text = stdout or ""
    idx = text.rfind(CURL_MARKER)
    while idx > 0 and text[idx - 1] != "\n":
        idx = text.rfind(CURL_MARKER, 0, idx)
    match = _MARKER_RE.match(text[idx:].split("\n", 1)[0]) if idx >= 0 else None
    if match is None:
        return None, None, None, text
    body = text[:idx - 1] if idx > 0 else ""
    return (int(match.group(1)) or None), float(match.group(2)), match.group(3), body


def snippet(text, limit=SNIPPET_CHARS):
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def classify(case, outcome):
    """What a probe saw, as (observed, cause); `outcome` is an Outcome (or a mapping of its fields)."""
    outcome = Outcome.of(outcome)
    broken = _broken_probe(outcome)
    if broken:
        return "broken", broken
    code, tls, dummy, body = parse_curl_output(outcome.stdout)
    https = case["scheme"] == "https"
    rc = outcome.rc
    if rc == 0 and code is None and not https:
        why = snippet(outcome.stdout, 120)
        return "broken", "curl output not understood (not curl, or an old curl?): %s" % why
    if https and tls:
        return "allowed", "TLS handshake with the server completed%s" % (" (HTTP %d)" % code if code else "")
    if rc == 0 and not https:
        return _http_answer(code, body)
    return _curl_failure(case, outcome, https, code)


def _broken_probe(outcome):
    """Why the probe is broken before curl's own result counts (no pod, exec refused or hung, no
    curl, no exit code), or None."""
    if outcome.pod_problem:
        return outcome.pod_problem
    status = outcome.exec_status
    if status == 403:
        return "exec forbidden by RBAC (pods/exec create): %s" % snippet(outcome.exec_error, 160)
    if status == 404:
        return "pod not found when exec started: %s" % snippet(outcome.exec_error, 160)
    rc, stderr = outcome.rc, outcome.stderr or ""
    error_text = (stderr + " " + (outcome.exec_error or "")).lower()
    if rc in NOT_FOUND_EXITS or (rc is None and any(t in error_text for t in _NOT_FOUND_TEXT)) \
            or (rc not in (None, 0) and "executable file not found" in error_text):
        why = snippet(stderr or outcome.exec_error, 160)
        return "no curl in the container (exit %s): %s" % (rc, why)
    if outcome.exec_error:
        return "exec failed: %s" % snippet(outcome.exec_error, 200)
    if outcome.deadline:
        return ("the exec call did not return within %ss (curl's own --max-time had passed): "
                "the API server or node is not answering" % outcome.deadline)
    if rc is None:
        return "no exit code from the exec call"
    return None


def _http_answer(code, body):
    """(observed, cause) of a plain-HTTP probe that got an answer."""
    if 200 <= code < 400:
        return "allowed", "HTTP %d" % code
    if code == 403 and RBAC_DENIED_BODY in body:
        return "denied", "HTTP 403 %s" % RBAC_DENIED_BODY
    if code in (502, 503, 504):
        return "blocked", "HTTP %d %s" % (code, snippet(body, 80) or "(no body)")
    if code == 403:
        why = snippet(body, 80)
        return "unexpected", "HTTP 403 without '%s' (not the mesh's denial): %s" % (RBAC_DENIED_BODY, why)
    return "unexpected", "HTTP %d: %s" % (code, snippet(body, 80))


def _curl_failure(case, outcome, https, code):
    """(observed, cause) from curl's exit code when no answer (or, over TLS, no handshake) came back."""
    rc = outcome.rc
    if rc == CURL_DNS:
        return "blocked", "DNS resolution failed (curl exit 6)"
    if rc == CURL_CONNECT:
        return "blocked", "connection failed (curl exit 7)"
    if rc == CURL_TIMEOUT:
        return "blocked", "timeout: no answer within %ss (curl exit 28)" % outcome.get("timeout", "?")
    if rc in CURL_RESETS:
        if https and case.get("via_gateway"):
            return "denied", ("connection closed during the TLS handshake (curl exit %d): the gateway's RBAC "
                              "refuses a TLS connection this way" % rc)
        return "blocked", "connection reset / no TLS handshake (curl exit %d)" % rc
    if rc == 0:
        return "unexpected", "TLS probe got no handshake (HTTP %s)" % code
    return "broken", "curl exit %d: %s" % (rc, snippet(outcome.stderr, 160))


def verdict(case, observed):
    if observed == "broken":
        return "broken"
    return "pass" if observed == case["expect"] else "fail"
