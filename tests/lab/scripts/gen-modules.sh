#!/usr/bin/env bash
# Generate (default) or check (--check) the lab's Go modules under tests/lab/go/ from the pins
# in tests/versions.env. Nothing here is written by hand:
#   - each module requires exactly one upstream module at its pinned version;
#   - `replace` lines are derived from the upstream go.mod: a replace to another module version
#     is copied as is; k8s.io/kubernetes's `k8s.io/X => ./staging/src/k8s.io/X` becomes
#     `k8s.io/X => k8s.io/X v0.<minor>.<patch>` (Kubernetes 1.N.P <-> v0.N.P); other local
#     replaces (etcd's sibling modules ../api etc.) are already satisfied by the pinned
#     requirement and are dropped;
#   - the binaries to build are `tool` directives; `go mod tidy` writes the rest and go.sum.
# --check regenerates into a temporary copy and fails if go.mod/go.sum would change.
# Usage: gen-modules.sh [--check] [COMPONENT...]   (components: kube etcd kwok istio; default all)
set -euo pipefail
. "$(dirname "$0")/common.sh"
export GOFLAGS="${GOFLAGS/-mod=readonly/}"

mode=generate
if [ "${1:-}" = "--check" ]; then mode=check; shift; fi
ONLY=" ${*:-kube etcd kwok istio} "   # optional: the components to (re)generate

upstream_gomod() { # MOD@VER -> path of its go.mod in the module cache
  go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); print(d["GoMod"]) if not e else sys.exit("go mod download: "+e)'
}

# write_module DIR MODULE_PATH UPSTREAM_MOD VERSION TOOL...
write_module() {
  local dir=$1 modpath=$2 up=$3 ver=$4; shift 4
  local upmod goline
  upmod=$(upstream_gomod "$up@$ver")
  goline=$(go mod edit -json "$upmod" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Go") or "1.22")')
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (
    cd "$dir"
    go mod init "$modpath" >/dev/null 2>&1
    go mod edit -go="$goline" -require="$up@$ver"
    # replace lines derived from the upstream go.mod
    go mod edit -json "$upmod" | python3 -c '
import json, re, sys
up_ver, k8s_ver = sys.argv[1], sys.argv[2]
d = json.load(sys.stdin)
for r in d.get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new.get("Version"):
        print("%s=%s@%s" % (old["Path"] + ("@" + old["Version"] if old.get("Version") else ""), new["Path"], new["Version"]))
        continue
    m = re.fullmatch(r"\./staging/src/(k8s\.io/[^/]+)", new["Path"])
    if m and m.group(1) == old["Path"]:
        print("%s=%s@%s" % (old["Path"], old["Path"], k8s_ver))
' "$ver" "v0.${KUBERNETES_VERSION#v1.}" | while read -r rep; do go mod edit -replace="$rep"; done
    for t in "$@"; do go mod edit -tool="$t"; done
    go mod tidy
  )
}

want() { [[ $ONLY == *" $1 "* ]]; }

generate_all() { # ROOT
  local root=$1
  want kube && write_module "$root/kube" meshguard.egress/lab/kube k8s.io/kubernetes "$KUBERNETES_VERSION" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  # etcd: the etcd repo's root module (the `etcd` command) uses local replaces and cannot be
  # depended on; etcdmain.Main is the whole etcd CLI, called from cmd/etcd/main.go here.
  want etcd && write_module "$root/etcd" meshguard.egress/lab/etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  want kwok && write_module "$root/kwok" meshguard.egress/lab/kwok sigs.k8s.io/kwok "$KWOK_VERSION" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
  want istio && write_module "$root/istio" meshguard.egress/lab/istio istio.io/istio "$ISTIO_MODULE_VERSION" \
    istio.io/istio/istioctl/cmd/istioctl istio.io/istio/pilot/cmd/pilot-discovery \
    istio.io/istio/pilot/cmd/pilot-agent
  return 0
}

src="$LAB_DIR/go"
if [ "$mode" = generate ]; then
  generate_all "$src"
  lab_log "generated${ONLY}(from $VERSIONS_ENV)"
else
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  cp -r "$src/." "$tmp/"
  generate_all "$tmp" >/dev/null 2>&1 || die "gen-modules.sh failed to regenerate the lab modules (run it without --check to see why)"
  if ! diff -ru -x '*.go' "$src" "$tmp" >"$tmp.diff" 2>&1; then
    cat "$tmp.diff" >&2; rm -f "$tmp.diff"
    die "tests/lab/go/*/go.mod or go.sum disagree with tests/versions.env; run tests/lab/scripts/gen-modules.sh and commit the result"
  fi
  rm -f "$tmp.diff"
  lab_log "lab modules match $VERSIONS_ENV"
fi
