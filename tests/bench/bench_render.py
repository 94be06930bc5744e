# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: render N rules (3 identities each) through the egress_resources module.

Runs the module the way Ansible runs it on the target (a Python process reading its
arguments from a JSON file, printing JSON), with render=true, for a 10-rule baseline and
for 1,000 rules, in the same run, and prints the times and their ratio. Best of REPEAT.
The goal from issue #2: under 2 s for 1,000 rules. This is a script, not a test: it
prints figures and never fails on timing.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import sys
import tempfile
import time

import policygen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
MODULE = "ansible_collections.meshguard.egress.plugins.modules.egress_resources"
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def policy(count):
    # As the render role calls it: files only. No rules at all (the startup baseline) is refused
    # unless the policy says so, as a user's would have to.
    args = {"rules": policygen.rules(count), "render": True, "resources": False}
    if not count:
        args["allow_empty"] = True
    return {"ANSIBLE_MODULE_ARGS": args}


def run_module(args_file):
    env = dict(os.environ, PYTHONPATH=COLLECTIONS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", MODULE, args_file], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit("module failed: %s" % result.get("msg"))
    files = result["files"]
    return elapsed, sum(t.count("\n---\n") + t.startswith("---\n") for t in files.values()), \
        sum(len(t) for t in files.values())


def measure(count, tmp):
    path = os.path.join(tmp, "args-%d.json" % count)
    with open(path, "w") as handle:
        json.dump(policy(count), handle)
    runs = [run_module(path) for dummy in range(REPEAT)]
    return min(r[0] for r in runs), runs[0][1], runs[0][2]


def main():
    link = os.path.join(COLLECTIONS, "ansible_collections", "meshguard", "egress")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link))
        os.symlink(ROOT, link)
    with tempfile.TemporaryDirectory() as tmp:
        empty = measure(0, tmp)[0]
        small, small_objs, small_bytes = measure(10, tmp)
        large, large_objs, large_bytes = measure(1000, tmp)
    print("egress_resources module, render=true resources=false (as the render role), 3 identities per rule, best of %d runs" % REPEAT)
    print("%-12s %10s %10s %12s" % ("rules", "seconds", "objects", "YAML bytes"))
    print("%-12s %10.3f %10s %12s" % ("0 (startup)", empty, "-", "-"))
    print("%-12s %10.3f %10d %12d" % ("10", small, small_objs, small_bytes))
    print("%-12s %10.3f %10d %12d" % ("1000", large, large_objs, large_bytes))
    print("ratio 1000/10 rules: %.1fx time for 100x rules; 1000 rules minus startup: %.3f s (goal: < 2 s)"
          % (large / small, large - empty))


if __name__ == "__main__":
    main()
