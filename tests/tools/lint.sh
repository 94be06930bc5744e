#!/usr/bin/env bash
# Lint the whole collection: ansible-lint with the production profile (config: .ansible-lint)
# and yamllint in strict mode (config: .yamllint). Run from anywhere; works on the checkout
# this script belongs to. Exit status is non-zero if either linter reports anything; both
# always run so one pass shows every finding.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
venv=$("$here/tests/tools/venv.sh")
export PATH="$venv/bin:$PATH"

# ansible-lint must resolve meshguard.egress.* names to this checkout: expose it as
# build/collections/ansible_collections/<namespace>/<name> (what `make collection` does), read
# from galaxy.yml. kubernetes.core is found in the venv's site-packages (bundled by `ansible`).
read -r ns name < <(python - galaxy.yml <<'PY'
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))
print(g["namespace"], g["name"])
PY
)
link="$here/build/collections/ansible_collections/$ns/$name"
if [ ! -e "$link" ]; then
  mkdir -p "$(dirname "$link")"
  ln -sfn "$here" "$link"
fi
export ANSIBLE_COLLECTIONS_PATH="$here/build/collections"

rc=0
echo "=== ansible-lint (profile production, strict, offline) ===" >&2
start=$SECONDS
ansible-lint --config-file .ansible-lint || rc=1
echo "lint.sh: ansible-lint done in $((SECONDS - start))s (rc so far $rc)" >&2

# Role variable names. The product contract prefixes every role variable with
# meshguard_egress_ (the roles share their inputs, e.g. meshguard_egress_rules), which
# ansible-lint's var-naming[no-role-prefix] (role-name prefix, e.g. render_) cannot express;
# each such line carries a noqa for that sub-rule (see .ansible-lint) and this check enforces our prefix:
# variables defined by a role (defaults/, vars/, meta/argument_specs.yml options, and in its
# tasks/handlers: register, set_fact, task/block vars, loop_control.loop_var) must start with
# meshguard_egress_ (or __meshguard_egress_ for internal ones).
echo "=== role variable prefix (meshguard_egress_) ===" >&2
python - "$ns" "$name" <<'PY' || rc=1
import pathlib, re, sys, yaml

prefix = f"{sys.argv[1]}_{sys.argv[2]}_"
ok = re.compile(rf"^(__)?{re.escape(prefix)}[a-z0-9_]+$")
bad = []


def check(name, where):
    if not isinstance(name, str) or not ok.match(name):
        bad.append(f"{where}: variable {name!r} must match {ok.pattern}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return list(yaml.safe_load_all(f))


def walk_tasks(tasks, where):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            walk_tasks(task.get(key), where)
        name = task.get("name", "?")
        loc = f"{where} (task {name!r})"
        if "register" in task:
            check(task["register"], loc + " register")
        for key in (task.get("vars") or {}):
            check(key, loc + " vars")
        loop_var = (task.get("loop_control") or {}).get("loop_var")
        if loop_var is not None:
            check(loop_var, loc + " loop_var")
        for action in ("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"):
            args = task.get(action)
            if isinstance(args, dict):
                for key in args:
                    if key != "cacheable":
                        check(key, loc + " set_fact")


for role in sorted(pathlib.Path("roles").glob("*/")):
    for sub in ("defaults", "vars"):
        for path in sorted((role / sub).rglob("*.y*ml")):
            for doc in load(path):
                for key in (doc or {}):
                    check(key, str(path))
    spec = role / "meta" / "argument_specs.yml"
    if spec.is_file():
        for doc in load(spec):
            for entry, body in ((doc or {}).get("argument_specs") or {}).items():
                for key in (body or {}).get("options") or {}:
                    check(key, f"{spec} ({entry})")
    for sub in ("tasks", "handlers"):
        for path in sorted((role / sub).rglob("*.y*ml")):
            for doc in load(path):
                if isinstance(doc, list):
                    walk_tasks(doc, str(path))
for line in bad:
    print(line)
print(f"role variable prefix: {len(bad)} finding(s)", file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# A consumer's view: a project of a user that installs this collection next to its own
# playbook (as AWX projects do, collections/ansible_collections/...) and includes every role,
# linted with the production profile and no skips of ours (our .ansible-lint does not travel
# with the collection). Our roles carry their noqa comments in their own files.
echo "=== consumer project: ansible-lint production, no config of ours ===" >&2
consumer=$(mktemp -d)
trap 'rm -rf "$consumer"' EXIT
mkdir -p "$consumer/collections/ansible_collections/$ns/$name"
git ls-files -co --exclude-standard -z | (cd "$here" && xargs -0 tar -cf - --no-recursion 2>/dev/null) \
  | tar -xf - -C "$consumer/collections/ansible_collections/$ns/$name"
{
  echo "---"
  echo "- name: Bootstrap egress for our cluster"
  echo "  hosts: localhost"
  echo "  gather_facts: false"
  echo "  tasks:"
  for role in roles/*/; do
    role=$(basename "$role")
    echo "    - name: Include $role"
    echo "      ansible.builtin.include_role:"
    echo "        name: $ns.$name.$role"
  done
} >"$consumer/site.yml"
printf -- '---\nprofile: production\noffline: true\n' >"$consumer/.ansible-lint"
printf '[defaults]\ncollections_path = ./collections\n' >"$consumer/ansible.cfg"
(cd "$consumer" && git init -q . && ANSIBLE_COLLECTIONS_PATH="$consumer/collections" ansible-lint site.yml) || rc=1

# The release tarball holds the collection only: no rendered output, build trees, caches or the
# lab (galaxy.yml build_ignore).
echo "=== collection tarball: no out/, build/, tests/lab/, caches ===" >&2
tarball_dir="$consumer/tarball"
mkdir -p "$tarball_dir"
if ansible-galaxy collection build --output-path "$tarball_dir" "$here" >/dev/null; then
  leaked=$(tar -tzf "$tarball_dir"/*.tar.gz | grep -E '^(out|build|\.ci|tests/lab|tests/output)/|__pycache__|\.tar\.gz$' || true)
  if [ -n "$leaked" ]; then echo "lint.sh: the tarball ships files it must not:" >&2; echo "$leaked" | head -20 >&2; rc=1; fi
else
  echo "lint.sh: ansible-galaxy collection build failed" >&2; rc=1
fi

echo "=== yamllint -s . ===" >&2
start=$SECONDS
yamllint -s -c .yamllint . || rc=1
echo "lint.sh: yamllint done in $((SECONDS - start))s" >&2

exit "$rc"
