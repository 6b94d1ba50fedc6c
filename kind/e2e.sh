#!/usr/bin/env bash
# `make e2e`: the e2e suite on a kind cluster.
#
#   1. kind/up.sh: images, cluster (reused when it exists), both releases;
#   2. the Ginkgo suite in e2e/ with E2E_TARGET=kind: from this host through
#      the sockets the node exposes (build/kind/node/...), and in the cluster;
#   3. when anything fails, kind/dump.sh prints the pods' logs and
#      `kubectl describe` output.
#
# The cluster is left running, for the next run and for a look at it;
# `make e2e-down` deletes it.
#
# usage: kind/e2e.sh [ginkgo flags...]   e.g. kind/e2e.sh --focus=restart
set -o errexit -o nounset -o pipefail

# shellcheck source=kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "${REPO_ROOT}"

START="${SECONDS}"

on_exit() {
	local rc=$?
	local took=$((SECONDS - START))
	if ((rc != 0)); then
		log "make e2e FAILED (exit ${rc}) after ${took}s; diagnostics follow"
		kind/dump.sh || true
		log "make e2e FAILED (exit ${rc}) after ${took}s"
	else
		log "make e2e PASSED in ${took}s"
	fi
	if cluster_exists; then
		info "the cluster ${KIND_CLUSTER_NAME} is still up: export KUBECONFIG=${KUBECONFIG}"
		info "make e2e-down deletes it"
	fi
	exit "${rc}"
}

run_suite() {
	log "running the e2e suite (E2E_TARGET=kind, ${E2E_PROCS} processes)"
	mkdir -p "${ARTIFACTS}"
	# The server under test is the image; the suite builds no -race server.
	# Most of a spec's time is the cluster's (a release installed, its pod
	# started): specs run in parallel processes, each with releases of its
	# own, the ordered ones (in-cluster, lifecycle) each in one process.
	E2E_TARGET=kind E2E_KIND_TARGET_FILE="${TARGET_FILE}" E2E_RACE=0 E2E_HELM="${HELM_EXE}" build_nice \
		go tool -modfile=tools/go.mod ginkgo run \
		-v --timeout=20m --procs="${E2E_PROCS}" \
		--output-dir="${ARTIFACTS}" --junit-report=junit.xml \
		"$@" ./e2e
}

main() {
	trap on_exit EXIT
	resolve_tools # once, for kind/up.sh and kind/dump.sh too
	kind/up.sh
	run_suite "$@"
}

main "$@"
