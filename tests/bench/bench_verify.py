#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (a script, not a test): 20 access probes on the lab, run by
meshguard.egress.access_probe (one task, concurrent exec calls) versus a serial loop of
kubernetes.core.k8s_exec tasks running the very same curl commands, in the same run.

Needs a running lab (`make lab-up`; MESHGUARD_LAB_STATE picks another lab). Prints both wall
times, their ratio, and the per-probe latency (exec round trip as access_probe measured it, and
wall time per k8s_exec loop item). Usage: tests/bench/bench_verify.py [--probes N] [--concurrency C]
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB_SH = os.path.join(REPO, "tests", "lab", "scripts", "lab.sh")
NS = "bench-verify"
SA = "app"
POD = "client"
IMAGE = "docker.io/curlimages/curl:8.11.1"
# lab hosts (tests/lab/lablib.py): answered by the lab internet when the data plane runs;
# without it the pod has no network and curl fails at once - the exec cost is what is measured.
HOSTS = ["www.baidu.com", "unlisted.meshguard-lab.net", "api.github.com", "deb.debian.org"]


def sh(*args, **kw):
    check = kw.pop("check", True)
    return subprocess.run(list(args), capture_output=True, text=True, check=check, **kw)


def lab_env():
    if sh(LAB_SH, "healthy", check=False).returncode != 0:
        sys.exit("bench-verify: no healthy lab; run `make lab-up` first (MESHGUARD_LAB_STATE selects a lab)")
    env = dict(os.environ)
    env["KUBECONFIG"] = sh(LAB_SH, "kubeconfig").stdout.strip()
    env["K8S_AUTH_KUBECONFIG"] = env["KUBECONFIG"]
    env["PATH"] = sh(LAB_SH, "bindir").stdout.strip() + os.pathsep + env["PATH"]
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO, "build", "collections")
    env.update(ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    link = os.path.join(env["ANSIBLE_COLLECTIONS_PATH"], "ansible_collections", "meshguard", "egress")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link))
        os.symlink(REPO, link)
    return env


def setup(env):
    kubectl = ["kubectl"]
    sh(*kubectl, "delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s", env=env)
    sh(*kubectl, "create", "namespace", NS, env=env)
    sh(*kubectl, "label", "namespace", NS, "istio-injection=enabled", env=env)
    sh(*kubectl, "-n", NS, "create", "serviceaccount", SA, env=env)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": NS, "labels": {"app": POD}},
           "spec": {"serviceAccountName": SA, "containers": [{"name": "app", "image": IMAGE,
                                                              "command": ["sleep", "3600"]}]}}
    sh(*kubectl, "apply", "-f", "-", input=json.dumps(pod), env=env)
    sh(*kubectl, "-n", NS, "wait", "--for=condition=Ready", "pod/" + POD, "--timeout=120s", env=env)


def playbook(env, tasks, workdir, name):
    path = os.path.join(workdir, name + ".yml")
    with open(path, "w") as handle:
        json.dump([{"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
                    "tasks": tasks}], handle)
    start = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("bench-verify: %s failed:\n%s\n%s" % (name, proc.stdout[-4000:], proc.stderr[-2000:]))
    results = json.loads(proc.stdout)["plays"][0]["tasks"]
    return wall, [t["hosts"]["localhost"] for t in results]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=5)
    args = parser.parse_args()

    env = lab_env()
    setup(env)
    policy = {"rules": [{"name": "bench", "hosts": [HOSTS[0]], "allow": ["%s/%s" % (NS, SA)]}]}
    cases = [{"name": "probe-%02d" % i, "identity": "%s/%s" % (NS, SA), "host": HOSTS[i % len(HOSTS)],
              "path": "/bench/%d" % i, "expect": "allowed"} for i in range(args.probes)]
    work = tempfile.mkdtemp(prefix="bench-verify-")
    try:
        built = subprocess.run([sys.executable, "-c", (
            "import json,sys; sys.path.insert(0, %r);"
            "from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy;"
            "print(json.dumps(normalize_policy(json.loads(sys.argv[1])).as_dict()))")
            % env["ANSIBLE_COLLECTIONS_PATH"], json.dumps(policy)], capture_output=True, text=True, check=True)
        probe_task = {"name": "access_probe", "meshguard.egress.access_probe": {
            "policy": json.loads(built.stdout), "cases": cases, "exclude": ["allowed *", "denied *", "unlisted *",
                                                                            "bypass *"],
            "sources": [{"namespace": NS, "service_account": SA, "pod": POD}], "probe_pods": False,
            "timeout": args.timeout, "concurrency": args.concurrency}}
        wall_a, (res_a,) = playbook(env, [probe_task], work, "access-probe")
        rows = res_a["results"]
        if len(rows) != args.probes or any(r["observed"] == "broken" for r in rows):
            sys.exit("bench-verify: access_probe did not run every probe: %s" % [r["cause"] for r in rows])
        commands = [r["command"] for r in rows]
        loop_task = {"name": "k8s_exec", "kubernetes.core.k8s_exec": {
            "namespace": NS, "pod": POD, "container": "app", "command": "{{ item }}"},
            "loop": commands, "failed_when": False}
        wall_b, (res_b,) = playbook(env, [loop_task], work, "k8s-exec-loop")
        rcs_b = [item.get("rc") for item in res_b["results"]]
        rcs_a = [r["exit_code"] for r in rows]
    finally:
        sh("kubectl", "delete", "namespace", NS, "--ignore-not-found", "--wait=false", env=env, check=False)
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)

    durations = [r["duration"] for r in rows]
    print("bench-verify: %d probes (curl --max-time %ds) from %s/%s on the lab" % (args.probes, args.timeout, NS, POD))
    print("  exit codes: access_probe %s, k8s_exec %s" % (sorted(set(rcs_a)), sorted(set(r for r in rcs_b
                                                                                         if r is not None))))
    print("  access_probe (1 task, concurrency %d): %.2f s wall (probes %.2f s inside the module)"
          % (args.concurrency, wall_a, res_a["elapsed"]))
    print("  k8s_exec loop (%d serial tasks):       %.2f s wall" % (args.probes, wall_b))
    latency = (statistics.median(durations), min(durations), max(durations), wall_b / args.probes)
    print("  per-probe latency: access_probe exec round trip median %.3f s (min %.3f, max %.3f); "
          "k8s_exec %.3f s per loop item" % latency)
    print("  ratio (k8s_exec loop / access_probe): %.1fx" % (wall_b / wall_a))
    if shlex.split(commands[0])[0] != "curl":
        sys.exit("bench-verify: unexpected command %r" % commands[0])


if __name__ == "__main__":
    main()
