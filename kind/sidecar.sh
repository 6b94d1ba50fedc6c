#!/usr/bin/env bash
# Runs the sidecar example (deployment/examples/sidecar.yaml) on the cluster
# of `make e2e-up`, through the overlay kind/sidecar: no runtime class, the
# stage step reading the fake TD's files (kind/up.sh writes them), the app
# container the e2e binary. The images are those kind/up.sh built and loaded
# (build/kind/target.json). The e2e spec "sidecar" (e2e/sidecar_kind_test.go)
# runs it and checks the pod; it first writes the ConfigMap e2e-expected that
# the app container reads (what the fake TD's logs hold).
#
# usage: kind/sidecar.sh NAMESPACE [apply|render]
#   apply   (default) kubectl apply the rendered pod into NAMESPACE
#   render  print it
set -o errexit -o nounset -o pipefail

# shellcheck source=kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

main() {
	local namespace="${1:?usage: kind/sidecar.sh NAMESPACE [apply|render]}" action="${2:-apply}"
	need_cmd kubectl
	[[ -f "${TARGET_FILE}" ]] || die "no ${TARGET_FILE}: run make e2e-up first"
	local server app
	server="$(sed -n 's/^ *"serverImage": "\(.*\)",$/\1/p' "${TARGET_FILE}")"
	app="$(sed -n 's/^ *"userImage": "\(.*\)",$/\1/p' "${TARGET_FILE}")"
	[[ -n "${server}" && -n "${app}" ]] || die "${TARGET_FILE} names no serverImage or userImage"

	# The images are set here, on top of the overlay: their tags change
	# with every build. Kustomize takes bases by relative path only.
	local dir="${BUILD_DIR}/sidecar"
	mkdir -p "${dir}"
	cat >"${dir}/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${namespace}
resources:
  - ../../../kind/sidecar
images:
  - name: ccnp-eventlog-server
    newName: ${server%:*}
    newTag: ${server##*:}
  - name: ccnp-eventlog-e2e
    newName: ${app%:*}
    newTag: ${app##*:}
YAML
	case "${action}" in
	render) kubectl kustomize --load-restrictor=LoadRestrictionsNone "${dir}" ;;
	apply) kubectl kustomize --load-restrictor=LoadRestrictionsNone "${dir}" | kubectl apply -f - ;;
	*) die "unknown action ${action}: apply or render" ;;
	esac
}

main "$@"
