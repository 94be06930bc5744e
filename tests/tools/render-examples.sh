#!/usr/bin/env bash
# Render every policy in examples/ with the meshguard.egress.render playbook:
#   tests/tools/render-examples.sh OUTDIR   ->  OUTDIR/<example>/{kustomization.yaml,rules/*.yaml,...}
# Files named mesh-config*.yaml are Istio install values, not Kubernetes objects.
set -euo pipefail
out=${1:?usage: render-examples.sh OUTDIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=$("$here/tests/tools/venv.sh")
link="$here/build/collections/ansible_collections/meshguard/egress"
mkdir -p "$(dirname "$link")" && ln -sfn "$here" "$link"
export ANSIBLE_COLLECTIONS_PATH="$here/build/collections"
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False
mkdir -p "$out"
out=$(cd "$out" && pwd)
for example in "$here"/examples/*.yml; do
  name=$(basename "$example" .yml)
  "$venv/bin/ansible-playbook" meshguard.egress.render -e "@$example" \
    -e "meshguard_egress_render_dir=$out/$name" -e meshguard_egress_render_show_summary=false >/dev/null \
    || { echo "render-examples: rendering $example failed; rerun: make render POLICY=$example" >&2; exit 1; }
  echo "$out/$name"
done
