#!/usr/bin/env bash
# Brings up what the e2e suite runs against (`make e2e-up`; `make e2e` runs it
# first), reusing whatever is already there:
#
#   1. the images: the server's (built here, FROM scratch, as `make image`
#      does) and the user application's (the e2e test binary, FROM scratch),
#      each tagged by its content, so a warm run with unchanged code changes
#      nothing and a changed image rolls the pods; and the server's again
#      with another image ID, which the upgrade spec rolls a release to;
#   2. the kind cluster (kind/cluster.yaml), created if it does not exist;
#   3. both images loaded into the node (kind load docker-image);
#   4. the fake host tree, written by the simulator CLI where the node sees it;
#   5. three releases of the chart, each waited for: simulated hardware, the
#      real host backends on the fake host tree, and simulated hardware on
#      the kernel profile 6.8 (TDREPORTs only, no extends);
#   6. build/kind/target.json, which tells the suite what was deployed.
#
# usage: kind/up.sh   (settings: kind/common.sh)
set -o errexit -o nounset -o pipefail

# shellcheck source=kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "${REPO_ROOT}"

check_prerequisites() {
	need_cmd go docker kubectl
	docker info >/dev/null 2>&1 || die "cannot reach dockerd (docker info)"
}

# tag_by_content REPO: tags REPO:build as REPO:e2e-<image ID> and prints that
# name. The ID only changes when the content does; older e2e-* tags of REPO
# are removed.
tag_by_content() {
	local repo="$1" id tag old
	id="$(docker image inspect --format '{{.Id}}' "${repo}:build")"
	id="${id#sha256:}"
	tag="e2e-${id:0:12}"
	docker tag "${repo}:build" "${repo}:${tag}"
	docker rmi "${repo}:build" >/dev/null
	for old in $(docker images --format '{{.Tag}}' "${repo}"); do
		if [[ "${old}" == e2e-* && "${old}" != "${tag}" ]]; then
			docker rmi "${repo}:${old}" >/dev/null || true
		fi
	done
	echo "${repo}:${tag}"
}

build_server_image() {
	log "building the server image (container/ccnp-eventlog-server/build-image.sh)"
	# Its own build context under build/kind, away from `make image`'s.
	build_nice env IMAGE="${SERVER_REPO}:build" BUILD_DIR="${BUILD_DIR}/images" \
		container/ccnp-eventlog-server/build-image.sh
	SERVER_IMAGE="$(tag_by_content "${SERVER_REPO}")"
	info "server image: ${SERVER_IMAGE}"
}

# build_next_server_image builds a second image of the same server, with an
# image ID of its own (one label more): the spec that rolls the DaemonSet to
# a new image under load (helm upgrade) upgrades a release to it.
build_next_server_image() {
	NEXT_SERVER_IMAGE="${SERVER_IMAGE}-next"
	printf 'FROM %s\nLABEL io.ccnp-eventlog.e2e.upgrade-from="%s"\n' "${SERVER_IMAGE}" "${SERVER_IMAGE}" |
		docker build --quiet --tag "${NEXT_SERVER_IMAGE}" - >/dev/null
	info "the same server as another image, for helm upgrade: ${NEXT_SERVER_IMAGE}"
}

build_e2e_image() {
	log "building the user application image (the e2e test binary, kind/e2e.Dockerfile)"
	local context="${BUILD_DIR}/images/e2e"
	mkdir -p "${context}"
	build_nice env CGO_ENABLED=0 go test -c -trimpath -o "${context}/e2e.test" ./e2e
	docker build --quiet --tag "${E2E_REPO}:build" --file kind/e2e.Dockerfile "${context}" >/dev/null
	E2E_IMAGE="$(tag_by_content "${E2E_REPO}")"
	info "user application image: ${E2E_IMAGE}"
}

make_node_dirs() {
	mkdir -p "${NODE_DIR}/run/ccnp/uds" "${NODE_DIR}/run/ccnp-eventlog" \
		"${NODE_DIR}/run/ccnp-e2e" "${NODE_DIR}${FAKEHOST_TREE}"
}

# check_mounts fails when the node does not see the host directories of its
# extraMounts, e.g. when build/ was deleted under a running cluster: the
# node still holds the old, deleted directories. A directory and the node's
# view of it are the same inode.
check_mounts() {
	local dirs=(/run/ccnp/uds /run/ccnp-eventlog /run/ccnp-e2e /var/lib/ccnp-e2e) i here there
	# One docker exec for all four: each costs a fraction of a second.
	mapfile -t there < <(docker exec "$(node_container)" stat -c %i "${dirs[@]}" 2>/dev/null || true)
	for i in "${!dirs[@]}"; do
		here="$(stat -c %i "${NODE_DIR}${dirs[i]}")"
		if [[ "${here}" != "${there[i]:-}" ]]; then
			die "the node of cluster ${KIND_CLUSTER_NAME} does not see ${NODE_DIR}${dirs[i]} at ${dirs[i]}
(was build/ deleted while it ran?): run make e2e-down, then make e2e"
		fi
	done
}

create_cluster() {
	make_node_dirs
	if cluster_exists; then
		log "reusing cluster ${KIND_CLUSTER_NAME}"
		kind export kubeconfig --name "${KIND_CLUSTER_NAME}" --kubeconfig "${KUBECONFIG}"
	else
		log "creating cluster ${KIND_CLUSTER_NAME} (node image ${KIND_NODE_IMAGE})"
		# Run from the repository root: kind/cluster.yaml's hostPaths are relative.
		kind create cluster --name "${KIND_CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" \
			--config kind/cluster.yaml --kubeconfig "${KUBECONFIG}" --wait 120s
	fi
	check_mounts
	kubectl wait --for=condition=Ready node --all --timeout=120s >/dev/null
}

# load_images loads the images the node does not have yet. Their tags name
# their content (tag_by_content), so a tag the node has is the image built
# here. (kind load itself would load them again where the node has no
# crictl to ask, as on the kind-offline node image.)
load_images() {
	local present image missing=()
	present="$(docker exec "$(node_container)" ctr --namespace k8s.io images list --quiet 2>/dev/null || true)"
	for image in "${SERVER_IMAGE}" "${NEXT_SERVER_IMAGE}" "${E2E_IMAGE}"; do
		if grep -qxF "docker.io/library/${image}" <<<"${present}"; then
			info "the node has ${image}"
		else
			missing+=("${image}")
		fi
	done
	if ((${#missing[@]} > 0)); then
		log "loading the images into the node"
		kind load docker-image --name "${KIND_CLUSTER_NAME}" "${missing[@]}"
	fi
}

# write_fake_host writes the simulator's host tree beside the one the node
# sees, and copies it over only if it changed: the directory itself is
# bind-mounted into the node and must stay. Every tree has a new random boot
# ID (a new tree is a new boot), which does not count as a change.
# FAKEHOST_SUM, a checksum of the tree, goes into the fakehost release's pod
# annotations, so a new tree restarts its pods, which stage the files when
# they start.
write_fake_host() {
	log "writing the fake host tree (go run ./simulator/cmd/fakehost)"
	local tree="${NODE_DIR}${FAKEHOST_TREE}" fresh="${BUILD_DIR}/fakehost.new"
	rm -rf "${fresh}"
	build_nice go run ./simulator/cmd/fakehost --out "${fresh}"
	if diff -r -q --exclude=boot_id "${fresh}" "${tree}" >/dev/null 2>&1; then
		info "unchanged: ${tree}"
	else
		find "${tree}" -mindepth 1 -delete
		cp -R "${fresh}/." "${tree}/"
		info "written: ${tree}"
	fi
	rm -rf "${fresh}"
	FAKEHOST_SUM="$(cd "${tree}" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
}

# helm_deploy RELEASE VALUES [helm flags...]: installs or upgrades a
# release of the chart with the image built above.
helm_deploy() {
	local release="$1" values="$2"
	shift 2
	# The release records live in "default"; the chart creates the namespace.
	helm upgrade --install "${release}" deployment/charts/eventlog-server \
		--namespace default --history-max 3 \
		--values "${values}" \
		--set image.repository="${SERVER_IMAGE%:*}" --set image.tag="${SERVER_IMAGE##*:}" \
		"$@"
}

# deploy_releases installs or upgrades the three releases at once (each
# helm run is seconds, mostly spent waiting for the API server), prints what
# helm said of each, then waits until each DaemonSet's pods run its current
# template and are Ready.
deploy_releases() {
	local out="${BUILD_DIR}/helm" releases=("${SIM_RELEASE}" "${FAKEHOST_RELEASE}" "${KERNEL68_RELEASE}") pids=() i failed=()
	log "deploying releases ${releases[*]} (kind/values-*.yaml)"
	mkdir -p "${out}"
	helm_deploy "${SIM_RELEASE}" kind/values-simulated.yaml >"${out}/${SIM_RELEASE}.log" 2>&1 &
	pids+=($!)
	helm_deploy "${FAKEHOST_RELEASE}" kind/values-fakehost.yaml \
		--set-string podAnnotations.ccnp-eventlog\\.e2e/fakehost-tree="${FAKEHOST_SUM}" >"${out}/${FAKEHOST_RELEASE}.log" 2>&1 &
	pids+=($!)
	helm_deploy "${KERNEL68_RELEASE}" kind/values-kernel68.yaml >"${out}/${KERNEL68_RELEASE}.log" 2>&1 &
	pids+=($!)
	for i in "${!releases[@]}"; do
		wait "${pids[i]}" || failed+=("${releases[i]}")
		info "helm upgrade --install ${releases[i]}:"
		cat "${out}/${releases[i]}.log"
	done
	((${#failed[@]} == 0)) || die "helm upgrade --install failed for ${failed[*]} (above)"
	wait_rollout "${SIM_NAMESPACE}" "${SIM_DAEMONSET}"
	wait_rollout "${FAKEHOST_NAMESPACE}" "${FAKEHOST_DAEMONSET}"
	wait_rollout "${KERNEL68_NAMESPACE}" "${KERNEL68_DAEMONSET}"
	kubectl get pods -o wide --namespace "${SIM_NAMESPACE}"
	kubectl get pods -o wide --namespace "${FAKEHOST_NAMESPACE}"
	kubectl get pods -o wide --namespace "${KERNEL68_NAMESPACE}"
}

# wait_rollout NAMESPACE DAEMONSET waits until the DaemonSet's pods run its
# current template and are Ready. It gives up as soon as a pod cannot start
# (a crash loop, a missing image, a failed init container), or after
# E2E_DEPLOY_TIMEOUT.
wait_rollout() {
	local namespace="$1" daemonset="$2" deadline=$((SECONDS + E2E_DEPLOY_TIMEOUT)) waiting
	info "waiting for daemonset/${daemonset} to roll out (at most ${E2E_DEPLOY_TIMEOUT}s)"
	until kubectl -n "${namespace}" rollout status "daemonset/${daemonset}" --timeout=5s >/dev/null 2>&1; do
		waiting="$(kubectl -n "${namespace}" get pods -o jsonpath='{range .items[*]}{.metadata.name}{": "}{range .status.initContainerStatuses[*]}{.state.waiting.reason}{" "}{end}{range .status.containerStatuses[*]}{.state.waiting.reason}{" "}{end}{"\n"}{end}')"
		if grep -E 'CrashLoopBackOff|ErrImageNeverPull|ImagePullBackOff|CreateContainer(Config)?Error' <<<"${waiting}" >&2; then
			die "a pod of daemonset/${daemonset} cannot start"
		fi
		if ((SECONDS >= deadline)); then
			die "daemonset/${daemonset} did not roll out within ${E2E_DEPLOY_TIMEOUT}s"
		fi
	done
	info "daemonset/${daemonset} rolled out"
}

write_target_file() {
	cat >"${TARGET_FILE}" <<EOF
{
  "cluster": "${KIND_CLUSTER_NAME}",
  "kubeconfig": "${KUBECONFIG}",
  "nodeDir": "${NODE_DIR}",
  "nodeContainer": "$(node_container)",
  "serverImage": "${SERVER_IMAGE}",
  "nextServerImage": "${NEXT_SERVER_IMAGE}",
  "userImage": "${E2E_IMAGE}",
  "releases": {
    "simulated": {"release": "${SIM_RELEASE}", "namespace": "${SIM_NAMESPACE}", "daemonSet": "${SIM_DAEMONSET}"},
    "fakehost": {"release": "${FAKEHOST_RELEASE}", "namespace": "${FAKEHOST_NAMESPACE}", "daemonSet": "${FAKEHOST_DAEMONSET}", "hostTree": "${FAKEHOST_TREE}"},
    "kernel68": {"release": "${KERNEL68_RELEASE}", "namespace": "${KERNEL68_NAMESPACE}", "daemonSet": "${KERNEL68_DAEMONSET}"}
  }
}
EOF
	info "wrote ${TARGET_FILE}"
}

main() {
	local start="${SECONDS}"
	check_prerequisites
	resolve_tools
	mkdir -p "${BUILD_DIR}"
	rm -f "${TARGET_FILE}"
	build_server_image
	build_next_server_image
	build_e2e_image
	create_cluster
	load_images
	write_fake_host
	deploy_releases
	write_target_file
	log "cluster ${KIND_CLUSTER_NAME} is up ($((SECONDS - start))s); kubectl: export KUBECONFIG=${KUBECONFIG}"
}

main "$@"
