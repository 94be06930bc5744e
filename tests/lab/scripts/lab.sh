#!/usr/bin/env bash
# The meshguard.egress lab cluster: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler built from upstream Go modules) run by kwokctl's
# binary runtime, with nodes and pods simulated by kwok. See tests/lab/README.md.
#
#   lab.sh up       start the lab (reuse it when it is already healthy), print the kubeconfig
#   lab.sh down     stop it and remove its runtime state
#   lab.sh status   print kubeconfig path, health, nodes, processes and their memory
#   lab.sh healthy  exit 0 when the lab is up and healthy, 1 otherwise (quiet)
#   lab.sh revision REV  add Istio revision REV to the running lab (mesh ConfigMap istio-REV,
#                   injection templates, and its own istiod and webhooks); idempotent
#   lab.sh egress-gateway NAME NAMESPACE [--delete]  add (remove) Istio's own egress gateway
#                   NAME in NAMESPACE, as istioctl's components.egressGateways installs it
#                   (for policies that reuse an existing gateway); idempotent
#   lab.sh dataplane-check  exit 0 when this machine can run the data plane, else print why
#   lab.sh kubeconfig   print the kubeconfig path
#   lab.sh bindir       print the directory holding kubectl/istioctl of the current build
set -euo pipefail
. "$(dirname "$0")/common.sh"

KWOK_STATE="$LAB_STATE/kwok"
export KWOK_WORKDIR="$KWOK_STATE"
CLUSTER_DIR="$KWOK_STATE/clusters/$LAB_CLUSTER"
PODS_DIR="$LAB_STATE/pods"
LOG="$LAB_STATE/lab.log"
# The data-plane stand-in's hook directory: first on PATH of every command `kubectl exec` runs.
HOOKS_DIR=${MESHGUARD_LAB_HOOKS:-$LAB_DIR/hooks/bin}
# Istio revisions installed next to the default one (`istio-<rev>` mesh ConfigMap, ...).
ISTIO_REVISIONS=${MESHGUARD_LAB_ISTIO_REVISIONS:-canary}
# Run the real istiod (pilot-discovery), one per revision, on loopback as the validating and
# injecting admission webhook. 0: lay down the objects only, no istiod, no webhooks.
ISTIOD=${MESHGUARD_LAB_ISTIOD:-1}
ISTIOD_ROOT="$LAB_STATE/istiod"   # one directory per revision: default, <rev>...
# The data plane (real Envoy sidecars and gateways in the lab's network namespaces,
# scripts/dataplane.py): auto = when this machine can (root, netns, iptables), 1 = required,
# 0 = off. It needs istiod.
DATAPLANE=${MESHGUARD_LAB_DATAPLANE:-auto}
DP_DIR="$LAB_STATE/dataplane"
# Whether this lab runs it: "on" or the reason why not (written at lab-up).
DP_MODE_FILE="$LAB_STATE/dataplane.mode"

load_dirs() {
  local line
  while IFS= read -r line; do
    case $line in
      kube=*) KUBE_BIN=${line#kube=} ;; etcd=*) ETCD_BIN=${line#etcd=} ;;
      kwok=*) KWOK_BIN=${line#kwok=} ;; istio=*) ISTIO_BIN=${line#istio=} ;;
      envoy=*) ENVOY_DIR=${line#envoy=} ;;
    esac
  done < <("$LAB_DIR/scripts/build.sh" --dirs)
  KUBECTL="$KUBE_BIN/kubectl"
  KWOKCTL="$KWOK_BIN/kwokctl"
  ISTIOCTL="$ISTIO_BIN/istioctl"
}

# A directory of symlinks to the current build (kubectl, istioctl, kwokctl, ...), stable
# across versions: $LAB_CACHE/bin/current.
link_current() {
  local cur="$LAB_CACHE/bin/current" tmp="$LAB_CACHE/bin/.current.$$" f
  rm -rf "$tmp"; mkdir -p "$tmp"
  for f in "$KUBE_BIN"/* "$ETCD_BIN"/* "$KWOK_BIN"/* "$ISTIO_BIN"/*; do ln -s "$f" "$tmp/"; done
  rm -rf "$cur"; mv "$tmp" "$cur"
}

kc() { "$KUBECTL" --kubeconfig "$LAB_KUBECONFIG" "$@"; }

healthy() {
  # READY is written when lab-up finished every step, and removed before any step
  [ -f "$LAB_STATE/READY" ] && [ -f "$LAB_KUBECONFIG" ] && [ -x "${KUBECTL:-}" ] || return 1
  kc get --raw /readyz --request-timeout=5s >/dev/null 2>&1 || return 1
  # every lab component still running (kwokctl's pid files)
  local p
  for p in "$CLUSTER_DIR"/pids/*.pid; do
    [ -f "$p" ] || return 1
    kill -0 "$(cat "$p")" 2>/dev/null || return 1
  done
  kc get node lab-node-0 >/dev/null 2>&1 || return 1
  local d
  for d in "$ISTIOD_ROOT"/*/; do
    [ -f "$d/ports" ] || continue
    kill -0 "$(cat "$d/istiod.pid" 2>/dev/null)" 2>/dev/null || return 1
    istiod_ready "$d" || return 1
  done
  if dataplane_on; then
    [ -f "$DP_DIR/ready" ] && kill -0 "$(cat "$DP_DIR/dataplane.pid" 2>/dev/null)" 2>/dev/null || return 1
  fi
}

dataplane_on() { [ "$(cat "$DP_MODE_FILE" 2>/dev/null)" = on ]; }

# Decide whether this lab runs the data plane; write "on" or the reason into DP_MODE_FILE.
decide_dataplane() {
  local why=""
  case $DATAPLANE in
    0) why="off (MESHGUARD_LAB_DATAPLANE=0)" ;;
    auto|1)
      if [ "$ISTIOD" != 1 ]; then why="off (it needs istiod; MESHGUARD_LAB_ISTIOD=0)"
      elif [ ! -x "$ISTIO_BIN/pilot-agent" ]; then why="pilot-agent missing in $ISTIO_BIN (make lab-build)"
      elif [ ! -x "$ENVOY_DIR/envoy" ] || [ ! -f "$ENVOY_DIR/envoy_bootstrap.json" ]; then
        why="envoy missing in $ENVOY_DIR (make lab-build)"
      elif ! why=$(python3 "$LAB_DIR/scripts/dataplane.py" check); then :
      else why=""
      fi ;;
    *) die "MESHGUARD_LAB_DATAPLANE must be auto, 1 or 0 (got $DATAPLANE)" ;;
  esac
  if [ -z "$why" ]; then
    echo on >"$DP_MODE_FILE"
  else
    [ "$DATAPLANE" != 1 ] || die "data plane required (MESHGUARD_LAB_DATAPLANE=1) but unavailable: $why"
    echo "$why" >"$DP_MODE_FILE"
    lab_log "data plane not started: $why"
  fi
}

start_dataplane() {
  mkdir -p "$DP_DIR"
  rm -f "$DP_DIR/ready"
  lab_log "starting the data plane (lab network and internet, Envoy per meshed pod); log: $DP_DIR/dataplane.log"
  setsid nohup python3 "$LAB_DIR/scripts/dataplane.py" run --state "$LAB_STATE" \
    --kubeconfig "$LAB_KUBECONFIG" --kubectl "$KUBECTL" --pilot-agent "$ISTIO_BIN/pilot-agent" \
    --envoy "$ENVOY_DIR/envoy" --bootstrap "$ENVOY_DIR/envoy_bootstrap.json" --ca "$CLUSTER_DIR/pki/ca.crt" \
    </dev/null >>"$DP_DIR/dataplane.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$DP_DIR/dataplane.pid"
  for _ in $(seq 300); do
    [ ! -f "$DP_DIR/ready" ] || return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$DP_DIR/dataplane.log" >&2
  die "the data plane did not start (log: $DP_DIR/dataplane.log)"
}

stop_dataplane() {
  local pid
  pid=$(cat "$DP_DIR/dataplane.pid" 2>/dev/null) || pid=""
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # whatever a crashed data plane left: this lab's namespaces, /etc/netns entries, processes
  python3 "$LAB_DIR/scripts/dataplane.py" cleanup --state "$LAB_STATE" || true
  rm -f "$DP_DIR/dataplane.pid"
}

port_of() { awk -F= -v k="$2" '$1 == k {print $2}' "$1/ports"; }  # DIR KEY

istiod_ready() { # DIR
  python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' \
    "http://127.0.0.1:$(port_of "$1" http)/ready" >/dev/null 2>&1
}

write_config() {
  local path="$HOOKS_DIR:$LAB_CACHE/bin/current:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  cat >"$LAB_STATE/kwokctl.yaml" <<EOF
# Written by tests/lab/scripts/lab.sh up; the versions come from tests/versions.env.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: $KUBERNETES_VERSION
  etcdVersion: ${ETCD_VERSION#v}
  kubeApiserverBinary: $KUBE_BIN/kube-apiserver
  kubeControllerManagerBinary: $KUBE_BIN/kube-controller-manager
  kubeSchedulerBinary: $KUBE_BIN/kube-scheduler
  kubectlBinary: $KUBE_BIN/kubectl
  kwokControllerBinary: $KWOK_BIN/kwok
  etcdBinary: $ETCD_BIN/etcd
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  enableCRDs: [Exec, ClusterExec]
  kubeApiserverCertSANs: [127.0.0.1, localhost]
componentsPatches:
  # kwok resolves the command of \`kubectl exec\` on its own PATH: the hook directory first.
  - name: kwok-controller
    extraEnvs:
      - name: PATH
        value: "$path"
components:
  # Keeps one kwok Exec per pod, so \`kubectl exec\` runs with that pod's identity.
  - name: lab-podexec
    binary: $KWOK_BIN/lab-podexec
    links: [kube-apiserver]
    workDir: $CLUSTER_DIR
    args:
      - --kubeconfig=$CLUSTER_DIR/kubeconfig.yaml
      - --lab-kubeconfig=$LAB_KUBECONFIG
      - --pods-dir=$PODS_DIR
      - --path=$path
      - --lab-state=$LAB_STATE
      - --exec-wrapper=$LAB_DIR/scripts/pod-exec
EOF
  if dataplane_on; then
    # kwok's default stages (copied into the kwok build), with the lab's pod-ready stage: meshed
    # pods wait for their proxy's /healthz/ready (manifests/kwok-pod-ready.yaml)
    local f
    for f in "$KWOK_BIN"/stages/*.yaml; do
      [ "$(basename "$f")" != pod-ready.yaml ] || f="$LAB_DIR/manifests/kwok-pod-ready.yaml"
      printf -- '---\n' >>"$LAB_STATE/kwokctl.yaml"
      grep -v '^---$' "$f" >>"$LAB_STATE/kwokctl.yaml"
    done
  fi
}

# What an installed Istio control plane leaves in a cluster that our roles read or change,
# rendered by the lab's own istioctl (same version as the CRDs) rather than written by hand
# and filtered by filter-manifest.py: the mesh ConfigMap `istio[-<rev>]`, the injection
# templates `istio-sidecar-injector[-<rev>]`, istiod's ServiceAccount/Service/Deployment (whose
# pod kwok runs as a placeholder; the real istiod runs on this machine) and, once that istiod
# listens, the validating and injecting webhook configurations that call it by URL.
# Webhook configurations that name the istiod Service are left out: it has no real endpoint.
install_revision_objects() { # REV ("" = default) [extra istioctl --set args]
  local rev=$1; shift
  local out="$LAB_STATE/istio-control-plane${rev:+-$rev}.json"
  # No Prometheus metrics provider in the mesh config: it makes istiod send the Istio-only
  # istio.stats filter, which upstream Envoy (the lab's data plane) rejects.
  local args=(--set profile=minimal --set values.telemetry.v2.prometheus.enabled=false)
  [ -z "$rev" ] || args+=(--set "revision=$rev")
  # istioctl renders YAML; kubectl (client-side) turns it into JSON for the stdlib filter.
  "$ISTIOCTL" manifest generate "${args[@]}" "$@" \
    | kc create --dry-run=client -o json -f - \
    | python3 "$LAB_DIR/scripts/filter-manifest.py" >"$out"
  kc apply --server-side --field-manager=istio-lab-installer -f "$out" >/dev/null
}

free_ports() { # N -> N free loopback TCP ports, one a line
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

# The real istiod of revision REV (pilot-discovery of the pinned Istio module) on this machine,
# listening on loopback only and serving the TLS certificate of kwokctl's PKI (SAN 127.0.0.1).
# The API server calls it by URL: the webhook configurations istioctl renders for
# base.validationURL / istiodRemote.injectionURL with their caBundle (failurePolicy Fail).
start_istiod() { # REV ("" = default)
  local rev=$1 dir="$ISTIOD_ROOT/${1:-default}" ports http https grpc sgrpc mon pki="$CLUSTER_DIR/pki"
  mkdir -p "$dir"
  mapfile -t ports < <(free_ports 5)
  http=${ports[0]} https=${ports[1]} grpc=${ports[2]} sgrpc=${ports[3]} mon=${ports[4]}
  printf 'http=%s\nhttps=%s\ngrpc=%s\nsecureGrpc=%s\nmonitoring=%s\n' "$http" "$https" "$grpc" "$sgrpc" "$mon" >"$dir/ports"
  (
    cd "$dir"
    export POD_NAMESPACE=istio-system POD_NAME="istiod-lab${rev:+-$rev}" REVISION="${rev:-default}" KUBECONFIG="$LAB_KUBECONFIG"
    # the webhook configurations carry their own caBundle: istiod must not patch them
    export VALIDATION_WEBHOOK_CONFIG_NAME="" INJECTION_WEBHOOK_CONFIG_NAME=""
    # upstream Envoy (the lab's data plane) has no Istio-only extensions: no metadata exchange
    # (istio.metadata_exchange, io.istio.http.peer_metadata) and no istio.alpn filter
    export PILOT_ENABLE_METADATA_EXCHANGE=false PILOT_ENABLE_ALPN_FILTER=false
    setsid nohup "$ISTIO_BIN/pilot-discovery" discovery \
      --kubeconfig "$LAB_KUBECONFIG" --namespace istio-system --clusterID Kubernetes \
      --httpAddr "127.0.0.1:$http" --httpsAddr "127.0.0.1:$https" --grpcAddr "127.0.0.1:$grpc" \
      --secureGRPCAddr "127.0.0.1:$sgrpc" --monitoringAddr "127.0.0.1:$mon" \
      --tlsCertFile "$pki/admin.crt" --tlsKeyFile "$pki/admin.key" --caCertFile "$pki/ca.crt" \
      --log_output_level default:info \
      </dev/null >"$dir/istiod.log" 2>&1 &
    echo $! >"$dir/istiod.pid"
  )
  wait_for 120 "istiod ${rev:-default} /ready" istiod_ready "$dir" \
    || { tail -n 30 "$dir/istiod.log" >&2; die "istiod ${rev:-default} did not become ready (log: $dir/istiod.log)"; }
}

stop_istiods() {
  local d pid
  for d in "$ISTIOD_ROOT"/*/; do
    pid=$(cat "$d/istiod.pid" 2>/dev/null) || continue
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$ISTIOD_ROOT"
}

# Install Istio revision REV ("" = the default revision) into the running lab.
install_revision() { # REV
  local rev=$1 dir="$ISTIOD_ROOT/${1:-default}"
  install_revision_objects "$rev"
  [ "$ISTIOD" = 1 ] || return 0
  if [ -f "$dir/ports" ] && kill -0 "$(cat "$dir/istiod.pid" 2>/dev/null)" 2>/dev/null; then
    lab_log "istiod ${rev:-default} already running"
  else
    lab_log "starting istiod ${rev:-default} (validating and injecting webhook on loopback)"
    start_istiod "$rev"
  fi
  local https ca
  https=$(port_of "$dir" https); ca=$(base64 -w0 <"$CLUSTER_DIR/pki/ca.crt")
  install_revision_objects "$rev" \
    --set values.base.validationURL="https://127.0.0.1:$https/validate" \
    --set values.base.validationCABundle="$ca" \
    --set values.istiodRemote.injectionURL="https://127.0.0.1:$https/inject" \
    --set values.istiodRemote.injectionCABundle="$ca"
}

wait_for() { # SECONDS DESCRIPTION CMD...
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { lab_log "timed out after ${t}s waiting for $what"; return 1; }
    sleep 1
  done
}

down_quiet() {
  stop_istiods
  stop_dataplane
  if [ -x "${KWOKCTL:-}" ] && [ -d "$CLUSTER_DIR" ]; then
    "$KWOKCTL" delete cluster --name "$LAB_CLUSTER" --kubeconfig "$LAB_KUBECONFIG" >>"$LOG" 2>&1 || true
  fi
  # anything kwokctl left behind (a crashed delete): its pid files name the processes
  local p
  for p in "$CLUSTER_DIR"/pids/*.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  rm -rf "$LAB_STATE/READY" "$KWOK_STATE" "$PODS_DIR" "$LAB_KUBECONFIG" "$DP_MODE_FILE" "$DP_DIR"
}

cmd_up() {
  "$LAB_DIR/scripts/build.sh" --cached || die "lab binaries not built for these pins; run: make lab-build"
  load_dirs
  link_current
  mkdir -p "$LAB_STATE"
  if healthy; then
    lab_log "already up; KUBECONFIG=$LAB_KUBECONFIG"
    return 0
  fi
  local start; start=$(date +%s)
  : >"$LOG"
  rm -f "$LAB_STATE/READY"
  down_quiet   # stale state from a crash or a reboot: start from nothing
  # a failed lab-up leaves nothing running behind it
  trap '[ -f "$LAB_STATE/READY" ] || { lab_log "lab-up failed: stopping what it started"; down_quiet; }' EXIT
  mkdir -p "$LAB_STATE" "$PODS_DIR"
  decide_dataplane
  write_config
  lab_log "starting control plane (kwokctl, binary runtime); log: $LOG"
  if ! "$KWOKCTL" --config "$LAB_STATE/kwokctl.yaml" create cluster --name "$LAB_CLUSTER" \
        --kubeconfig "$LAB_KUBECONFIG" --wait 2m >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    die "kwokctl create cluster failed (logs: $CLUSTER_DIR/logs)"
  fi
  kc config use-context "kwok-$LAB_CLUSTER" >/dev/null
  wait_for 120 "API server /readyz" kc get --raw /readyz || die "API server not ready (logs: $CLUSTER_DIR/logs)"
  wait_for 60 "default service account" kc -n default get serviceaccount default || die "controller-manager not working"

  kc apply --server-side -f "$LAB_DIR/manifests/nodes.yaml" >/dev/null
  wait_for 120 "nodes Ready" kc wait --for=condition=Ready node --all --timeout=5s || die "kwok nodes not Ready"

  lab_log "installing Istio CRDs ($ISTIO_MODULE_VERSION)"
  kc apply --server-side -f "$ISTIO_BIN/crd-all.gen.yaml" >/dev/null
  kc wait --for=condition=Established crd -l chart=istio --timeout=60s >/dev/null
  kc create namespace istio-system --dry-run=client -o yaml | kc apply --server-side -f - >/dev/null
  local rev
  for rev in "" $ISTIO_REVISIONS; do install_revision "$rev"; done

  wait_for 60 "Exec CRD" kc get crd execs.kwok.x-k8s.io || die "kwok Exec CRD missing"
  if dataplane_on; then start_dataplane; fi
  echo "$(date -u +%FT%TZ) up" >"$LAB_STATE/READY"
  healthy || { rm -f "$LAB_STATE/READY"; die "lab did not come up healthy (logs: $CLUSTER_DIR/logs)"; }
  lab_log "up in $(( $(date +%s) - start ))s; KUBECONFIG=$LAB_KUBECONFIG"
}

cmd_down() {
  load_dirs
  if [ -d "$CLUSTER_DIR" ] || [ -f "$LAB_KUBECONFIG" ] || [ -d "$ISTIOD_ROOT" ] || [ -d "$DP_DIR" ]; then
    down_quiet
    lab_log "down"
  else
    lab_log "not running"
  fi
}

# One line "NAME pid PID RSS N MiB" for the process in PIDFILE; adds its RSS (KiB) to `total`.
rss_line() { # NAME PIDFILE
  local pid kb
  pid=$(cat "$2")
  kb=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ -n "$kb" ] || kb=0
  total=$(( total + kb ))
  printf '  %-26s pid %-8s RSS %6d MiB\n' "$1" "$pid" $(( kb / 1024 ))
}

rss_report() {
  local p d f total=0
  for p in "$CLUSTER_DIR"/pids/*.pid; do
    if [ -f "$p" ]; then rss_line "$(basename "$p" .pid)" "$p"; fi
  done
  for d in "$ISTIOD_ROOT"/*/; do
    if [ -f "$d/istiod.pid" ]; then rss_line "istiod $(basename "$d")" "$d/istiod.pid"; fi
  done
  for f in "$DP_DIR/dataplane.pid" "$DP_DIR/internet.pid"; do
    if [ -f "$f" ]; then rss_line "$(basename "$f" .pid)" "$f"; fi
  done
  printf '  %-26s              %6d MiB  (+ the proxies below)\n' total $(( total / 1024 ))
}

cmd_status() {
  load_dirs
  echo "kubeconfig: $LAB_KUBECONFIG"
  echo "binaries:   $LAB_CACHE/bin/current"
  echo "state:      $LAB_STATE"
  echo "hooks:      $HOOKS_DIR"
  if healthy; then
    echo "status:     up ($(kc version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'))"
    echo "processes:"; rss_report
    echo "nodes:"; kc get nodes --no-headers | sed 's/^/  /'
    echo "istio CRDs: $(kc get crd -l chart=istio --no-headers | wc -l)"
    echo "mesh ConfigMaps: $(kc -n istio-system get configmap -o go-template='{{range .items}}{{if .data.mesh}}{{.metadata.name}} {{end}}{{end}}')"
    local d found=0
    for d in "$ISTIOD_ROOT"/*/; do
      [ -f "$d/ports" ] || continue
      found=1
      echo "istiod $(basename "$d"): webhooks https://127.0.0.1:$(port_of "$d" https)/{validate,inject}, log $d/istiod.log"
    done
    [ $found = 1 ] || echo "istiod:     not running (MESHGUARD_LAB_ISTIOD=0)"
    if dataplane_on; then
      python3 "$LAB_DIR/scripts/dataplane.py" status --state "$LAB_STATE" || true
    else
      echo "data plane: not running: $(cat "$DP_MODE_FILE" 2>/dev/null || echo unknown)"
    fi
  else
    echo "status:     down"
    return 3
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  healthy) load_dirs; healthy ;;
  dataplane-check) python3 "$LAB_DIR/scripts/dataplane.py" check ;;
  egress-gateway)
    [ -n "${3:-}" ] || die "usage: lab.sh egress-gateway NAME NAMESPACE [--delete]"
    load_dirs; healthy || die "the lab is not up (make lab-up)"
    gwfile="$LAB_STATE/egress-gateway-$3-$2.json"
    if [ "${4:-}" = --delete ]; then
      [ ! -f "$gwfile" ] || kc delete --ignore-not-found --wait=true -f "$gwfile" >/dev/null
      rm -f "$gwfile"; exit 0
    fi
    kc create namespace "$3" --dry-run=client -o yaml | kc apply --server-side -f - >/dev/null
    "$ISTIOCTL" manifest generate --set profile=minimal \
      --set "components.egressGateways[0].enabled=true" --set "components.egressGateways[0].name=$2" \
      --set "components.egressGateways[0].namespace=$3" \
      | kc create --dry-run=client -o json -f - \
      | python3 "$LAB_DIR/scripts/filter-manifest.py" --gateway "$2" >"$gwfile"
    kc apply --server-side --field-manager=istio-lab-installer -f "$gwfile" >/dev/null
    kc -n "$3" rollout status "deployment/$2" --timeout=120s >/dev/null
    lab_log "egress gateway $3/$2 running" ;;
  revision)
    [ -n "${2:-}" ] || die "usage: lab.sh revision REV"
    [[ $2 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "revision must be a DNS label: $2"
    load_dirs; healthy || die "the lab is not up (make lab-up)"
    # already installed: leave its objects alone (a test may own fields of its mesh ConfigMap
    # by now, e.g. the collection's mesh_config role, and a re-apply would conflict)
    if [ -f "$ISTIOD_ROOT/$2/ports" ] && kc -n istio-system get configmap "istio-$2" >/dev/null 2>&1; then
      lab_log "revision $2 already installed"; exit 0
    fi
    rm -f "$LAB_STATE/READY"; install_revision "$2"; echo "$(date -u +%FT%TZ) up" >"$LAB_STATE/READY"
    healthy || die "lab unhealthy after adding revision $2" ;;
  kubeconfig) echo "$LAB_KUBECONFIG" ;;
  bindir) echo "$LAB_CACHE/bin/current" ;;
  *) die "usage: lab.sh up|down|status|healthy|dataplane-check|revision REV|egress-gateway NAME NS|kubeconfig|bindir" ;;
esac
