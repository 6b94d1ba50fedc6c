#!/usr/bin/env bash
# Builds eventlog-server as one static executable and lays out the files of the
# FROM-scratch image in a directory. The Dockerfile's build stage and `make
# image` (build-image.sh) both run this script, so both images are the same.
#
# usage: container/ccnp-eventlog-server/build-context.sh DIR
#        (honours GO, default "go"). DIR is left holding:
#   eventlog-server   the static binary
#   rootfs/           /etc/passwd and /etc/group with uid 1000, an empty /run, and
#                     /usr/bin/grpc_health_probe, a link to the binary: upstream's
#                     manifests probe with it, and the binary answers as that
#                     tool when run under that name
#   run/              the directories the server writes to by default, which
#                     the Dockerfiles hand to uid 1000
set -o errexit -o nounset -o pipefail

dir="${1:?usage: $0 DIR}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
go="${GO:-go}"

# The binary stays: go build relinks it only if it is out of date (seconds
# of a static link saved on every rebuild of an unchanged server).
rm -rf "${dir:?}/rootfs" "${dir}/run"
mkdir -p "${dir}/rootfs/run" "${dir}/run/ccnp/uds" "${dir}/run/ccnp-eventlog" "${dir}/run/firmware"
cp -R container/ccnp-eventlog-server/rootfs/etc "${dir}/rootfs/etc"
mkdir -p "${dir}/rootfs/usr/bin"
ln -s eventlog-server "${dir}/rootfs/usr/bin/grpc_health_probe"

# cgo stays on: the simulated TPM (--hwsource=simulated) is the Microsoft
# reference TPM, compiled from C by go-tpm-tools and linked against OpenSSL's
# libcrypto. glibc and libcrypto are linked statically (libc6-dev and
# libssl-dev ship the .a archives); osusergo and netgo keep Go off glibc's NSS,
# which a static binary cannot load. The linker warns that libcrypto's
# getaddrinfo/dlopen paths would need glibc's shared objects at run time: the
# TPM simulator never takes them.
CGO_ENABLED=1 "${go}" build \
	-trimpath \
	-tags 'osusergo netgo' \
	-ldflags '-s -w -linkmode=external -extldflags=-static' \
	-o "${dir}/eventlog-server" \
	./service/eventlog-server

# A dynamic dependency would only show when the image fails to start: fail now.
# (ldd exits 1 on a static executable, hence the "|| true".)
linkage="$(ldd "${dir}/eventlog-server" 2>&1 || true)"
if [[ "${linkage}" != *"not a dynamic executable"* ]]; then
	echo "$0: ${dir}/eventlog-server is dynamically linked:" >&2
	echo "${linkage}" >&2
	exit 1
fi
echo "built static ${dir}/eventlog-server"
