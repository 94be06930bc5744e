# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a verify run: one result row per case (the case with what its probe saw and
the verdict), the summary, the readable table, the mismatch lines, the JSON document and the
JUnit XML.

``report(policy, rows, excluded, notes)`` returns all of them; rows come from ``result_row``.
Not for: judging a probe (outcome.py) or running one (runner.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import xml.etree.ElementTree as ET

from ansible_collections.meshguard.egress.plugins.module_utils.verify.outcome import Outcome, classify, \
    command_text, parse_curl_output, snippet, url, verdict


def result_row(case, target, argv, outcome):
    """One case with its probe result (the module's results[] item): the case's keys, then the probe's."""
    outcome = Outcome.of(outcome)
    observed, cause = classify(case, outcome)
    code, dummy, dummy2, body = parse_curl_output(outcome.stdout)
    row = dict(case)
    row.update({
        "pod": (target or {}).get("pod"), "container": (target or {}).get("container"),
        "command": command_text(argv), "exit_code": outcome.rc, "http_status": code,
        "response": snippet(body), "stderr": snippet(outcome.stderr),
        "duration": round(outcome.duration or 0.0, 3),
        "observed": observed, "cause": cause, "verdict": verdict(case, observed),
    })
    return row


def mismatch_lines(rows):
    """One line per case that did not pass, naming identity, host, expectation and observation."""
    lines = []
    for row in rows:
        if row["verdict"] == "pass":
            continue
        lines.append("%s: %s -> %s expected %s, observed %s (%s)%s" % (
            "PROBE BROKEN" if row["verdict"] == "broken" else "MISMATCH", row["identity"],
            "%s %s" % (row["host"], row["path"]) if row["kind"].startswith("l7") else row["host"],
            row["expect"], row["observed"], row["cause"], " [case %s]" % row["name"]))
    return lines


def summary(rows):
    counts = {"cases": len(rows), "pass": 0, "fail": 0, "broken": 0}
    for row in rows:
        counts[row["verdict"]] += 1
    counts["passed"] = counts["pass"] == counts["cases"]
    return counts


def table(rows, planned=False):
    """The readable table for the play output (one string per line); `planned`: cases before probing."""
    if planned:
        head = ("case", "request", "expected")
        data = [(r["name"], "%s %s" % (r["method"], url(r)), r["expect"]) for r in rows]
    else:
        head = ("verdict", "identity", "request", "expected", "observed")
        data = [(r["verdict"].upper(), _ident_cell(r), "%s %s" % (r["method"], url(r)), r["expect"],
                 "%s: %s" % (r["observed"], r["cause"])) for r in rows]
    widths = [max([len(head[i])] + [len(d[i]) for d in data]) for i in range(len(head) - 1)]
    lines = []
    for values in [head] + data:
        lines.append("  ".join([v.ljust(widths[i]) for i, v in enumerate(values[:-1])] + [values[-1]]).rstrip())
        if values is head:
            lines.append("  ".join("-" * w for w in widths + [len(head[-1])]))
    return lines


def _ident_cell(row):
    if row["identity"].endswith("/*"):
        return "%s (as %s)" % (row["identity"], row["service_account"])
    return row["identity"]


def junit_xml(rows, suite_name):
    """JUnit XML: one testcase per case; failure for a mismatch, error for a broken probe."""
    counts = summary(rows)
    suite = ET.Element("testsuite", name=suite_name, tests=str(counts["cases"]), failures=str(counts["fail"]),
                       errors=str(counts["broken"]), skipped="0",
                       time="%.3f" % sum(r.get("duration") or 0.0 for r in rows))
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname="meshguard.egress.verify.%s" % row["kind"],
                             name=row["name"], time="%.3f" % (row.get("duration") or 0.0))
        detail = "identity %s, %s %s, expected %s, observed %s: %s\ncommand: %s\nexit code: %s\nstderr: %s" % (
            row["identity"], row["method"], url(row), row["expect"], row["observed"], row["cause"],
            row.get("command"), row.get("exit_code"), row.get("stderr"))
        if row["verdict"] == "fail":
            ET.SubElement(case, "failure", message="expected %s, observed %s" % (row["expect"], row["observed"]),
                          type="mismatch").text = detail
        elif row["verdict"] == "broken":
            ET.SubElement(case, "error", message="probe broken: %s" % row["cause"], type="probe-broken").text = detail
        ET.SubElement(case, "system-out").text = detail
    suites = ET.Element("testsuites", name="meshguard.egress verify")
    suites.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def report(policy, rows, excluded=(), notes=()):
    """{text: [lines], json: {...}, junit: str, mismatches: [lines], summary: {...}}."""
    counts = summary(rows)
    head = "meshguard.egress verify, policy %s: %d cases, %d pass, %d fail, %d probe broken -> %s" % (
        policy.policy_name, counts["cases"], counts["pass"], counts["fail"], counts["broken"],
        "PASSED" if counts["passed"] else "FAILED")
    mismatches = mismatch_lines(rows)
    text = [head] + table(rows) + (["", "mismatches:"] + ["  " + m for m in mismatches] if mismatches else [])
    if excluded:
        text.append("excluded: " + ", ".join(excluded))
    doc = {"policy": policy.policy_name, "summary": counts, "cases": rows, "excluded": list(excluded),
           "notes": list(notes), "mismatches": mismatches}
    return {"text": text, "json": doc, "junit": junit_xml(rows, "meshguard.egress verify %s" % policy.policy_name),
            "mismatches": mismatches, "summary": counts}
