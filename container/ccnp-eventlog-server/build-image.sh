#!/usr/bin/env bash
# Builds the eventlog-server image without pulling anything (`make image`): the
# static binary is built on this machine and packed into a FROM-scratch image.
#
# usage: IMAGE=ccnp-eventlog-server:<tag> container/ccnp-eventlog-server/build-image.sh
#        BUILD_DIR (default: build) holds the build context, BUILD_DIR/image.
set -o errexit -o nounset -o pipefail

image="${IMAGE:?set IMAGE, e.g. IMAGE=ccnp-eventlog-server:dev}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
context="${BUILD_DIR:-build}/image"

container/ccnp-eventlog-server/build-context.sh "${context}"
docker build --tag "${image}" --file container/ccnp-eventlog-server/Dockerfile.scratch "${context}"
