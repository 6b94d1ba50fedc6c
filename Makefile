# ccnp-eventlog: the targets are the project's vocabulary.
#
#   make run        serve on simulated hardware (socket under build/run)
#   make install    put eventlog-server in $(PREFIX)/bin (default /usr/local/bin)
#   make test       unit tests, chart tests and the e2e suite against a local server
#   make unit       the first of those: every package but e2e, with -race
#   make e2e-local  the second: the e2e suite against servers run here (e2e/README.md);
#                   it needs cgo (a C compiler, OpenSSL's headers) for the simulated TPM and
#                   fails without: `make e2e-local NO_CGO=1` runs it without, skipping those specs
#   make e2e        the e2e suite on a kind cluster (needs docker; kind/README.md)
#   make e2e-up     only bring up that cluster and deploy (reused when it exists)
#   make e2e-down   delete that cluster
#   make bench      benchmarks: parser, encoders, and the service under load
#   make fuzz       run each fuzz target for FUZZTIME
#   make lint       gofmt, go vet, staticcheck
#   make proto      regenerate the gRPC code from proto/eventlog.proto
#   make image      build the container image from a binary built here (nothing pulled)
#   make manifests  regenerate deployment/manifests from the Helm chart

GO      ?= go
# Go tools are pinned in tools/go.mod, apart from the product's go.mod.
GOTOOL  := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
BIN     := service/eventlog-server/eventlog-server
RUN_DIR ?= $(CURDIR)/build/run
HWSOURCE ?= simulated
FUZZTIME ?= 30s
# make install puts the binary in $(DESTDIR)$(PREFIX)/bin: /usr/local/bin is
# on every PATH (root needed); PREFIX=$$HOME/.local installs without root.
PREFIX  ?= /usr/local
# The image `make image` builds. Its tag is the chart's appVersion, so the chart
# deploys it with its default values.
IMAGE   ?= ccnp-eventlog-server:$(shell awk '/^appVersion:/ { gsub(/"/, "", $$2); print $$2 }' deployment/charts/eventlog-server/Chart.yaml)

.PHONY: all build install run test unit e2e-local lint proto bench fuzz clean image manifests e2e e2e-up e2e-down

all: build

# The simulated TPM (go-tpm-tools) is C and needs OpenSSL's headers; where
# they are missing the server is built without it and says so when asked for a
# simulated TPM (the simulated TDX log is pure Go).
HAVE_OPENSSL := $(shell printf '\043include <openssl/evp.h>\n' | $${CC:-cc} -E - >/dev/null 2>&1 && echo yes)

build:
ifeq ($(HAVE_OPENSSL),yes)
	$(GO) build -o $(BIN) ./service/eventlog-server
else
	@echo "warning: no OpenSSL headers (apt-get install libssl-dev): building without the simulated TPM" >&2
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./service/eventlog-server
endif

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/eventlog-server

run: build
	$(BIN) --hwsource=$(HWSOURCE) --socket=$(RUN_DIR)/eventlog.sock --output-dir=$(RUN_DIR)/eventlog \
		--state-dir=$(RUN_DIR)/state --sim-tdx-state=$(RUN_DIR)/state/simulated-tdx-rtmrs.json

test: unit e2e-local

# Unit tests, with the race detector. The e2e suite is not run here: it builds
# the server with -race itself and runs it as a separate process (e2e-local).
unit:
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -e '/e2e$$' -e '/e2e/')

# The e2e suite (e2e/README.md) against servers run as local processes.
# Without cgo its simulated-TPM specs are skipped, and the suite passes on what
# is left: that is what NO_CGO=1 asks for; without it, no cgo is an error
# rather than a green run that tested less.
e2e-local:
ifeq ($(NO_CGO),1)
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m ./e2e/...
else
	@if [ "$(HAVE_OPENSSL)" != yes ]; then \
		echo "e2e-local: no OpenSSL headers (apt-get install libssl-dev), so no simulated TPM: its specs would be skipped." >&2; \
		echo "e2e-local: install them, or run the suite without the simulated TPM: make e2e-local NO_CGO=1" >&2; \
		exit 1; \
	fi; \
	if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then \
		echo "e2e-local: cgo is off here (go env CGO_ENABLED is not 1: CGO_ENABLED=0 set, or no C compiler), so no simulated TPM: its specs would be skipped." >&2; \
		echo "e2e-local: turn cgo on, or run the suite without the simulated TPM: make e2e-local NO_CGO=1" >&2; \
		exit 1; \
	fi
	$(GO) test -count=1 -timeout 20m ./e2e/...
endif

# gofmt covers every .go file here, tracked or not, with or without git.
lint:
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path './build/*' -exec gofmt -l {} +); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOTOOL) staticcheck ./...

proto:
	protoc --plugin=protoc-gen-go=$$($(GOTOOL) -n protoc-gen-go) \
		--plugin=protoc-gen-go-grpc=$$($(GOTOOL) -n protoc-gen-go-grpc) \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		proto/eventlog.proto

image:
	IMAGE=$(IMAGE) container/ccnp-eventlog-server/build-image.sh

manifests:
	deployment/generate-manifests.sh

# The kind cluster is left running for the next run; kind/common.sh lists the
# settings (KIND_NODE_IMAGE, KIND_CLUSTER_NAME, ...). GINKGO_FLAGS are passed
# to the suite, e.g. GINKGO_FLAGS=--focus=restart.
e2e:
	kind/e2e.sh $(GINKGO_FLAGS)

e2e-up:
	kind/up.sh

e2e-down:
	kind/down.sh

# Parsers and encoders (the TCG log's and the IMA list's); the service's own
# cost of a repeated request, in the process; the runtime log's records alone
# (group commit, on disk); then the server under load over
# its socket (a real server process on simulated hardware; see
# service/eventlog-server/bench_test.go; its cold start times the image's
# static binary), then its peak memory serving the largest logs it accepts,
# once each (memory_test.go).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./eventlog/...
	$(GO) test -run '^$$' -bench InProcess ./service/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./runtimelog/
	GO=$(GO) container/ccnp-eventlog-server/build-context.sh build/image
	EVENTLOG_COLDSTART_BINARY=$(CURDIR)/build/image/eventlog-server \
		$(GO) test -run '^$$' -bench . -skip 'PeakRSS|IMAAppend|IMAMemory' -benchtime 20000x ./service/eventlog-server/
	$(GO) test -run '^$$' -bench IMAAppend -benchtime 300x ./service/eventlog-server/
	$(GO) test -run '^$$' -bench 'PeakRSS|IMAMemory' -benchtime 1x ./service/eventlog-server/

# -fuzzminimizetime: minimizing a large log-area input would otherwise hold a
# worker for a minute.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./eventlog/
	$(GO) test -run '^$$' -fuzz '^FuzzParseArea$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./eventlog/
	$(GO) test -run '^$$' -fuzz '^FuzzCCELTable$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./eventlog/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./eventlog/ima/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendPieces$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./eventlog/ima/
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuote$$' -fuzztime $(FUZZTIME) ./tdxquote/
	$(GO) test -run '^$$' -fuzz '^FuzzParseReport$$' -fuzztime $(FUZZTIME) ./tdxquote/

clean:
	rm -rf build $(BIN)
