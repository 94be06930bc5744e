#!/usr/bin/env bash
# Print the path of a virtualenv of the project, creating it first if it does not exist.
#
#   tests/tools/venv.sh          the project venv: every tool, from tests/requirements.txt
#   tests/tools/venv.sh oldest   a small venv with the oldest kubernetes client we claim
#                                (tests/requirements-oldest.txt, the floor of requirements.txt);
#                                everything else (ansible, kubernetes.core, pytest) is the project
#                                venv's, reached through a .pth file placed after this venv's own
#                                packages, and its bin/ansible-playbook runs on this venv's Python
#                                (so do the modules of the playbooks it runs on localhost).
#
# The venvs live outside the checkout (MESHGUARD_CACHE, default ~/.cache/meshguard-egress) and
# are keyed by the hash of their requirements file(s): a changed pin builds a new one.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
what=${1:-project}
cache=${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}
hash_of() {
  python3 -c 'import hashlib,sys;h=hashlib.sha256()
for p in sys.argv[1:]: h.update(open(p,"rb").read())
print(h.hexdigest()[:12])' "$@"
}
case $what in
project) req="$here/tests/requirements.txt" venv="$cache/venv-$(hash_of "$here/tests/requirements.txt")" ;;
oldest)
  project=$("$0")
  req="$here/tests/requirements-oldest.txt"
  venv="$cache/venv-oldest-$(hash_of "$req" "$here/tests/requirements.txt")"
  ;;
*)
  echo "usage: $0 [oldest]" >&2
  exit 2
  ;;
esac
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi
mkdir -p "$cache"
# One builder at a time: parallel make jobs, helpers or CI steps wait for the first one.
exec 9>"$cache/.venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "venv.sh: creating $venv from ${req#"$here"/}" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet -r "$req" >&2
  if [ "$what" = oldest ]; then
    site() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
    site "$project" >"$(site "$venv")/meshguard-project-venv.pth"
    sed "1s|^#!.*|#!$venv/bin/python|" "$project/bin/ansible-playbook" >"$venv/bin/ansible-playbook"
    chmod +x "$venv/bin/ansible-playbook"
  fi
  touch "$venv/.complete"
fi
echo "$venv"
