# sslsession: `make test` runs everything CI runs; `make demo` shows resumption.
#
# OpenSSL is found by pkg-config, or under OPENSSL_PREFIX=<dir> when given
# (an install prefix with lib/ and include/, e.g. a hand-built 1.0.2u).
# spacemonkeygo needs a compat header on OpenSSL 3.x; it is added here.

GO            ?= go
OPENSSL_PREFIX ?=
GOTESTFLAGS   ?=

ifneq ($(OPENSSL_PREFIX),)
export PKG_CONFIG_PATH := $(OPENSSL_PREFIX)/lib/pkgconfig:$(OPENSSL_PREFIX)/lib64/pkgconfig
export PKG_CONFIG_LIBDIR := $(PKG_CONFIG_PATH)
OSSL_LDFLAGS := -Wl,-rpath,$(OPENSSL_PREFIX)/lib -Wl,-rpath,$(OPENSSL_PREFIX)/lib64
OPENSSL_BIN  := $(OPENSSL_PREFIX)/bin/openssl
# $(shell) does not see exported variables in GNU Make 4.3: pass them.
PKG_ENV      := PKG_CONFIG_PATH=$(PKG_CONFIG_PATH) PKG_CONFIG_LIBDIR=$(PKG_CONFIG_LIBDIR)
else
OPENSSL_BIN   = $(shell command -v openssl)
PKG_ENV      :=
endif

# Evaluated when a recipe runs, not when the Makefile is read: `make test`
# installs pkg-config and libssl-dev first (deps) when they are missing.
OSSL_VERSION  = $(shell $(PKG_ENV) pkg-config --modversion libssl 2>/dev/null)
OSSL_CFLAGS   = $(if $(filter 3.%,$(OSSL_VERSION)),-include $(CURDIR)/compat/spacemonkey_ossl3.h)

export CGO_ENABLED := 1
export CGO_CFLAGS   = -O2 -g $(OSSL_CFLAGS)
export CGO_LDFLAGS := -O2 -g $(OSSL_LDFLAGS)
# The tests run this openssl binary as a second peer; it must be the same
# OpenSSL the library links.
export SSLSESSION_OPENSSL = $(OPENSSL_BIN)

.PHONY: all build test test-core vet lint deps deps-build demo cli-test test-asan bench bench-handshake bench-server bench-client \
	fuzz test-memory check-openssl clean docker docker-test docker-demo test-matrix matrix-leg leg-test \
	leg-scripts check-scripts

all: build

check-openssl:
	@test -n "$(OSSL_VERSION)" || { echo "make: OpenSSL not found by pkg-config (install libssl-dev or set OPENSSL_PREFIX)"; exit 2; }
	@test -x "$(OPENSSL_BIN)" || { echo "make: no openssl command at '$(OPENSSL_BIN)'"; exit 2; }
	@echo "OpenSSL $(OSSL_VERSION) ($(OPENSSL_BIN))"

build: check-openssl
	$(GO) build ./...
	$(GO) build -o bin/sslsession ./cmd/sslsession
	$(GO) build -o bin/fleet-server ./examples/fleet-server
vet: check-openssl
	$(GO) vet ./...

# What building needs on a Debian machine (pkg-config, libssl-dev, the
# openssl command), and what the tests need besides: the package of every
# program a test runs (redis-server, python3, nginx, haproxy...), listed in
# scripts/test-programs.txt with the package that has it; check-scripts
# fails when a test runs a program the list lacks. Installed when missing;
# nothing is started here. The openssl program is BUILD_PKGS's: it knows
# OPENSSL_PREFIX.
BUILD_PKGS = $(if $(shell command -v pkg-config),,pkg-config) \
	$(if $(OPENSSL_PREFIX),,$(if $(shell command -v openssl),,openssl)) \
	$(if $(OPENSSL_PREFIX),,$(if $(shell pkg-config --exists libssl 2>/dev/null && echo y),,libssl-dev))
TEST_PROGRAMS = $(shell awk '{ sub(/\#.*/, "") } NF == 2 && $$2 != "-" { print $$1 ":" $$2 }' \
	$(CURDIR)/scripts/test-programs.txt)
TEST_PKGS = $(BUILD_PKGS) $(sort $(foreach p,$(filter-out openssl:%,$(TEST_PROGRAMS)), \
	$(if $(shell command -v $(word 1,$(subst :, ,$(p)))),,$(word 2,$(subst :, ,$(p))))))
APT_INSTALL = if [ -n "$(strip $(1))" ]; then \
	  echo "installing: $(strip $(1))"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(strip $(1)) >/dev/null; \
	fi
deps:
	@$(call APT_INSTALL,$(TEST_PKGS))
deps-build:
	@$(call APT_INSTALL,$(BUILD_PKGS))

STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: check-openssl $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# The library's own suite: every package under -race, which also turns on
# checkptr (check-scripts proves this toolchain does). TestMain of each
# package fails when owned sessions are still live after GC.
#
# TestRingSoak (a fleet over 90 simulated days) runs once more, without
# -race: its harness drives one Sync at a time, so the race detector adds
# nothing but triples its time; the ring's concurrent paths (Syncs racing
# each other and handshakes) are the package's other tests, under -race.
SOAK = ^TestRingSoak$$
test-core: vet
	$(GO) test -race -count=1 -skip '$(SOAK)' $(GOTESTFLAGS) ./...
	$(GO) test -count=1 -run '$(SOAK)' $(GOTESTFLAGS) ./ticketring/

test: deps lint test-core check-scripts

demo: deps-build
	@$(MAKE) --no-print-directory check-openssl
	$(GO) build -o bin/sslsession ./cmd/sslsession
	bin/sslsession check --require-resume

# The command-line tool's tests alone (make test runs them too).
cli-test: check-openssl
	$(GO) test -race -count=1 $(GOTESTFLAGS) ./cmd/sslsession/...

# The library, test/ and redisstore under AddressSanitizer and
# LeakSanitizer: cgo compiled by clang with -fsanitize=address (go test
# -asan). OpenSSL itself is not instrumented; its calls from the library are.
# clang and its sanitizer runtime (libclang-rt-dev) are installed when missing.
ASAN_PKGS = $(if $(shell command -v clang),,clang) \
	$(if $(wildcard $(shell clang -print-file-name=libclang_rt.asan-x86_64.a 2>/dev/null)),,libclang-rt-dev)
test-asan: deps-build
	@$(call APT_INSTALL,$(ASAN_PKGS))
	@$(MAKE) --no-print-directory check-openssl
	CC=clang CGO_LDFLAGS="$(CGO_LDFLAGS) -fsanitize=address" ASAN_OPTIONS=detect_leaks=1 \
	  $(GO) test -asan -count=1 $(GOTESTFLAGS) . ./test ./redisstore

bench: check-openssl
	$(GO) test -run '^$$' -bench . -benchmem -count 5 .

# Handshakes per second of crypto/tls, this library and the C floor
# (internal/cfloor) side by side, interleaved rounds, with ratios; then 8
# concurrent clients and 64 KiB echo throughput (internal/benchhandshake).
BENCH_HANDSHAKE_FLAGS ?=
bench-handshake: check-openssl
	$(GO) run ./internal/benchhandshake $(BENCH_HANDSHAKE_FLAGS)

# TLS handshakes the way deployments run them, each party in its own
# process (internal/benchproc): bench-server puts this library's server, a
# C server on the same OpenSSL, nginx with one worker and crypto/tls each
# under the same load (the C client) on one core; bench-client measures
# this library's Dial, the C client and crypto/tls against the C server.
# Both also measure Go's net with the C program's code through cgo and no
# library (Go+C). CPU per handshake of the measured process and
# handshakes/s, full and resumed by session ID and by ticket, TLS 1.2 and
# 1.3, interleaved rounds, medians and ratios to C; then system calls per
# connection; then (bench-server) each server's idle CPU, threads and
# memory with -idle open connections.
# BENCH_PROC_FLAGS: -rounds N -time D -strace N -only REGEXP -run REGEXP
# -idle N (0: no idle part) -idle-time D.
BENCH_PROC_FLAGS ?=
bench-server: check-openssl deps
	$(GO) run ./internal/benchproc -side server $(BENCH_PROC_FLAGS)
bench-client: check-openssl deps
	$(GO) run ./internal/benchproc -side client $(BENCH_PROC_FLAGS)

# Each fuzz target in turn for FUZZTIME (a duration, or 1000000x for a
# number of executions): the decoders, and the store bridge's lookup in
# real handshakes.
FUZZTIME ?= 60s
FUZZ_TARGETS = FuzzParseDER FuzzParsePEM FuzzParse FuzzStoreLookup
fuzz: check-openssl
	@set -e; for f in $(FUZZ_TARGETS); do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) . ; \
	done

test-memory: check-openssl
	$(GO) test -run '^TestMemoryMillionSessions$$' -count=1 -v -tags memory .

clean:
	$(GO) clean -testcache
	rm -rf bin

# Reproducible builds (docker/README.md). No Docker engine is needed for the
# rest: check-scripts lints the Dockerfile's shell and the build script.
DOCKER      ?= docker
DOCKER_TAG  ?= sslsession:openssl-1.0.2u
DOCKER_ARGS ?=

docker:
	$(DOCKER) build -f docker/Dockerfile $(DOCKER_ARGS) -t $(DOCKER_TAG) .

docker-test:
	$(DOCKER) build -f docker/Dockerfile $(DOCKER_ARGS) --target test .

docker-demo: docker
	$(DOCKER) run --rm $(DOCKER_TAG) check --require-resume

# The version matrix (README, "Supported OpenSSL versions"): every OpenSSL
# of ../shared/openssl built once into ~/.cache/sslsession, then Debian's.
# OPENSSL_PREFIXES="dir ... system" runs install prefixes of one's own.
OPENSSL_PREFIXES ?=
test-matrix: deps
	scripts/test-matrix.sh $(OPENSSL_PREFIXES)

# One leg of the matrix, run by scripts/test-matrix.sh with make -k so that a
# failing step does not hide the others: every package once (under -race,
# and so checkptr, unless LEG_RACE is empty), the script checks. go test
# runs vet's own subset; the full vet and staticcheck are make test's.
LEG_RACE ?= -race
matrix-leg: leg-test leg-scripts
leg-test: check-openssl
	$(GO) test $(LEG_RACE) -count=1 -timeout 20m -skip '$(SOAK)' $(GOTESTFLAGS) ./...
	$(GO) test -count=1 -run '$(SOAK)' $(GOTESTFLAGS) ./ticketring/
leg-scripts: check-scripts

check-scripts:
	scripts/check-scripts.sh
