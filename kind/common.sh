# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the scripts that source this
# Settings and helpers shared by the kind/ scripts. Sourced, not run.
#
# Every setting can be overridden from the environment:
#   KIND_CLUSTER_NAME  the cluster's name                  (ccnp-eventlog-e2e)
#   KIND_NODE_IMAGE    the node image                      (DEFAULT_NODE_IMAGE below)
#   E2E_DEPLOY_TIMEOUT seconds a DaemonSet may take to roll out (120)
#   E2E_PROCS          parallel processes of the suite (4)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The node image when KIND_NODE_IMAGE is not set: the one kind v0.33.0 (the
# version pinned in tools/go.mod) defaults to, by tag and digest. This is the
# only place it is named. Where no registry can be reached, build a node image
# locally and point KIND_NODE_IMAGE at it (kind/README.md).
DEFAULT_NODE_IMAGE="kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"

KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-ccnp-eventlog-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-${DEFAULT_NODE_IMAGE}}"
E2E_DEPLOY_TIMEOUT="${E2E_DEPLOY_TIMEOUT:-120}"
# Four: the suite's time is the cluster's CPU (about 5 CPU-seconds per
# release installed and removed) and its waits (pods starting, 30 s probe
# watches, a rolling upgrade); a fourth process fills the waits (a warm
# run at load 22: suite 246 s with four, 299 s with three).
E2E_PROCS="${E2E_PROCS:-4}"

# Everything the scripts write is under build/kind (gitignored):
#   kubeconfig   the cluster's kubeconfig (~/.kube/config is left alone)
#   node/        host side of the node's extraMounts (kind/cluster.yaml)
#   images/      build contexts of the images loaded into the node
#   target.json  what kind/up.sh deployed, read by the suite (E2E_TARGET=kind)
#   artifacts/   JUnit report, and what kind/dump.sh collects when a run fails
BUILD_DIR="${REPO_ROOT}/build/kind"
NODE_DIR="${BUILD_DIR}/node"
export KUBECONFIG="${BUILD_DIR}/kubeconfig"
TARGET_FILE="${BUILD_DIR}/target.json"
ARTIFACTS="${BUILD_DIR}/artifacts"

# The releases of the chart: namespace and DaemonSet of each. The
# simulated one has the name deployment/manifests is rendered with, so that
# those manifests apply over it (e2e/incluster_test.go dry-runs them).
SIM_RELEASE=eventlog-server
SIM_NAMESPACE=ccnp
SIM_DAEMONSET=eventlog-server
FAKEHOST_RELEASE=eventlog-fakehost
FAKEHOST_NAMESPACE=ccnp-fakehost
FAKEHOST_DAEMONSET=eventlog-server-fakehost
KERNEL68_RELEASE=eventlog-kernel68
KERNEL68_NAMESPACE=ccnp-kernel68
KERNEL68_DAEMONSET=eventlog-server-kernel68
# Where the fake host tree is on the node (kind/cluster.yaml).
FAKEHOST_TREE=/var/lib/ccnp-e2e/fakehost

# Images built here and loaded into the node; their tags are set when built.
SERVER_REPO=ccnp-eventlog-server
E2E_REPO=ccnp-eventlog-e2e

# Go tools are pinned in tools/go.mod. Each is looked up once (go tool -n
# prints its executable, built and cached by Go) and then run directly:
# every `go tool` run costs 1-3 s of Go's own start-up on a loaded 2-core
# machine. resolve_tools looks both up in the calling shell and exports
# them, so that the pipelines and scripts it runs reuse them.
resolve_tools() {
	if [[ -z "${KIND_EXE:-}" ]]; then
		KIND_EXE="$(go tool -modfile="${REPO_ROOT}/tools/go.mod" -n kind)" || die "go tool -n kind failed"
		export KIND_EXE
	fi
	if [[ -z "${HELM_EXE:-}" ]]; then
		HELM_EXE="$(go tool -modfile="${REPO_ROOT}/tools/go.mod" -n helm)" || die "go tool -n helm failed"
		export HELM_EXE
	fi
}
kind() { resolve_tools && "${KIND_EXE}" "$@"; }
helm() { resolve_tools && "${HELM_EXE}" "$@"; }

# Builds share two cores with other work.
build_nice() { nice -n 10 "$@"; }

log() { printf '\n=== [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

need_cmd() {
	local c
	for c in "$@"; do
		command -v "${c}" >/dev/null 2>&1 || die "${c} not found in PATH (kind/README.md lists what make e2e needs)"
	done
}

cluster_exists() {
	kind get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"
}

node_container() { echo "${KIND_CLUSTER_NAME}-control-plane"; }
