#!/usr/bin/env bash
# Print the path of the project's virtualenv, creating it first if it does not exist.
# The venv lives outside the checkout (MESHGUARD_CACHE, default ~/.cache/meshguard-egress)
# and is keyed by the hash of tests/requirements.txt: a changed pin builds a new one.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
req="$here/tests/requirements.txt"
cache=${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}
key=$(python3 -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:12])' "$req")
venv="$cache/venv-$key"
mkdir -p "$cache"
# One builder at a time: parallel make jobs, helpers or CI steps wait for the first one.
exec 9>"$cache/.venv.lock"
flock 9
if [ ! -x "$venv/bin/ansible-playbook" ] || [ ! -f "$venv/.complete" ]; then
  echo "venv.sh: creating $venv from tests/requirements.txt" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv"
