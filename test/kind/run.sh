#!/usr/bin/env bash
# npm run test:kind — weft's cluster install, end to end, on a throwaway kind cluster.
#
# Needs a running Docker engine, kind and kubectl (see README, "Kubernetes (kind)"), and
# network access for the image builds (npm registry, Debian mirrors, Docker Hub).
#
#  1. builds the image weft:dev (Dockerfile) and pulls the test image (busybox)
#  2. creates the kind cluster "weft-test" from kind-config.yaml (no default CNI,
#     podSubnet 10.244.0.0/16, control plane + two workers) and loads both images into it
#  3. applies deploy/weft.yaml, waits for the DaemonSet rollout, all nodes Ready and CoreDNS
#  4. runs one busybox pod per node (an httpd answering with its own pod name) and a
#     ClusterIP Service in front of them, then checks, printing PASS/FAIL for each:
#     the agent's RBAC (nodes list/watch only), weft installed on every node, overlay routes via the VXLAN device, pod IPs inside
#     their node's podCIDR, pod-to-pod across nodes (ICMP and TCP), pod-to-Service,
#     hairpin (a pod reaching itself through a Service), DNS; and from a second pod on the
#     first node (not in the Service) to that node's echo pod, directly and through a
#     Service: the fast path's same-node traffic, and a Service reply it must leave to
#     conntrack (its cross-node traffic is the pod-to-pod and pod-to-Service checks above)
#  5. deletes the cluster (also on failure, after printing diagnostics)
#
# Environment: WEFT_KIND_KEEP=1 keeps the cluster; WEFT_KIND_CLUSTER (default weft-test);
# WEFT_KIND_NODE_IMAGE (kind's --image, to pin a Kubernetes version); WEFT_TEST_IMAGE
# (default busybox:1.36); WEFT_KIND_TIMEOUT (each wait, default 300s).
# No bash 4 features (associative arrays, mapfile), so that macOS's bash 3.2 can run it.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${WEFT_KIND_CLUSTER:-weft-test}"
KEEP="${WEFT_KIND_KEEP:-0}"
NODE_IMAGE="${WEFT_KIND_NODE_IMAGE:-}"
TEST_IMAGE="${WEFT_TEST_IMAGE:-busybox:1.36}"
TIMEOUT="${WEFT_KIND_TIMEOUT:-300s}"
WEFT_IMAGE=weft:dev
TEST_NS=weft-e2e

say() { printf '\n== %s\n' "$*"; }
die() {
  printf 'test:kind: %s\n' "$*" >&2
  exit 2
}

missing=""
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  die "not found on PATH:$missing. This test needs Docker, kind (https://kind.sigs.k8s.io) and kubectl; see README.md, \"Kubernetes (kind)\"."
fi
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, and may this user use it?)"

# A kubeconfig of our own: the user's ~/.kube/config is never touched.
work="$(mktemp -d "${TMPDIR:-/tmp}/weft-kind.XXXXXX")"
export KUBECONFIG="$work/kubeconfig"
created=0

diagnostics() {
  set +e
  say "diagnostics"
  kubectl get nodes -o wide
  kubectl get pods -A -o wide
  kubectl -n weft-system describe daemonset weft | tail -n 25
  kubectl -n weft-system logs -l app.kubernetes.io/name=weft --all-containers --prefix --tail=60
  kubectl get events -A --field-selector type=Warning | tail -n 30
  for node in $(kind get nodes --name "$CLUSTER" 2>/dev/null); do
    echo "--- $node"
    docker exec "$node" sh -c 'ls -l /opt/cni/bin /etc/cni/net.d; cat /run/weft/subnet.json; echo;
      ip -d link show type vxlan; ip route; ip neigh show nud permanent; bridge fdb show | grep -i weft' 2>&1
  done
  set -e
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$created" = 1 ]; then
    if [ "$rc" != 0 ]; then diagnostics || true; fi
    if [ "$KEEP" = 1 ]; then
      say "kept cluster $CLUSTER: export KUBECONFIG=$KUBECONFIG (or: kind export kubeconfig --name $CLUSTER); delete with: kind delete cluster --name $CLUSTER"
      exit "$rc"
    fi
    say "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. images ----
say "building $WEFT_IMAGE"
docker build -t "$WEFT_IMAGE" .
if ! docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  say "pulling $TEST_IMAGE"
  docker pull "$TEST_IMAGE" || echo "note: could not pull $TEST_IMAGE here; the nodes will try the registry themselves"
fi

# ---- 2. cluster ----
existing="$(kind get clusters 2>/dev/null || true)"
if printf '%s\n' "$existing" | grep -qx "$CLUSTER"; then
  say "deleting the leftover cluster $CLUSTER"
  kind delete cluster --name "$CLUSTER"
fi
say "creating kind cluster $CLUSTER"
created=1
create_args=(--name "$CLUSTER" --config kind-config.yaml --kubeconfig "$KUBECONFIG")
if [ -n "$NODE_IMAGE" ]; then create_args+=(--image "$NODE_IMAGE"); fi
kind create cluster "${create_args[@]}"
# With Docker's containerd image store, `kind load docker-image` can fail on an image whose
# index names platforms or attestations it does not hold (kind#3795); an archive of this
# machine's platform alone loads.
# `docker save --platform` needs Docker 28; an older one saves the image as it is.
load_image() {
  kind load docker-image "$1" --name "$CLUSTER" && return
  say "loading $1 as an archive of this platform instead"
  { docker save --platform "linux/$(docker version -f '{{.Server.Arch}}')" -o "$work/image.tar" "$1" ||
    docker save -o "$work/image.tar" "$1"; } &&
    kind load image-archive "$work/image.tar" --name "$CLUSTER" && rm -f "$work/image.tar"
}
load_image "$WEFT_IMAGE"
if docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  load_image "$TEST_IMAGE" ||
    echo "note: could not load $TEST_IMAGE into the nodes; they will pull it from the registry"
fi

# ---- 3. weft ----
say "applying deploy/weft.yaml"
kubectl apply -f deploy/weft.yaml
kubectl -n weft-system rollout status daemonset/weft --timeout="$TIMEOUT"
kubectl wait --for=condition=Ready nodes --all --timeout="$TIMEOUT"
kubectl -n kube-system rollout status deployment/coredns --timeout="$TIMEOUT"
kubectl get nodes -o wide

# ---- 4. test pods ----
nodes=()
for n in $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}'); do nodes+=("$n"); done
[ "${#nodes[@]}" -ge 2 ] || die "expected at least two nodes, found ${#nodes[@]}"

say "starting one $TEST_IMAGE pod per node"
kubectl create namespace "$TEST_NS"
{
  for node in "${nodes[@]}"; do
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-$node
  namespace: $TEST_NS
  labels:
    app: weft-echo
    weft-e2e-pod: echo-$node
spec:
  nodeSelector:
    kubernetes.io/hostname: $node
  tolerations:
    - operator: Exists
  terminationGracePeriodSeconds: 1
  containers:
    - name: echo
      image: $TEST_IMAGE
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", "mkdir -p /www && echo \$POD_NAME > /www/index.html && exec httpd -f -p 8080 -h /www"]
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      ports:
        - containerPort: 8080
      securityContext:
        capabilities:
          add: ["NET_RAW"]
---
# Hairpin: a Service whose only endpoint is this pod, for the pod itself to call.
apiVersion: v1
kind: Service
metadata:
  name: self-$node
  namespace: $TEST_NS
spec:
  selector:
    weft-e2e-pod: echo-$node
  ports:
    - port: 80
      targetPort: 8080
EOF
  done
  cat <<EOF
---
# Another pod on the first node, in no Service: it calls that node's echo pod.
apiVersion: v1
kind: Pod
metadata:
  name: near-${nodes[0]}
  namespace: $TEST_NS
spec:
  nodeSelector:
    kubernetes.io/hostname: ${nodes[0]}
  tolerations:
    - operator: Exists
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: $TEST_IMAGE
      imagePullPolicy: IfNotPresent
      command: ["sleep", "86400"]
---
apiVersion: v1
kind: Service
metadata:
  name: weft-echo
  namespace: $TEST_NS
spec:
  selector:
    app: weft-echo
  ports:
    - port: 80
      targetPort: 8080
EOF
} | kubectl apply -f -
kubectl -n "$TEST_NS" wait --for=condition=Ready pod -l app=weft-echo --timeout="$TIMEOUT"
kubectl -n "$TEST_NS" wait --for=condition=Ready pod "near-${nodes[0]}" --timeout="$TIMEOUT"
kubectl -n "$TEST_NS" get pods -o wide

# Parallel arrays (bash 3.2 has no associative ones): pod i has ips[i], runs on pod_nodes[i].
pods=() ips=() pod_nodes=()
while read -r name ip node; do
  pods+=("$name")
  ips+=("$ip")
  pod_nodes+=("$node")
done < <(kubectl -n "$TEST_NS" get pods -l app=weft-echo \
  -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}')
[ "${#pods[@]}" = "${#nodes[@]}" ] || die "expected ${#nodes[@]} test pods, found ${#pods[@]}"
node_of_pod() {
  local i
  for i in "${!pods[@]}"; do
    if [ "${pods[$i]}" = "$1" ]; then
      echo "${pod_nodes[$i]}"
      return 0
    fi
  done
  echo "?"
}

svc_ip="$(kubectl -n "$TEST_NS" get service weft-echo -o jsonpath='{.spec.clusterIP}')"
api_ip="$(kubectl -n default get service kubernetes -o jsonpath='{.spec.clusterIP}')"
direct_routing="$(kubectl -n weft-system get configmap weft-config -o go-template='{{index .data "direct-routing"}}')"
vni="$(kubectl -n weft-system get configmap weft-config -o go-template='{{index .data "vni"}}')"

# ---- checks ----
passed=0
failed=0

# Runs a check up to 3 times (a fresh overlay may need a moment); prints PASS or FAIL with
# the last attempt's output.
check() {
  local title="$1" out="" status=0 try
  shift
  for try in 1 2 3; do
    out="$("$@" 2>&1)" && status=0 || status=$?
    if [ "$status" = 0 ]; then
      printf 'PASS  %s\n' "$title"
      passed=$((passed + 1))
      return 0
    fi
    [ "$try" = 3 ] || sleep 2
  done
  printf 'FAIL  %s\n' "$title"
  [ -n "$out" ] || out="(exit status $status, no output)"
  printf '%s\n' "$out" | tail -n 6 | sed 's/^/        /'
  failed=$((failed + 1))
  return 0
}

kx() {
  local pod="$1"
  shift
  kubectl -n "$TEST_NS" exec "$pod" -- "$@"
}

installed_on() {
  docker exec "$1" sh -c 'test -s /etc/cni/net.d/10-weft.conflist && test -s /run/weft/subnet.json &&
    for p in bridge host-local loopback; do [ /opt/cni/bin/$p -ef /opt/cni/bin/weft ] || { echo "/opt/cni/bin/$p is not weft"; exit 1; }; done &&
    /opt/cni/bin/weft version'
}

# Every other node's podCIDR is routed through the VXLAN device.
overlay_routes_on() {
  local node="$1" peer cidr routes
  for peer in "${nodes[@]}"; do
    [ "$peer" != "$node" ] || continue
    cidr="$(kubectl get node "$peer" -o jsonpath='{.spec.podCIDR}')"
    [ -n "$cidr" ] || { echo "$peer has no podCIDR"; return 1; }
    routes="$(docker exec "$node" ip route show "$cidr")"
    case "$routes" in
      *"dev weft.$vni "* | *"dev weft.$vni") ;;
      *) echo "route to $cidr ($peer): '${routes:-none}', want dev weft.$vni"; return 1 ;;
    esac
  done
}

ip2int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(((a << 24) + (b << 16) + (c << 8) + d))
}
ip_in_cidr() {
  local ip="$1" net="${2%/*}" bits="${2#*/}" mask
  mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
  [ $(($(ip2int "$ip") & mask)) = $(($(ip2int "$net") & mask)) ] || { echo "$ip is not in $2"; return 1; }
}
pod_in_node_cidr() {
  local cidr
  cidr="$(kubectl get node "$2" -o jsonpath='{.spec.podCIDR}')"
  ip_in_cidr "$1" "$cidr"
}

http_get() { # pod url expected-body
  local body
  body="$(kx "$1" wget -q -O - -T 5 "$2")" || return 1
  [ "$body" = "$3" ] || { echo "$2 answered '$body', want '$3'"; return 1; }
}

# 12 requests through the ClusterIP: all must answer, and some from a pod on another node
# (random pick among 3 backends: all 12 local has odds of about 2 in a million).
service_from() {
  local pod="$1" own answers line remote=0 n=0
  own="$(node_of_pod "$pod")"
  answers="$(kx "$pod" sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do wget -q -O - -T 5 http://$svc_ip/ || echo FAILED; done")" || return 1
  while read -r line; do
    n=$((n + 1))
    [ "$line" != FAILED ] || { echo "request $n to $svc_ip failed"; return 1; }
    [ "$(node_of_pod "$line")" = "$own" ] || remote=1
  done <<<"$answers"
  [ "$n" = 12 ] || { echo "$n answers to 12 requests"; return 1; }
  [ "$remote" = 1 ] || { echo "all 12 answers came from $own"; return 1; }
}

# busybox's nslookup does not apply resolv.conf's search list, hence the full name; the
# wget check below resolves a short name through the search list.
# Judged by the answer, not the exit status: busybox's nslookup also asks for AAAA, and
# versions differ in what "no AAAA record" does to it.
dns_lookup() { # pod name expected-ip
  local out
  out="$(kx "$1" nslookup "$2" 2>&1)" || true
  # The server's own "Address: 10.96.0.10:53" line must not pass for 10.96.0.1.
  printf '%s\n' "$out" | grep -Eq "^Address( 1)?:[[:space:]]*${3//./\\.}([[:space:]]|\$)" ||
    { printf '%s\n(want %s)\n' "$out" "$3"; return 1; }
}

# The agent's service account may list and watch nodes and nothing else: the cross-node
# pod checks below show list/watch are enough. Judged by the answer, not the exit status,
# which is also non-zero when can-i fails to ask.
can_i() { # verb resource [flags]: "yes" or "no" (the answer's first word), empty on failure
  local answer
  answer="$(kubectl auth can-i "$@" --as=system:serviceaccount:weft-system:weft 2>/dev/null)" || true
  echo "${answer%% *}"
}
rbac_minimal() {
  local verb
  for verb in list watch; do
    [ "$(can_i "$verb" nodes)" = yes ] || { echo "cannot $verb nodes (or can-i failed)"; return 1; }
  done
  for verb in get patch update delete; do
    [ "$(can_i "$verb" nodes)" = no ] || { echo "may $verb nodes (or can-i failed)"; return 1; }
  done
  [ "$(can_i list pods --all-namespaces)" = no ] || { echo "may list pods (or can-i failed)"; return 1; }
}

say "checks"
check "RBAC: weft-system:weft may list and watch nodes, and not get, patch, update or delete them" rbac_minimal
for node in "${nodes[@]}"; do
  check "node $node: weft executable, plugin links, subnet.json and 10-weft.conflist" installed_on "$node"
  if [ "$direct_routing" = never ]; then
    check "node $node: peers' podCIDRs routed via weft.$vni" overlay_routes_on "$node"
  else
    printf 'SKIP  node %s: overlay routes (direct-routing is %s)\n' "$node" "$direct_routing"
  fi
done
for i in "${!pods[@]}"; do
  check "pod ${pods[$i]} (${ips[$i]}) inside the podCIDR of ${pod_nodes[$i]}" pod_in_node_cidr "${ips[$i]}" "${pod_nodes[$i]}"
done
for i in "${!pods[@]}"; do
  for j in "${!pods[@]}"; do
    [ "${pod_nodes[$i]}" != "${pod_nodes[$j]}" ] || continue
    what="${pods[$i]} -> ${pods[$j]} (${ips[$j]}, ${pod_nodes[$i]} -> ${pod_nodes[$j]})"
    check "pod-to-pod ICMP  $what" kx "${pods[$i]}" ping -c 3 -W 2 "${ips[$j]}"
    check "pod-to-pod TCP   $what" http_get "${pods[$i]}" "http://${ips[$j]}:8080/" "${pods[$j]}"
  done
done
for i in "${!pods[@]}"; do
  pod="${pods[$i]}"
  self_ip="$(kubectl -n "$TEST_NS" get service "self-${pod_nodes[$i]}" -o jsonpath='{.spec.clusterIP}')"
  check "hairpin          $pod -> self-${pod_nodes[$i]} ($self_ip:80), itself the only endpoint" \
    http_get "$pod" "http://$self_ip/" "$pod"
  check "pod-to-Service   $pod -> weft-echo ($svc_ip:80), 12 requests, some to other nodes" service_from "$pod"
  check "DNS              $pod: kubernetes.default.svc.cluster.local = $api_ip" \
    dns_lookup "$pod" kubernetes.default.svc.cluster.local "$api_ip"
  check "DNS + Service    $pod: http://weft-echo.$TEST_NS/ (search list)" \
    kx "$pod" wget -q -O /dev/null -T 5 "http://weft-echo.$TEST_NS/"
done

# Same node: pod to pod goes past the bridge where the agent's fast path is on (its log
# says whether it is); a Service reply from a pod of the node must still come from the
# ClusterIP, which only conntrack in the node can do.
near="near-${nodes[0]}"
echo_ip="$(kubectl -n "$TEST_NS" get pod "echo-${nodes[0]}" -o jsonpath='{.status.podIP}')"
agent_pod="$(kubectl -n weft-system get pods -l app.kubernetes.io/name=weft --field-selector "spec.nodeName=${nodes[0]}" -o name)"
kubectl -n weft-system logs "$agent_pod" -c agent | grep -E "^fast path (on|off)" || true
self_ip="$(kubectl -n "$TEST_NS" get service "self-${nodes[0]}" -o jsonpath='{.spec.clusterIP}')"
check "same-node TCP    $near -> echo-${nodes[0]} ($echo_ip)" http_get "$near" "http://$echo_ip:8080/" "echo-${nodes[0]}"
check "same-node Service $near -> self-${nodes[0]} ($self_ip:80), its endpoint on the same node" \
  http_get "$near" "http://$self_ip/" "echo-${nodes[0]}"

say "test:kind: $passed passed, $failed failed"
[ "$failed" = 0 ]
