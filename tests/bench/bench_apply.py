# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: converge 50 rules (3 identities each) on the lab cluster, three ways, same run.

  site      ansible-playbook meshguard.egress.site (mesh_config, egress_gateway, egress_policy)
  kubectl   kubectl apply --server-side -f <the same policy rendered to files> (-R)
  naive     a playbook with one kubernetes.core.k8s task (server-side apply) per object

Each cold converge starts from a cluster without the policy's objects (teardown between runs);
the idempotent re-runs (site again, kubectl again) start from the converged state, and the site
re-run is checked to write nothing (every resourceVersion unchanged). Prints the times and the
ratios site/kubectl (goal <= 1.0), naive/site (goal >= 5) and re-run site/kubectl. This is a
script, not a test: it prints figures and never fails on timing.

Needs the lab (tests/lab): uses the one `tests/lab/scripts/lab.sh kubeconfig` names (honours
MESHGUARD_LAB_STATE), starting it when it is not up and stopping it again at the end.
Environment: BENCH_RULES (default 50), BENCH_REPEAT (default 1), BENCH_NAIVE=0 skips the slow
naive playbook.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

import policygen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
LAB = os.path.join(ROOT, "tests", "lab", "scripts", "lab.sh")
RULES = int(os.environ.get("BENCH_RULES", "50"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
NAIVE = os.environ.get("BENCH_NAIVE", "1") != "0"
MANAGED = "app.kubernetes.io/managed-by=meshguard.egress"
KINDS = ("serviceentries.networking.istio.io,gateways.networking.istio.io,destinationrules.networking.istio.io,"
         "virtualservices.networking.istio.io,authorizationpolicies.security.istio.io,deployments.apps,services,"
         "serviceaccounts,roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,"
         "poddisruptionbudgets.policy")

sys.path.insert(0, COLLECTIONS)


def policy_vars(count):
    return {"meshguard_egress_rules": policygen.rules(count, teams=5, batches=3, http=False),
            "meshguard_egress_mesh": {"outbound_policy": "REGISTRY_ONLY", "method": "configmap"}}


def sh(args, env, check=True, timeout=3600):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s\n%s" % (" ".join(args[:3]), proc.returncode, proc.stdout[-3000:],
                                                      proc.stderr[-3000:]))
    return proc


def timed(args, env, check=True, label=None):
    start = time.perf_counter()
    proc = sh(args, env, check)
    elapsed = time.perf_counter() - start
    if label:
        print("  %-42s %8.2f s" % (label, elapsed), flush=True)
    return elapsed, proc


def render(vars_data, outdir):
    """The same objects the site playbook applies, as files (the render mode of the collection)."""
    from ansible_collections.meshguard.egress.plugins.module_utils.render import build_result
    raw = dict((k[len("meshguard_egress_"):], v) for k, v in vars_data.items())
    result = build_result(raw, resources=True, render=True)
    paths = []
    for rel, text in sorted(result["files"].items()):
        if rel.startswith("mesh-config") or rel == "kustomization.yaml" or not rel.endswith(".yaml"):
            continue
        path = os.path.join(outdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
        paths.append(path)
    return result["resources"], paths


def versions(kubectl, env):
    proc = sh([kubectl, "get", KINDS, "-A", "-l", MANAGED, "-o", "json"], env)
    return dict(("%s/%s/%s" % (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]),
                 o["metadata"]["resourceVersion"]) for o in json.loads(proc.stdout)["items"])


def main():
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1")
    started = False
    if sh([LAB, "healthy"], env, check=False).returncode != 0:
        print("bench-apply: starting the lab", flush=True)
        sh([LAB, "up"], env)
        started = True
    try:
        kubeconfig = sh([LAB, "kubeconfig"], env).stdout.strip()
        bindir = sh([LAB, "bindir"], env).stdout.strip()
        kubectl = os.path.join(bindir, "kubectl")
        env.update(KUBECONFIG=kubeconfig, K8S_AUTH_KUBECONFIG=kubeconfig)
        playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        tmp = tempfile.mkdtemp(prefix="bench-apply-")
        data = policy_vars(RULES)
        vars_file = os.path.join(tmp, "policy.yml")
        with open(vars_file, "w") as handle:
            yaml.safe_dump(data, handle)
        objects, files = render(data, os.path.join(tmp, "rendered"))
        namespaces = policygen.namespaces(data["meshguard_egress_rules"])
        for ns in namespaces:
            sh([kubectl, "create", "namespace", ns], env, check=False)
        naive_file = os.path.join(tmp, "naive.yml")
        with open(os.path.join(tmp, "objects.json"), "w") as handle:
            json.dump(objects, handle)
        with open(naive_file, "w") as handle:
            handle.write(NAIVE_PLAYBOOK.replace("OBJECTS", os.path.join(tmp, "objects.json")))
        site = [playbook, "meshguard.egress.site", "-e", "@" + vars_file]
        teardown = [playbook, "meshguard.egress.teardown", "-e", "@" + vars_file]
        kubectl_apply = [kubectl, "apply", "--server-side", "--field-manager=bench-kubectl", "-R", "-f",
                         os.path.join(tmp, "rendered")]
        kubectl_delete = [kubectl, "delete", "--ignore-not-found", "--wait=true", "-R", "-f",
                          os.path.join(tmp, "rendered")]
        print("bench-apply: %d rules, %d objects (%d files), lab %s" % (RULES, len(objects), len(files), kubeconfig),
              flush=True)
        sh(teardown, env)
        sh(kubectl_delete, env)

        times = {"site": [], "site_nowait": [], "kubectl": [], "naive": [], "site_rerun": [], "kubectl_rerun": []}
        writes_on_rerun = []
        for dummy in range(REPEAT):
            t, dummy_proc = timed(site, env, label="site, cold")
            times["site"].append(t)
            before = versions(kubectl, env)
            t, proc = timed(site, env, label="site, re-run")
            times["site_rerun"].append(t)
            after = versions(kubectl, env)
            writes_on_rerun.append(sum(1 for k in before if after.get(k) != before[k]))
            if "changed=0" not in proc.stdout:
                print("bench-apply: WARNING: the site re-run reported changes", flush=True)
            sh(teardown, env)
            # the same without waiting for the gateway Deployment to be Available (kubectl does not wait)
            t, dummy_proc = timed(site + ["-e", "meshguard_egress_gateway_wait_timeout=0"], env,
                                  label="site, cold, no wait for the gateway")
            times["site_nowait"].append(t)
            sh(teardown, env)

            t, dummy_proc = timed(kubectl_apply, env, label="kubectl apply --server-side, cold")
            times["kubectl"].append(t)
            t, dummy_proc = timed(kubectl_apply, env, label="kubectl apply --server-side, re-run")
            times["kubectl_rerun"].append(t)
            sh(kubectl_delete, env)

            if NAIVE:
                t, dummy_proc = timed([playbook, naive_file], env, label="naive playbook")
                times["naive"].append(t)
                sh(kubectl_delete, env)
        sh(teardown, env)
        for ns in namespaces:
            sh([kubectl, "delete", "namespace", ns, "--wait=false"], env, check=False)

        best = dict((k, min(v)) for k, v in times.items() if v)
        print("")
        print("converge %d rules (%d objects), best of %d:" % (RULES, len(objects), REPEAT))
        for key, label in (("site", "site (3 roles, cold)"), ("site_nowait", "site, cold, no wait for the gateway"),
                           ("kubectl", "kubectl apply --server-side (cold)"),
                           ("naive", "naive playbook, one k8s task per object"),
                           ("site_rerun", "site re-run (idempotent)"), ("kubectl_rerun", "kubectl re-run")):
            if key in best:
                print("  %-42s %8.2f s" % (label, best[key]))
        print("  site re-run: objects written %s (resourceVersions changed)" % writes_on_rerun)
        print("ratios:")
        print("  site / kubectl            = %.2fx  (goal <= 1.0)" % (best["site"] / best["kubectl"]))
        print("  site without the gateway wait / kubectl = %.2fx" % (best["site_nowait"] / best["kubectl"]))
        if "naive" in best:
            print("  naive / site              = %.2fx  (goal >= 5)" % (best["naive"] / best["site"]))
        print("  site re-run / kubectl re-run = %.2fx" % (best["site_rerun"] / best["kubectl_rerun"]))
    finally:
        if started and os.environ.get("MESHGUARD_LAB_KEEP") != "1":
            sh([LAB, "down"], env, check=False)


NAIVE_PLAYBOOK = """---
- name: Naive apply, one kubernetes.core.k8s task per object
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    objects: "{{ lookup('ansible.builtin.file', 'OBJECTS') | from_json }}"
  tasks:
    - name: Apply one object
      kubernetes.core.k8s:
        definition: "{{ item }}"
        apply: true
        server_side_apply:
          field_manager: bench-naive
      loop: "{{ objects }}"
      loop_control:
        label: "{{ item.kind }} {{ item.metadata.name }}"
"""


if __name__ == "__main__":
    main()
