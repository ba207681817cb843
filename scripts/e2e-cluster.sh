#!/usr/bin/env bash
# A real Kubernetes API server on loopback for the end-to-end suite (no containers needed).
#
#   scripts/e2e-cluster.sh build   install apt packages; build kube-apiserver and
#                                  kube-controller-manager once per machine (cached)
#   scripts/e2e-cluster.sh up      build if needed, then start etcd, kube-apiserver and
#                                  kube-controller-manager with a throwaway PKI and audit log
#   scripts/e2e-cluster.sh env     print the shell exports for the running cluster
#   scripts/e2e-cluster.sh down    stop everything by PID and remove the run directory
#   scripts/e2e-cluster.sh suite [FILTER]
#                                  up, the e2e suite (`cargo test --test e2e`), down (also on
#                                  failure); what `make e2e` runs without a cluster
#   scripts/e2e-cluster.sh replica start|stop|kill N
#                                  start replica N (1 or 2), or stop it with SIGTERM / SIGKILL
#
# `up` installs mtls-gate as a user would, except that it runs out of cluster (there is no
# kubelet): the CRD from crds/, then the chart's ServiceAccount, RBAC and webhook
# configurations rendered by the real Helm engine (tests/e2e/install.py), with clientConfig
# rewritten to https://127.0.0.1:$E2E_WEBHOOK_PORT. Two `mtls-gate run` replicas (each with
# a kubeconfig holding the chart ServiceAccount's token, not admin credentials) sit behind a
# loopback TCP balancer (tests/e2e/balancer.py) standing in for the chart's Service. They
# run with the chart's default self-managed certificates (the leader issues them into the
# Secret mtls-gate-webhook-tls and sets the webhooks' caBundle; 127.0.0.1 is on the serving
# certificate through --cert-extra-san, as the API server calls that address) and with
# policy reports on; tests/e2e/secret_volume.py stands in for the kubelet that projects the
# Secret into the pods' files. Binary: $MTLS_GATE_BIN (default: target/debug/mtls-gate,
# built here).
#
# Recipe: /work/shared/reference/kube-apiserver-from-debian.md (Debian bookworm's source
# package `kubernetes`, upstream v1.20.2 with vendor/, built with Debian's Go).
# Binaries are cached in ${MTLS_GATE_CACHE:-~/.cache/mtls-gate}/kube-<package version>/.
# The run directory is ${E2E_CLUSTER_DIR:-<repo>/.e2e-cluster} (git-ignored).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
kube_pkg_version=1.20.5+really1.20.2-1.1+deb12u1
kube_src_dir=kubernetes-1.20.5+really1.20.2
cache=${MTLS_GATE_CACHE:-$HOME/.cache/mtls-gate}
bin_dir=$cache/kube-$kube_pkg_version/bin
run_dir=${E2E_CLUSTER_DIR:-$repo/.e2e-cluster}
api_port=${E2E_API_PORT:-16443}
etcd_port=${E2E_ETCD_PORT:-12379}
etcd_peer_port=${E2E_ETCD_PEER_PORT:-12380}
kcm_port=${E2E_KCM_PORT:-10257}

log() { echo "e2e-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

apt_packages=(golang-go etcd-server golang-github-modern-go-reflect2-dev rsync jq dpkg-dev
  openssl make gcc libc6-dev ca-certificates curl python3 python3-venv)

# apt-get, waiting for other apt/dpkg processes (a shared machine) instead of failing.
apt_get() {
  local i
  for i in $(seq 1 60); do
    apt-get -o DPkg::Lock::Timeout=600 "$@" && return 0
    log "apt-get $1 failed (lock held?); retry $i/60 in 10 s"
    sleep 10
  done
  die "apt-get $* kept failing"
}

install_packages() {
  local missing=()
  # kubectl: whatever is on PATH, else Debian's (v1.20.2, from the same source package).
  command -v kubectl >/dev/null || apt_packages+=(kubernetes-client)
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get; install them"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  install_packages
  if [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kube-controller-manager" ]; then
    return 0
  fi
  local w=$cache/build-$kube_pkg_version
  log "building kube-apiserver and kube-controller-manager $kube_pkg_version in $w (~10 min)"
  rm -rf "$w"
  mkdir -p "$w/apt/parts" "$w/apt/lists/partial"
  local sp
  eval "$(apt-config shell sp Dir::Etc::sourceparts/d)"
  if [ -f "$sp/debian.sources" ]; then
    sed 's/^Types: deb$/Types: deb-src/' "$sp/debian.sources" > "$w/apt/parts/src.sources"
  elif grep -qs '^deb ' /etc/apt/sources.list; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$w/apt/parts/src.list"
  else
    die "no Debian apt source ($sp/debian.sources or /etc/apt/sources.list) to derive deb-src from"
  fi
  local apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$w/apt/parts"
             -o "Dir::State::Lists=$w/apt/lists")
  apt_get "${apt[@]}" update -qq
  (cd "$w" && apt-get "${apt[@]}" source -qq "kubernetes=$kube_pkg_version" >/dev/null)
  cd "$w/$kube_src_dir"
  # The vendored reflect2 v1.0.1 breaks on Go >= 1.18; Debian's 1.0.2 is the upstream fix.
  local r=vendor/github.com/modern-go/reflect2 src
  src=$(dirname "$(dpkg -L golang-github-modern-go-reflect2-dev | grep '/reflect2/reflect2.go$')")
  find "$r" \( -name '*.go' -o -name '*.s' \) -delete
  cp "$src"/*.go "$src"/*.s "$r"/ && rm -f "$r"/*_test.go
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  # Low priority by default: on a shared machine other builds keep their CPU.
  nice -n "${E2E_BUILD_NICE:-10}" env GOPATH="$PWD/.go" GOFLAGS= GOPROXY=off CGO_ENABLED=0 HOME="$w" \
    KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT="debian-$kube_pkg_version" \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$w/build.log" 2>&1 \
    || { tail -30 "$w/build.log" >&2; die "build failed; log: $w/build.log"; }
  mkdir -p "$bin_dir.tmp"
  cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$bin_dir.tmp"/
  rm -rf "$bin_dir" && mv "$bin_dir.tmp" "$bin_dir"
  cd / && rm -rf "$w"
  log "built $bin_dir"
}


# ---- run: etcd, kube-apiserver, kube-controller-manager ----------------------------------

webhook_port=${E2E_WEBHOOK_PORT:-18443}
replica_ports=(0 18444 18445)
probe_ports=(0 18081 18082)
release=mtls-gate
release_ns=mtls-gate
kubectl_admin() { kubectl --kubeconfig "$run_dir/kubeconfig" "$@"; }

# start NAME CMD...: runs CMD in the background with its log and PID file in the run dir.
start() {
  local name=$1; shift
  nohup "$@" >>"$run_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
}

# stop NAME [SIGNAL]: signals the process of NAME.pid, waits up to 60 s, then SIGKILL.
stop() {
  local name=$1 sig=${2:-TERM} pid i
  [ -f "$run_dir/$name.pid" ] || return 0
  pid=$(cat "$run_dir/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -s "$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running after 60 s; SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$run_dir/$name.pid"
}

# wait_for WHAT SECONDS CMD...: polls CMD every second.
wait_for() {
  local what=$1 secs=$2 i; shift 2
  for i in $(seq 1 "$secs"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "timed out after $secs s waiting for $what"
  return 1
}

pki() {
  local d=$run_dir/pki
  mkdir -p "$d" && cd "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
    -subj /CN=mtls-gate-e2e-ca 2>/dev/null
  sign() { # sign NAME SUBJECT EXTENSIONS
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
      -days 7 -extfile "$1.ext" 2>/dev/null
  }
  local server='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
  sign apiserver /CN=kube-apiserver \
    "${server}subjectAltName=DNS:localhost,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1\n"
  sign admin "/O=system:masters/CN=mtls-gate-e2e-admin" \
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd "$repo"
}

write_kubeconfig() { # write_kubeconfig FILE USER-YAML
  cat >"$1" <<K
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://127.0.0.1:$api_port", certificate-authority-data: $(base64 -w0 "$run_dir/pki/ca.crt")}}]
users: [{name: user, user: {$2}}]
contexts: [{name: e2e, context: {cluster: e2e, user: user}}]
current-context: e2e
K
  chmod 600 "$1"
}

# Audit policy, Metadata level: every request of the operator's ServiceAccount (so the
# suite can check that the chart's RBAC refused none) and every write by anyone (so it can
# count writes); other reads are not logged.
audit_policy() {
  cat >"$run_dir/audit-policy.yaml" <<A
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["system:serviceaccount:$release_ns:$release"]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
A
}

start_cluster() {
  local pki=$run_dir/pki
  mkdir -p "$run_dir/etcd"
  start etcd etcd --name e2e --data-dir "$run_dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync
  audit_policy
  start kube-apiserver "$bin_dir/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --authorization-mode=RBAC \
    --audit-policy-file="$run_dir/audit-policy.yaml" --audit-log-path="$run_dir/audit.log" \
    --audit-log-format=json --audit-log-maxsize=0
  write_kubeconfig "$run_dir/kubeconfig" \
    "client-certificate-data: $(base64 -w0 "$pki/admin.crt"), client-key-data: $(base64 -w0 "$pki/admin.key")"
  wait_for "kube-apiserver /readyz" 180 kubectl_admin get --raw /readyz \
    || { tail -20 "$run_dir/kube-apiserver.log" >&2; return 1; }
  start kube-controller-manager "$bin_dir/kube-controller-manager" \
    --kubeconfig="$run_dir/kubeconfig" --authentication-kubeconfig="$run_dir/kubeconfig" \
    --authorization-kubeconfig="$run_dir/kubeconfig" --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" --port=0 --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" --leader-elect=false
}

# ---- install: CRD, chart objects, ServiceAccount token, replicas --------------------------

venv_python() {
  [ -x "$repo/.venv/bin/python" ] && "$repo/.venv/bin/python" -c 'import helm_python, yaml' 2>/dev/null \
    || "$repo/scripts/test-chart.sh" --venv-only >&2
  echo "$repo/.venv/bin/python"
}

install_operator() {
  local py
  py=$(venv_python)
  kubectl_admin create namespace "$release_ns" >/dev/null
  # Kubernetes >= 1.21 labels every namespace with its name, which the chart's
  # namespaceSelector excludes by; v1.20 does not, so label the excluded ones as 1.21 would.
  local ns
  for ns in kube-system kube-node-lease "$release_ns"; do
    kubectl_admin label --overwrite namespace "$ns" "kubernetes.io/metadata.name=$ns" >/dev/null
  done
  kubectl_admin apply --server-side -f "$repo/crds/apiproviderprofiles.yaml" >/dev/null
  kubectl_admin wait --for=condition=Established --timeout=120s crd/apiproviderprofiles.mtls-gate.io >/dev/null
  "$py" "$repo/tests/e2e/install.py" --release "$release" --namespace "$release_ns" \
    --url "https://127.0.0.1:$webhook_port" \
    --set clientCaSecretNames='["e2e-client-ca"]' --set policyReports.enabled=true \
    >"$run_dir/install.yaml"
  # --validate=false: v1.20's schema has no webhook matchConditions (the server drops them).
  kubectl_admin apply --validate=false -f "$run_dir/install.yaml" >/dev/null
  # The ServiceAccount's token: a token Secret, which the token controller fills (v1.20 has
  # no `kubectl create token`; this also works on current clusters).
  kubectl_admin -n "$release_ns" apply -f - >/dev/null <<S
apiVersion: v1
kind: Secret
metadata:
  name: $release-e2e-token
  annotations: {kubernetes.io/service-account.name: $release}
type: kubernetes.io/service-account-token
S
  wait_for "the ServiceAccount token" 120 sh -c \
    "kubectl --kubeconfig '$run_dir/kubeconfig' -n '$release_ns' get secret '$release-e2e-token' -o jsonpath='{.data.token}' | grep -q ."
  local token
  token=$(kubectl_admin -n "$release_ns" get secret "$release-e2e-token" -o jsonpath='{.data.token}' | base64 -d)
  write_kubeconfig "$run_dir/operator.kubeconfig" "token: $token"
}

operator_bin() {
  if [ -n "${MTLS_GATE_BIN:-}" ]; then echo "$MTLS_GATE_BIN"; return; fi
  (cd "$repo" && cargo build --locked --quiet --bin mtls-gate >&2)
  echo "$repo/target/debug/mtls-gate"
}

replica_start() {
  local n=$1 bin
  bin=$(cat "$run_dir/operator.bin")
  stop "replica-$n" KILL
  start "replica-$n" env RUST_LOG="${E2E_RUST_LOG:-info}" NO_COLOR=1 "$bin" run \
    --kubeconfig "$run_dir/operator.kubeconfig" \
    --listen "127.0.0.1:${replica_ports[$n]}" --probe-listen "127.0.0.1:${probe_ports[$n]}" \
    --tls-cert-file "$run_dir/webhook-tls/tls.crt" --tls-key-file "$run_dir/webhook-tls/tls.key" \
    --self-managed-certs --cert-secret-name "$release-webhook-tls" \
    --webhook-service-name "$release" --validating-webhook-name "$release" \
    --mutating-webhook-name "$release" --cert-extra-san 127.0.0.1 \
    --cert-check-interval "${E2E_CERT_CHECK_INTERVAL:-2s}" --policy-reports \
    --exclude-namespaces "kube-system,kube-node-lease,$release_ns" \
    --watch-controllers ingress-nginx,haproxy-ingress \
    --leader-election-namespace "$release_ns" --leader-election-lease-name "$release-leader" \
    --pod-name "replica-$n" --log-format json --shutdown-grace-period 5s \
    --requeue-interval "${E2E_REQUEUE_INTERVAL:-15s}"
  wait_for "replica $n /readyz" 180 curl -fsS "http://127.0.0.1:${probe_ports[$n]}/readyz" \
    || { tail -20 "$run_dir/replica-$n.log" >&2; return 1; }
}

up() {
  build
  down_quiet
  mkdir -p "$run_dir"
  trap 'log "up failed; tearing down"; down' EXIT
  operator_bin >"$run_dir/operator.bin"
  pki
  start_cluster
  install_operator
  # The kubelet's projection of the self-managed certificate Secret (see the top).
  start secret-volume python3 "$repo/tests/e2e/secret_volume.py" \
    --server "https://127.0.0.1:$api_port" --ca "$run_dir/pki/ca.crt" \
    --cert "$run_dir/pki/admin.crt" --key "$run_dir/pki/admin.key" \
    --namespace "$release_ns" --secret "$release-webhook-tls" --dir "$run_dir/webhook-tls"
  start balancer python3 "$repo/tests/e2e/balancer.py" "127.0.0.1:$webhook_port" \
    "127.0.0.1:${replica_ports[1]}" "127.0.0.1:${replica_ports[2]}"
  replica_start 1
  replica_start 2
  trap - EXIT
  log "up: kube-apiserver v1.20.2 on https://127.0.0.1:$api_port, two replicas behind https://127.0.0.1:$webhook_port"
  env_exports >&2
}

env_exports() {
  cat <<E
export MTLS_GATE_E2E_KUBECONFIG=$run_dir/kubeconfig
export MTLS_GATE_E2E_LOCAL=$run_dir
export MTLS_GATE_E2E_AUDIT_LOG=$run_dir/audit.log
E
}

down_quiet() {
  [ -d "$run_dir" ] || return 0
  local name
  for name in replica-1 replica-2 balancer secret-volume kube-controller-manager kube-apiserver etcd; do
    stop "$name"
  done
  rm -rf "$run_dir"
}

down() { down_quiet; log "down: stopped and removed $run_dir"; }

suite() {
  up
  trap down EXIT
  trap 'exit 130' INT TERM
  # shellcheck disable=SC1090
  eval "$(env_exports)"
  export MTLS_GATE_E2E_KUBECONFIG MTLS_GATE_E2E_LOCAL MTLS_GATE_E2E_AUDIT_LOG
  cd "$repo"
  # A hung run must not hold CI: the scenarios take minutes, the bound is generous.
  timeout --kill-after=30 "${E2E_SUITE_TIMEOUT:-2400}" \
    cargo test --locked --test e2e -- --nocapture --test-threads=1 "$@"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  env) [ -f "$run_dir/kubeconfig" ] || die "no cluster in $run_dir (run: $0 up)"; env_exports ;;
  suite) shift; suite "$@" ;;
  replica)
    case "${2:-}:${3:-}" in
      start:[12]) replica_start "$3" ;;
      stop:[12]) stop "replica-$3" TERM ;;
      kill:[12]) stop "replica-$3" KILL ;;
      *) die "usage: $0 replica start|stop|kill 1|2" ;;
    esac ;;
  *) sed -n '2,27p' "$0"; exit 2 ;;
esac
