# sealsign — threshold-signing appliance. See README.md.
#
# Always explicit about cgo: PKCS#11 (SoftHSM) needs it, and Go silently
# falls back to a cgo-less build when gcc is missing.
export CGO_ENABLED := 1
GO      ?= go
BIN     := $(CURDIR)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
FIXTURE := $(CURDIR)/test/testdata/preparams.json
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all deps build demo test test-race test-slow bench lint eif clean

all: build

## deps: install what the build and tests need (SoftHSM2, libssl-dev and PostgreSQL via apt-get, Go modules)
deps:
	@if ! command -v softhsm2-util >/dev/null 2>&1 || ! ls /usr/lib/softhsm/libsofthsm2.so >/dev/null 2>&1; then \
		echo "deps: softhsm2 (the PKCS#11 HSM the dev parties and tests use) is missing; installing it with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq softhsm2 >/dev/null; \
	fi
	@command -v gcc >/dev/null 2>&1 || { echo "deps: gcc is needed for cgo (PKCS#11); installing it with apt-get"; $(SUDO) apt-get install -y -qq gcc >/dev/null; }
	@[ -f /usr/include/openssl/evp.h ] || { echo "deps: libssl-dev (OpenSSL's libcrypto, which the TPM 2.0 reference simulator links) is missing; installing it with apt-get"; $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libssl-dev >/dev/null; }
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "deps: PostgreSQL (the optional central audit store; its tests run a real server) is missing; installing it with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi
	@$(GO) mod download

## build: the three binaries into ./bin
build: deps
	$(GO) build -o $(BIN)/ ./cmd/sealsign ./cmd/sealsign-host ./cmd/sealsign-enclave

## demo: a local three-party appliance: keygen, sign, verify, restart, 2-of-3
demo: build
	$(BIN)/sealsign demo

## test: unit, fuzz-seed, end-to-end tests (real processes, real SoftHSM tokens, a real PostgreSQL server)
# SEALSIGN_REQUIRE_POSTGRES=1: a test needing PostgreSQL fails, not skips, when it is missing.
test: build
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	SEALSIGN_REQUIRE_POSTGRES=1 SEALSIGN_BIN=$(BIN) SEALSIGN_PREPARAMS_FIXTURE=$(FIXTURE) $(GO) test -timeout 20m ./...
	SEALSIGN_REQUIRE_POSTGRES=1 $(GO) test -race -short -timeout 10m ./enclave/... ./host/... ./hsm/... ./attestation/...

## test-slow: from-scratch runs (real pre-parameter generation); not part of make test
test-slow: build
	$(BIN)/sealsign demo --json

## bench: raw tss-lib vs appliance signing latency (p50/p95) and the overhead ratio; policy evaluations/s; governance cost per signature in an enclave; a full 2-of-3 EdDSA refresh; EIF measuring MB/s vs sha384sum; durable audit appends per second (bbolt, PostgreSQL)
bench: build
	SEALSIGN_BIN=$(BIN) SEALSIGN_PREPARAMS_FIXTURE=$(FIXTURE) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/
	$(GO) test -run '^$$' -bench . ./governance/policy/
	SEALSIGN_PREPARAMS_FIXTURE=$(FIXTURE) $(GO) test -run '^$$' -bench 'Governance|Refresh' ./enclave/party/
	$(GO) test -run '^$$' -bench 'Measure|SHA384' ./eif/
	SEALSIGN_REQUIRE_POSTGRES=1 $(GO) test -run '^$$' -bench AuditAppend -benchtime 2s ./host/store/

## lint: gofmt, go vet, staticcheck
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## eif: build the sealsign enclave image from the AWS boot blobs and print its PCRs
# The image holds a static, reproducible enclave binary (no cgo: inside Nitro
# the HSM is reached through the host, not a local PKCS#11 module).
eif: build
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags=-buildid= -o $(BIN)/eif/sealsign-enclave ./cmd/sealsign-enclave
	$(BIN)/sealsign eif build-enclave --enclave-binary $(BIN)/eif/sealsign-enclave -o $(BIN)/sealsign.eif

clean:
	rm -rf $(BIN) .sealsign-dev
