#!/usr/bin/env bash
# `make e2e-down`: deletes the e2e cluster and what kind/up.sh left under
# build/kind and in docker (the e2e-* image tags). build/kind/artifacts stays.
#
# usage: kind/down.sh   (settings: kind/common.sh)
set -o errexit -o nounset -o pipefail

# shellcheck source=kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

delete_cluster() {
	if cluster_exists; then
		# What the pods wrote there belongs to root and uid 1000: the node,
		# as root, removes it, so that this needs no root on the host.
		log "emptying the node's host directories"
		docker exec "$(node_container)" sh -c \
			'rm -rf /run/ccnp/uds/* /run/ccnp-eventlog/* /run/ccnp-e2e/*' || true
		log "deleting cluster ${KIND_CLUSTER_NAME}"
		kind delete cluster --name "${KIND_CLUSTER_NAME}" --kubeconfig "${KUBECONFIG}"
	else
		log "no cluster ${KIND_CLUSTER_NAME}"
	fi
}

remove_build_files() {
	log "removing kind/up.sh's files under ${BUILD_DIR} (artifacts/ stays)"
	rm -rf "${NODE_DIR}" "${BUILD_DIR}/images" "${BUILD_DIR}/sidecar" "${TARGET_FILE}" "${KUBECONFIG}"
}

remove_images() {
	local repo tag
	for repo in "${SERVER_REPO}" "${E2E_REPO}"; do
		for tag in $(docker images --format '{{.Tag}}' "${repo}"); do
			if [[ "${tag}" == e2e-* ]]; then
				docker rmi "${repo}:${tag}" >/dev/null && info "removed image ${repo}:${tag}"
			fi
		done
	done
}

main() {
	need_cmd go docker
	delete_cluster
	remove_build_files
	remove_images
	if [[ -n "${KIND_OFFLINE_HOME:-}" ]]; then
		info "kind-offline host: sudo ${KIND_OFFLINE_HOME}/host-restore.sh puts back the host sysctls"
		info "once no other kind cluster runs"
	fi
}

main "$@"
