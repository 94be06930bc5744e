# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/verify/ (options, matrix, reach, outcome, probe_pods, report): the matrix derived
from a policy, the probe command, the classification of recorded probe outputs, probe pods and
the report.

Expected matrices of the examples are written out by hand from the policies; the
expectations of every derived case are also checked against the emitted
AuthorizationPolicies by the independent evaluator (authz_eval.py), on the examples and on
random policies."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, assume, given, settings

from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources
from ansible_collections.meshguard.egress.plugins.module_utils.policy import PolicyError, normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.verify.matrix import build_matrix
from ansible_collections.meshguard.egress.plugins.module_utils.verify.options import (
    VerifyError, default_denied_identity, normalize_options, policy_from_built)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.outcome import (
    classify, command_text, curl_command, parse_curl_output, url)
from ansible_collections.meshguard.egress.plugins.module_utils.builder_probe import probe_pod_name
from ansible_collections.meshguard.egress.plugins.module_utils.verify.probe_pods import (
    is_probe_pod, pick_pod, plan_probe_pods, probe_identities, probe_pod_selector)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.reach import (
    inside_path, outside_path, path_matches)
from ansible_collections.meshguard.egress.plugins.module_utils.verify.report import report, result_row, table
from ansible_collections.meshguard.egress.tests.unit.conftest import load_example
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils import authz_eval
from ansible_collections.meshguard.egress.tests.unit.plugins.module_utils.test_security_invariant import policies
from ansible_collections.meshguard.egress.tests.unit.property_runs import examples

SEED = {"rules": [{"name": "baidu", "hosts": ["www.baidu.com"],
                   "allow": [{"namespace": "bookinfo", "service_account": "bookinfo-productpage"}]}]}


def _matrix(raw, **opts):
    policy = normalize_policy(copy.deepcopy(raw))
    options = normalize_options(policy, opts)
    return policy, options, build_matrix(policy, options)


def _names(raw, **opts):
    return [c["name"] for c in _matrix(raw, **opts)[2][0]]


# ---------------------------------------------------------------------------------------------
# The matrix, per example (written out by hand)

def test_seed_matrix():
    cases = dict((c["name"], c) for c in _matrix(SEED)[2][0])
    assert sorted(cases) == sorted([
        "allowed bookinfo/bookinfo-productpage -> www.baidu.com",
        "denied bookinfo/default -> www.baidu.com",
        "unlisted bookinfo/bookinfo-productpage -> example.com",
        "bypass bookinfo/bookinfo-productpage -> www.baidu.com:443",
    ])
    ok = cases["allowed bookinfo/bookinfo-productpage -> www.baidu.com"]
    assert (ok["scheme"], ok["port"], ok["method"], ok["path"], ok["expect"], ok["via_gateway"]) == \
        ("http", 80, "GET", "/", "allowed", True)
    assert url(ok) == "http://www.baidu.com/"
    denied = cases["denied bookinfo/default -> www.baidu.com"]
    assert (denied["namespace"], denied["service_account"], denied["expect"]) == ("bookinfo", "default", "denied")
    unlisted = cases["unlisted bookinfo/bookinfo-productpage -> example.com"]
    assert (url(unlisted), unlisted["expect"], unlisted["via_gateway"]) == ("http://example.com/", "blocked", False)
    bypass = cases["bypass bookinfo/bookinfo-productpage -> www.baidu.com:443"]
    assert (url(bypass), bypass["expect"], bypass["via_gateway"]) == ("https://www.baidu.com/", "blocked", False)


def test_passthrough_matrix_uses_tls_and_has_no_bypass_case():
    policy, options, (cases, excluded, notes) = _matrix(load_example("passthrough"))
    by = dict((c["name"], c) for c in cases)
    assert sorted(by) == sorted([
        "allowed ci/release-bot -> api.github.com",
        "allowed ci/runner -> api.github.com",
        "denied ci/default -> api.github.com",
        "unlisted ci/release-bot -> example.com",
    ])
    assert url(by["allowed ci/runner -> api.github.com"]) == "https://api.github.com/"
    assert by["denied ci/default -> api.github.com"]["scheme"] == "https"


def test_namespace_get_only_matrix():
    policy, options, (cases, excluded, notes) = _matrix(load_example("namespace-get-only"))
    by = dict((c["name"], c) for c in cases)
    host = "api.exchangerate.example.com"
    assert sorted(by) == sorted([
        "allowed reporting/* -> " + host,
        # the only client namespace is allowed as a whole: the denied probe runs in `default`
        "denied default/default -> " + host,
        "unlisted reporting/* -> example.com",
        "bypass reporting/* -> %s:443" % host,
        "l7-method reporting/* -> %s POST /v1/history/meshguard-probe" % host,
        "l7-path reporting/* -> %s GET /meshguard-egress-denied-path" % host,
    ])
    ok = by["allowed reporting/* -> " + host]
    assert (ok["service_account"], ok["method"], ok["path"]) == ("default", "GET", "/v1/history/meshguard-probe")
    row = table([dict(ok, verdict="pass", observed="allowed", cause="HTTP 200")])[2]
    assert [c.strip() for c in row.split("  ") if c.strip()][1] == "reporting/* (as default)"


def test_mixed_matrix_dry_run_cross_rule_and_l7():
    policy, options, (cases, excluded, notes) = _matrix(load_example("mixed"))
    by = dict((c["name"], c) for c in cases)
    # dry-run rule: not enforced, allow-nothing denies its callers
    tele = by["allowed monitoring/otel-collector -> collector.telemetry.example.net"]
    assert tele["expect"] == "denied" and "dry-run" in tele["note"]
    # payments allows only POST: the allowed probe POSTs to an allowed path, the L7 probe GETs
    pay = by["allowed shop/checkout -> api.payments.example.com"]
    assert (pay["method"], pay["path"], pay["port"], pay["scheme"]) == ("POST", "/v2/charges", 80, "http")
    assert "l7-method shop/checkout -> api.payments.example.com GET /v2/charges" in by
    assert "l7-path shop/checkout -> api.payments.example.com POST /meshguard-egress-denied-path" in by
    # plain HTTP rule on port 80, bypass over TLS to 443
    assert url(by["allowed builds/* -> deb.debian.org"]) == "http://deb.debian.org/"
    assert by["bypass builds/* -> deb.debian.org:443"]["expect"] == "blocked"
    # cross-rule: an identity of one rule is denied by the others
    assert by["denied builds/* -> api.payments.example.com"]["expect"] == "denied"
    assert by["denied shop/refunds -> deb.debian.org"]["expect"] == "denied"
    assert "denied shop/checkout -> api.payments.example.com" not in by
    # the probe identity: first client namespace whose default account no rule allows
    assert options.denied_identity == ("monitoring", "default")
    assert len(by) == len(cases)


def test_every_example_has_unique_stable_names(example_names):
    for name in example_names:
        raw = load_example(name)
        first = _names(raw)
        assert len(first) == len(set(first)), name
        shuffled = copy.deepcopy(raw)
        for rule in shuffled["rules"]:
            rule["allow"] = list(reversed(rule["allow"]))
        shuffled["rules"] = list(reversed(shuffled["rules"]))
        assert _names(shuffled) == first, name


def _authz_request(policy, case):
    ports = policy.gateway["container_ports"]
    request = {"namespace": case["namespace"], "sni": case["host"],
               "principal": "%s/ns/%s/sa/%s" % (policy.trust_domain, case["namespace"], case["service_account"])}
    if case["scheme"] == "https":
        return dict(request, protocol="tcp", port=ports["https"])
    host = case["host"] if case["port"] == 80 else "%s:%d" % (case["host"], case["port"])
    return dict(request, protocol="http", port=ports["http"], host=host, method=case["method"], path=case["path"])


def _gateway_agrees(raw):
    policy, options, (cases, dummy, dummy2) = _matrix(raw)
    aps = [o for o in build_resources(policy) if o["kind"] == "AuthorizationPolicy"]
    labels = policy.gateway["labels"]
    for case in cases:
        if case["via_gateway"]:
            assert authz_eval.allowed(aps, _authz_request(policy, case), labels) == (case["expect"] == "allowed"), \
                case["name"]


def test_expectations_agree_with_the_emitted_policies_on_every_example(example_names):
    for name in example_names:
        _gateway_agrees(load_example(name))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_expectations_agree_with_the_emitted_policies_on_random_policies(raw):
    assume(raw["rules"])  # an empty policy has nothing to verify (and needs an explicit opt-in)
    _gateway_agrees(raw)


def test_no_registry_only_means_no_unlisted_or_bypass_case():
    raw = dict(SEED, mesh={"outbound_policy": "ALLOW_ANY", "allow_fail_open": True})
    policy, options, (cases, excluded, notes) = _matrix(raw)
    assert [c["kind"] for c in cases] == ["allowed", "denied"]
    assert any("no unlisted-host case" in n for n in notes)
    assert any("no bypass case" in n for n in notes)


def test_scoped_registry_only_picks_a_caller_in_scope():
    raw = {"rules": [{"name": "a", "hosts": ["a.example.com"], "allow": ["team-a/app"]},
                     {"name": "b", "hosts": ["b.example.com"], "allow": ["team-b/app"]}],
           "mesh": {"method": "sidecar", "scope": "namespaces", "namespaces": ["team-b"], "allow_fail_open": True}}
    names = _names(raw)
    assert "unlisted team-b/app -> example.com" in names
    assert "bypass team-b/app -> b.example.com:443" in names
    assert not any(n.startswith("bypass team-a") for n in names)


# ---------------------------------------------------------------------------------------------
# Options, user cases and exclusions

def test_user_cases_and_exclusions():
    extra = {"name": "reviews may not reach baidu", "identity": "bookinfo/bookinfo-reviews",
             "host": "www.baidu.com", "expect": "denied"}
    names = _names(SEED, cases=[extra], exclude=["bypass *", "unlisted bookinfo/bookinfo-productpage -> example.com"])
    assert names == ["allowed bookinfo/bookinfo-productpage -> www.baidu.com",
                     "denied bookinfo/default -> www.baidu.com", "reviews may not reach baidu"]
    policy, options, (cases, excluded, notes) = _matrix(SEED, exclude=["nothing-matches"])
    assert "exclude: 'nothing-matches' matches no case" in notes
    user = _matrix(SEED, cases=[dict(extra, scheme="https", port=8443, path="/x", method="POST")])[2][0][-1]
    assert (user["kind"], user["identity"], url(user), user["method"], user["via_gateway"]) == \
        ("user", "bookinfo/bookinfo-reviews", "https://www.baidu.com:8443/x", "POST", True)


@pytest.mark.parametrize("opts, message", [
    ({"denied_identity": "bookinfo/bookinfo-productpage"}, "denied_identity: bookinfo/bookinfo-productpage is allowed "
                                                           "by rule baidu"),
    ({"denied_identity": "bad_ns"}, "denied_identity.namespace: 'bad_ns' is not a valid namespace"),
    ({"unlisted_host": "www.baidu.com"}, "unlisted_host: 'www.baidu.com' is a host of rule baidu"),
    ({"unlisted_host": "*.example.com"}, "unlisted_host: '*.example.com': wildcard"),
    ({"timeout": 0}, "timeout: 0 must be an integer"),
    ({"cases": [{"name": "x", "identity": "a/b", "host": "h.example.com", "expect": "maybe"}]},
     "cases[0] (x).expect: 'maybe' is not one of allowed, denied, blocked"),
    ({"cases": [{"identity": "a/b", "host": "h.example.com", "expect": "denied"}]}, "cases[0].name: is required"),
    ({"cases": [{"name": "x", "identity": "a/b", "host": "h.example.com", "expect": "denied", "verb": "GET"}]},
     "cases[0] (x): unknown key 'verb'"),
    ({"cases": [{"name": "x", "identity": "a/b", "host": "h.example.com", "expect": "denied", "method": "HEAD"}]},
     "cases[0] (x).method: 'HEAD' is not a method a probe can send"),
    ({"sources": [{"namespace": "bookinfo", "labels": {"app": "x"}, "pod": "p"}]},
     "sources[0]: give exactly one of labels (a pod selector) or pod (a pod name)"),
])
def test_bad_options_name_the_field(opts, message):
    policy = normalize_policy(copy.deepcopy(SEED))
    with pytest.raises(VerifyError) as info:
        normalize_options(policy, opts)
    assert any(e.startswith(message) for e in info.value.errors), info.value.errors


def test_user_case_name_must_not_shadow_a_derived_case():
    with pytest.raises(VerifyError) as info:
        _matrix(SEED, cases=[{"name": "denied bookinfo/default -> www.baidu.com", "identity": "bookinfo/x",
                              "host": "www.baidu.com", "expect": "denied"}])
    assert "already a derived case" in info.value.errors[0]


# Every problem of an identity, with its path, in the words of the policy's allow entries
# (validation.parse_identity); "@" stands for the identity's path.
IDENTITY_PROBLEMS = [
    ("bad_ns", ["@.namespace: 'bad_ns' is not a valid namespace name (DNS-1123 label)"]),
    ("Bad/Bad_SA", ["@.namespace: 'Bad' is not a valid namespace name (DNS-1123 label)",
                    "@.service_account: 'Bad_SA' is not a valid service account name (DNS-1123 subdomain)"]),
    ("a/b/c", ["@: 'a/b/c': use 'namespace' or 'namespace/service_account'"]),
    ("/sa", ["@.namespace: is required: a service account is only meaningful inside a namespace "
             "(write 'namespace/service_account')"]),
    ("ns/", ["@.service_account: is empty in 'ns/'; write just the namespace to allow the whole namespace"]),
    ("*", ["@.namespace: wildcards are not allowed: every allowed caller must be named"]),
    ("ns/*", ["@.service_account: wildcards are not allowed; omit service_account to allow the whole namespace"]),
    ({"namespace": "ns", "sa": "x"}, ["@: unknown key 'sa' (allowed: namespace, service_account)"]),
    ({"service_account": "sa"}, ["@.namespace: is required: a service account is only meaningful inside a "
                                 "namespace"]),
    ({"namespace": None}, ["@.namespace: is required"]),
    ({"namespace": 5}, ["@.namespace: must be a string, got 5"]),
    ({"namespace": "ns", "service_account": 5}, ["@.service_account: must be a string, got 5"]),
    ({"namespace": "Bad", "service_account": "Bad_SA"},
     ["@.namespace: 'Bad' is not a valid namespace name (DNS-1123 label)",
      "@.service_account: 'Bad_SA' is not a valid service account name (DNS-1123 subdomain)"]),
    (5, ["@: must be a mapping {namespace, service_account} or a 'namespace[/sa]' string, got int"]),
]


def _verify_errors(opts):
    policy = normalize_policy(copy.deepcopy(SEED))
    with pytest.raises(VerifyError) as info:
        normalize_options(policy, opts)
    return info.value.errors


@pytest.mark.parametrize("identity, messages", IDENTITY_PROBLEMS)
def test_bad_identity_every_problem_with_its_path(identity, messages):
    def at(where):
        return [m.replace("@", where) for m in messages]
    assert _verify_errors({"denied_identity": identity}) == at("denied_identity")
    case = {"name": "x", "identity": identity, "host": "h.example.com", "expect": "denied"}
    assert _verify_errors({"cases": [case]}) == at("cases[0] (x).identity")
    # the same words as for the policy's allow entry
    raw = copy.deepcopy(SEED)
    raw["rules"][0]["allow"].append(identity)
    with pytest.raises(PolicyError) as info:
        normalize_policy(raw)
    assert info.value.errors == at("rules[0] (baidu).allow[1]")


@pytest.mark.parametrize("identity, messages", [(i, m) for i, m in IDENTITY_PROBLEMS
                                                if isinstance(i, dict) and set(i) <= {"namespace", "service_account"}])
def test_bad_source_identity_every_problem_with_its_path(identity, messages):
    assert _verify_errors({"sources": [dict(identity, pod="p")]}) == [m.replace("@", "sources[0]") for m in messages]


def test_missing_identity_of_a_case_is_required():
    for identity in (None, ""):
        case = {"name": "x", "identity": identity, "host": "h.example.com", "expect": "denied"}
        assert _verify_errors({"cases": [case]}) == [
            "cases[0] (x).identity: is required ('namespace', 'namespace/service_account' or a mapping)"]


def test_every_problem_of_a_case_and_a_source_at_once():
    case = {"name": "x", "identity": "Bad/", "scheme": "ftp", "port": 70000, "path": "x", "expect": "maybe",
            "via_gateway": "perhaps", "zz": 1}
    source = {"namespace": "bookinfo", "pod": "Bad_Pod", "container": 5, "yy": 1}
    assert _verify_errors({"cases": [case], "sources": [source], "exclude": ["ok", ""]}) == [
        "sources[0]: unknown key 'yy' (allowed: namespace, service_account, labels, pod, container)",
        "sources[0].pod: 'Bad_Pod' is not a valid pod name",
        "sources[0].container: must be a string, got 5",
        "exclude[1]: '' is not a case name (a non-empty string; shell-style patterns allowed)",
        "cases[0] (x): unknown key 'zz' (allowed: name, identity, host, port, scheme, method, path, expect, "
        "via_gateway)",
        "cases[0] (x).identity.service_account: is empty in 'Bad/'; write just the namespace to allow the "
        "whole namespace",
        "cases[0] (x).host: is required",
        "cases[0] (x).scheme: 'ftp' is not one of http, https",
        "cases[0] (x).port: 70000 is out of range (1-65535)",
        "cases[0] (x).path: 'x' must start with '/' and contain no whitespace",
        "cases[0] (x).expect: 'maybe' is not one of allowed, denied, blocked",
        "cases[0] (x).via_gateway: must be a boolean, got 'perhaps'"]


def test_boolean_options_read_yaml_words():
    case = {"name": "x", "identity": "a/b", "host": "h.example.com", "expect": "denied", "via_gateway": "no"}
    options = normalize_options(normalize_policy(copy.deepcopy(SEED)), {"cases": [case], "probe_pods": "off"})
    assert (options.cases[0]["via_gateway"], options.probe_pods) == (False, False)


def test_denied_identity_default_skips_an_allowed_default_account():
    raw = {"rules": [{"name": "a", "hosts": ["a.example.com"], "allow": ["shop/default", "ops"]}]}
    policy = normalize_policy(raw)
    # shop/default and every account of ops are allowed: fall back to namespace `default`
    assert default_denied_identity(policy) == ("default", "default")
    assert default_denied_identity(policy, "probe") == ("ops", "probe") or \
        default_denied_identity(policy, "probe") == ("shop", "probe")


# ---------------------------------------------------------------------------------------------
# The command and L7 helpers

def test_curl_command_shapes():
    http = {"scheme": "http", "host": "www.baidu.com", "port": 80, "path": "/", "method": "GET"}
    argv = curl_command(http, 7)
    assert argv[:4] == ["curl", "-sS", "--max-time", "7"] and argv[-1] == "http://www.baidu.com/"
    assert "--insecure" not in argv and "-X" not in argv
    tls = dict(http, scheme="https", port=443, method="POST")
    argv = curl_command(tls, 7)
    assert "--insecure" in argv and argv[argv.index("-X") + 1] == "POST" and argv[-1] == "https://www.baidu.com/"
    assert url(dict(http, port=8080, path="/a")) == "http://www.baidu.com:8080/a"
    assert command_text(["curl", "-w", "a b"]) == "curl -w 'a b'"


@pytest.mark.parametrize("pattern, path, match", [
    ("/s", "/s", True), ("/s", "/s/x", False), ("/api/*", "/api/x", True), ("/api/*", "/apix", False),
    ("*.json", "/a.json", True), ("*.json", "/a.jsonx", False),
])
def test_path_matches(pattern, path, match):
    assert path_matches(pattern, path) is match
    # and the same as the independent evaluator's string match
    assert authz_eval.string_match(pattern, path) is match


def test_inside_and_outside_paths_match_and_do_not_match():
    for patterns in (["/s"], ["/api/*"], ["*.json"], ["*/healthz"], ["/v1/history/*", "/v1/latest"]):
        rule = normalize_policy({"rules": [{"name": "r", "hosts": ["a.example.com"], "allow": ["x"],
                                            "http": {"paths": patterns}}]}).rules[0]
        assert any(path_matches(p, inside_path(rule)) for p in patterns), patterns
        assert not any(path_matches(p, outside_path(rule)) for p in patterns), patterns
    rule = normalize_policy({"rules": [{"name": "r", "hosts": ["a.example.com"], "allow": ["x"],
                                        "http": {"paths": ["/*"]}}]}).rules[0]
    assert outside_path(rule) is None


# ---------------------------------------------------------------------------------------------
# Classification of recorded probe outputs

HTTP_CASE = {"scheme": "http", "via_gateway": True, "expect": "allowed"}
TLS_VIA_GW = {"scheme": "https", "via_gateway": True, "expect": "allowed"}
TLS_DIRECT = {"scheme": "https", "via_gateway": False, "expect": "blocked"}


def _out(code, body="", rc=0, tls="0.000000", stderr=""):
    return {"rc": rc, "stdout": "%s\nmeshguard-probe: http_code=%s tls=%s ip=10.0.0.9\n" % (body, code, tls),
            "stderr": stderr, "timeout": 5}


@pytest.mark.parametrize("case, outcome, observed, cause", [
    (HTTP_CASE, _out("200", '{"host": "www.baidu.com"}'), "allowed", "HTTP 200"),
    (HTTP_CASE, _out("301", "moved"), "allowed", "HTTP 301"),
    (HTTP_CASE, _out("403", "RBAC: access denied"), "denied", "HTTP 403 RBAC: access denied"),
    (HTTP_CASE, _out("403", "Forbidden by upstream"), "unexpected", "HTTP 403 without 'RBAC: access denied'"),
    (HTTP_CASE, _out("404", "nope"), "unexpected", "HTTP 404"),
    (HTTP_CASE, _out("502", ""), "blocked", "HTTP 502"),
    (HTTP_CASE, _out("503", "upstream connect error or disconnect/reset before headers"), "blocked", "HTTP 503"),
    (HTTP_CASE, _out("000", rc=6, stderr="curl: (6) Could not resolve host: x"), "blocked", "DNS resolution failed"),
    (HTTP_CASE, _out("000", rc=7), "blocked", "connection failed (curl exit 7)"),
    (HTTP_CASE, _out("000", rc=28), "blocked", "timeout: no answer within 5s (curl exit 28)"),
    (HTTP_CASE, _out("000", rc=52), "blocked", "connection reset"),
    (HTTP_CASE, _out("000", rc=56), "blocked", "connection reset"),
    (TLS_VIA_GW, _out("200", tls="0.012"), "allowed", "TLS handshake with the server completed (HTTP 200)"),
    (TLS_VIA_GW, _out("000", rc=56, tls="0.012"), "allowed", "TLS handshake with the server completed"),
    (TLS_VIA_GW, _out("000", rc=35), "denied", "connection closed during the TLS handshake (curl exit 35)"),
    (TLS_VIA_GW, _out("000", rc=56), "denied", "connection closed during the TLS handshake (curl exit 56)"),
    (TLS_DIRECT, _out("000", rc=35), "blocked", "connection reset / no TLS handshake (curl exit 35)"),
    (TLS_DIRECT, _out("200", tls="0.02"), "allowed", "TLS handshake"),
    # probe broken, never denied
    (HTTP_CASE, {"rc": 127, "stdout": "", "stderr": 'exec: "curl": executable file not found in $PATH'},
     "broken", "no curl in the container (exit 127)"),
    (HTTP_CASE, {"rc": 126, "stdout": "", "stderr": "permission denied"}, "broken", "no curl in the container"),
    (HTTP_CASE, {"rc": None, "stdout": "", "stderr": "", "exec_error": 'OCI runtime exec failed: exec failed: '
                 'unable to start container process: exec: "curl": executable file not found in $PATH: unknown'},
     "broken", "no curl in the container"),
    (HTTP_CASE, {"exec_status": 403, "exec_error": "pods \"p\" is forbidden: User cannot create pods/exec"},
     "broken", "exec forbidden by RBAC"),
    (HTTP_CASE, {"exec_status": 404, "exec_error": "pods \"p\" not found"}, "broken", "pod not found"),
    (HTTP_CASE, {"pod_problem": "pod bookinfo/x has no istio-proxy sidecar (not injected)"},
     "broken", "pod bookinfo/x has no istio-proxy sidecar"),
    (HTTP_CASE, {"rc": None, "deadline": 15}, "broken", "the exec call did not return within 15s"),
    (HTTP_CASE, {"rc": 0, "stdout": "hello", "stderr": ""}, "broken", "curl output not understood"),
    (HTTP_CASE, _out("000", rc=3, stderr="curl: (3) URL using bad/illegal format"), "broken", "curl exit 3"),
    (HTTP_CASE, {"rc": None, "stdout": "", "stderr": ""}, "broken", "no exit code"),
])
def test_classify_recorded_outputs(case, outcome, observed, cause):
    got = classify(case, outcome)
    assert got[0] == observed and got[1].startswith(cause), got


def test_a_broken_probe_is_never_denied_whatever_it_printed():
    rbac = _out("403", "RBAC: access denied")
    for extra in ({"pod_problem": "no pod"}, {"exec_status": 403, "exec_error": "forbidden"},
                  {"rc": 127}, {"exec_error": "executable file not found"}):
        outcome = dict(rbac, **extra)
        assert classify(HTTP_CASE, outcome)[0] == "broken", extra


def test_parse_curl_output_keeps_a_body_that_mentions_the_marker():
    body = "line\nmeshguard-probe: http_code=999 fake\nend"
    code, tls, ip, got = parse_curl_output(body + "\nmeshguard-probe: http_code=204 tls=0.000000 ip=1.2.3.4\n")
    assert (code, tls, ip, got) == (204, 0.0, "1.2.3.4", body)
    assert parse_curl_output("no marker") == (None, None, None, "no marker")


# ---------------------------------------------------------------------------------------------
# Choosing the pod

def _pod(name, sa="bookinfo-productpage", phase="Running", sidecar="containers", deleting=False, running=True):
    containers = [{"name": "app"}]
    init = []
    if sidecar == "containers":
        containers.append({"name": "istio-proxy"})
    elif sidecar == "init":
        init.append({"name": "istio-proxy", "restartPolicy": "Always"})
    meta = {"name": name, "namespace": "bookinfo"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    state = {"running": {}} if running else {"waiting": {"reason": "CrashLoopBackOff"}}
    return {"metadata": meta, "spec": {"serviceAccountName": sa, "containers": containers, "initContainers": init},
            "status": {"phase": phase, "containerStatuses": [{"name": "app", "state": state}]}}


@pytest.mark.parametrize("pods, target, problem", [
    ([_pod("b"), _pod("a")], "a", None),
    ([_pod("a", sidecar="init")], "a", None),
    ([], None, "no pod app=productpage in namespace bookinfo"),
    ([_pod("a", deleting=True)], None, "no pod app=productpage"),
    ([_pod("a", phase="Pending")], None, "pod bookinfo/a is Pending, not Running"),
    ([_pod("a", sa="reviews")], None, "pod bookinfo/a runs as service account reviews, not bookinfo-productpage"),
    ([_pod("a", sidecar=None)], None, "pod bookinfo/a has no istio-proxy sidecar (not injected)"),
    ([_pod("a", running=False)], None, "container app of pod bookinfo/a is not running"),
])
def test_pick_pod(pods, target, problem):
    got, why = pick_pod(pods, "bookinfo", "bookinfo-productpage", "app=productpage")
    assert (got or {}).get("pod") == target
    assert (why or "").startswith(problem or ""), why
    if target:
        assert got["container"] == "app"


def test_pick_pod_named_container():
    assert pick_pod([_pod("a")], "bookinfo", "bookinfo-productpage", "x", container="nope")[1] == \
        "pod bookinfo/a has no container nope"


# ---------------------------------------------------------------------------------------------
# Probe pods

def test_probe_pods_one_per_identity_without_source():
    source = {"namespace": "bookinfo", "service_account": "bookinfo-productpage", "labels": {"app": "productpage"}}
    policy, options, (cases, dummy, dummy2) = _matrix(SEED, sources=[source])
    pods = plan_probe_pods(policy, options, cases)
    assert [(p["metadata"]["namespace"], p["spec"]["serviceAccountName"]) for p in pods] == [("bookinfo", "default")]
    pod = pods[0]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert is_probe_pod(pod, "default") and not is_probe_pod(pod, "other")
    assert pod["spec"]["activeDeadlineSeconds"] == 900
    assert probe_pod_name(policy, "bookinfo", "default") == pod["metadata"]["name"]
    assert len(probe_pod_name(policy, "bookinfo", "x" * 80)) <= 63
    assert probe_pod_selector(policy) == ("app.kubernetes.io/managed-by=meshguard.egress,"
                                          "egress.meshguard.io/component=verify-probe,"
                                          "egress.meshguard.io/policy=default")


def test_probe_pods_follow_the_revision_and_can_be_disabled():
    policy, options, (cases, dummy, dummy2) = _matrix(load_example("mixed"))
    pods = plan_probe_pods(policy, options, cases)
    assert all(p["metadata"]["labels"]["istio.io/rev"] == "1-24-2" for p in pods)
    assert len(pods) == len(probe_identities(cases)) == 5
    policy, options, (cases, dummy, dummy2) = _matrix(SEED, probe_pods=False)
    assert plan_probe_pods(policy, options, cases) == []


# ---------------------------------------------------------------------------------------------
# The report

def test_report_table_json_and_junit():
    policy, options, (cases, excluded, notes) = _matrix(SEED, exclude=["bypass *"])
    outcomes = {
        "allowed": _out("200", "ok"),
        "denied": {"rc": 127, "stdout": "", "stderr": 'exec: "curl": executable file not found in $PATH'},
        "unlisted": _out("200", "leak"),
    }
    target = {"pod": "p", "container": "app"}
    rows = [result_row(c, target, curl_command(c, 5), dict(outcomes[c["kind"]], duration=0.25)) for c in cases]
    rep = report(policy, rows, excluded, notes)
    assert rep["summary"] == {"cases": 3, "pass": 1, "fail": 1, "broken": 1, "passed": False}
    assert rep["text"][0] == ("meshguard.egress verify, policy default: 3 cases, 1 pass, 1 fail, 1 probe broken "
                              "-> FAILED")
    assert rep["text"][1].split() == ["verdict", "identity", "request", "expected", "observed"]
    assert rep["mismatches"] == [
        "PROBE BROKEN: bookinfo/default -> www.baidu.com expected denied, observed broken (no curl in the container "
        "(exit 127): exec: \"curl\": executable file not found in $PATH) [case denied bookinfo/default -> "
        "www.baidu.com]",
        "MISMATCH: bookinfo/bookinfo-productpage -> example.com expected blocked, observed allowed (HTTP 200) "
        "[case unlisted bookinfo/bookinfo-productpage -> example.com]",
    ]
    assert "excluded: bypass bookinfo/bookinfo-productpage -> www.baidu.com:443" in rep["text"]
    doc = json.loads(json.dumps(rep["json"]))
    assert doc["cases"][0]["http_status"] == 200 and doc["cases"][0]["response"] == "ok"
    assert doc["cases"][0]["command"].startswith("curl -sS --max-time 5 ")
    suites = ET.fromstring(rep["junit"].split("\n", 1)[1])
    suite = suites.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    kinds = [(tc.get("name"), [child.tag for child in tc if child.tag != "system-out"]) for tc in suite]
    assert kinds == [("allowed bookinfo/bookinfo-productpage -> www.baidu.com", []),
                     ("denied bookinfo/default -> www.baidu.com", ["error"]),
                     ("unlisted bookinfo/bookinfo-productpage -> example.com", ["failure"])]


def test_report_passes_only_when_every_case_passes():
    policy, options, (cases, excluded, notes) = _matrix(SEED)
    good = {"allowed": _out("200"), "denied": _out("403", "RBAC: access denied"), "unlisted": _out("502"),
            "bypass": _out("000", rc=35)}
    rows = [result_row(c, None, [], good[c["kind"]]) for c in cases]
    assert report(policy, rows)["summary"]["passed"] is True
    rows[0] = result_row(cases[0], None, [], _out("403", "RBAC: access denied"))
    rep = report(policy, rows)
    assert rep["summary"]["passed"] is False
    assert rep["mismatches"][0].startswith("MISMATCH: bookinfo/bookinfo-productpage -> www.baidu.com expected "
                                           "allowed, observed denied")


def test_policy_round_trips_through_its_plain_data_form(example_names):
    for name in example_names:
        policy = normalize_policy(load_example(name))
        again = policy_from_built(json.loads(json.dumps(policy.as_dict())))
        assert again.as_dict() == policy.as_dict(), name
        options = normalize_options(policy, {})
        assert build_matrix(again, normalize_options(again, {})) == build_matrix(policy, options), name
