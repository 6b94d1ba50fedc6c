#!/usr/bin/env bash
# Prints what explains a failed run, and keeps it with the node's own logs
# under build/kind/artifacts: for each namespace the e2e run uses, its
# workloads and pods (kubectl get, kubectl describe), the logs of every
# container, init containers included (and of the previous instance of a
# restarted one), and the namespace's events. kind/e2e.sh runs it when
# anything fails; it also runs on its own against a live cluster.
#
# usage: kind/dump.sh   (settings: kind/common.sh)
#
# No errexit: a command that fails (a pod gone meanwhile) must not cut the
# rest of the collection short.
set -o nounset -o pipefail

# shellcheck source=kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

section() { printf '\n----- %s\n' "$*"; }

dump_namespace() {
	local ns="$1" pod container
	section "kubectl -n ${ns} get daemonsets,jobs,pods -o wide"
	kubectl -n "${ns}" get daemonsets,jobs,pods -o wide
	section "kubectl -n ${ns} describe daemonsets,jobs"
	kubectl -n "${ns}" describe daemonsets,jobs
	for pod in $(kubectl -n "${ns}" get pods -o name); do
		section "kubectl -n ${ns} describe ${pod}"
		kubectl -n "${ns}" describe "${pod}"
		for container in $(kubectl -n "${ns}" get "${pod}" \
			-o jsonpath='{range .spec.initContainers[*]}{.name}{" "}{end}{range .spec.containers[*]}{.name}{" "}{end}'); do
			section "kubectl -n ${ns} logs ${pod} -c ${container}"
			kubectl -n "${ns}" logs "${pod}" -c "${container}" --tail=200
			if kubectl -n "${ns}" logs "${pod}" -c "${container}" --previous --tail=1 >/dev/null 2>&1; then
				section "kubectl -n ${ns} logs ${pod} -c ${container} --previous"
				kubectl -n "${ns}" logs "${pod}" -c "${container}" --previous --tail=200
			fi
		done
	done
	section "kubectl -n ${ns} get events"
	kubectl -n "${ns}" get events --sort-by=.lastTimestamp
}

main() {
	if ! cluster_exists; then
		echo "dump: no cluster ${KIND_CLUSTER_NAME}: nothing to collect"
		return 0
	fi
	mkdir -p "${ARTIFACTS}"
	local report
	report="${ARTIFACTS}/dump-$(date +%Y%m%d-%H%M%S).txt"
	{
		printf '===== diagnostics of cluster %s\n' "${KIND_CLUSTER_NAME}"
		section "kubectl get nodes -o wide"
		kubectl get nodes -o wide
		section "helm list --namespace default"
		helm list --namespace default
		# Every namespace but Kubernetes' own: the releases', the suite's.
		for ns in $(kubectl get namespaces -o name | sed 's|^namespace/||'); do
			case "${ns}" in
			default | kube-* | local-path-storage) ;;
			*) dump_namespace "${ns}" ;;
			esac
		done
		printf '\n===== end of diagnostics (saved in %s)\n' "${report}"
	} 2>&1 | tee "${report}"
	# The node's journal, kubelet and containerd logs: kept, not printed.
	# (It fails partway on nodes without crictl, e.g. kind-offline's, after
	# collecting the rest.)
	local logs="${ARTIFACTS}/kind-logs-${report##*/dump-}"
	logs="${logs%.txt}"
	kind export logs --name "${KIND_CLUSTER_NAME}" "${logs}" >"${logs}.out" 2>&1 ||
		echo "kind export logs failed partway (${logs}.out)"
	echo "node logs (kubelet, containerd, journal): ${logs}"
}

main "$@"
