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
OPENSSL_BIN  := $(shell command -v openssl)
PKG_ENV      :=
endif

OSSL_VERSION := $(shell $(PKG_ENV) pkg-config --modversion libssl 2>/dev/null)
ifneq ($(filter 3.%,$(OSSL_VERSION)),)
OSSL_CFLAGS := -include $(CURDIR)/compat/spacemonkey_ossl3.h
endif

export CGO_ENABLED := 1
export CGO_CFLAGS  := -O2 -g $(OSSL_CFLAGS)
export CGO_LDFLAGS := -O2 -g $(OSSL_LDFLAGS)
# The tests run this openssl binary as a second peer; it must be the same
# OpenSSL the library links.
export SSLSESSION_OPENSSL := $(OPENSSL_BIN)

.PHONY: all build test test-core vet lint demo bench fuzz test-memory check-openssl clean deps docker docker-test docker-demo test-matrix check-scripts

all: build

check-openssl:
	@test -n "$(OSSL_VERSION)" || { echo "make: OpenSSL not found by pkg-config (install libssl-dev or set OPENSSL_PREFIX)"; exit 2; }
	@test -x "$(OPENSSL_BIN)" || { echo "make: no openssl command at '$(OPENSSL_BIN)'"; exit 2; }
	@echo "OpenSSL $(OSSL_VERSION) ($(OPENSSL_BIN))"

build: check-openssl
	$(GO) build ./...
	$(GO) build -o bin/sslsession ./cmd/sslsession

vet: check-openssl
	$(GO) vet ./...

# The library's own suite: vet, then every package under -race, twice so that
# finalizers run, then once more under checkptr.
test-core: vet
	$(GO) test -race -count=2 $(GOTESTFLAGS) ./...
	$(GO) test -gcflags=all=-d=checkptr -count=1 $(GOTESTFLAGS) .

test: test-core

demo: check-openssl
	$(GO) build -o bin/sslsession ./cmd/sslsession
	bin/sslsession check --require-resume

# The command-line tool's tests alone (make test runs them too).
.PHONY: cli-test
cli-test: check-openssl
	$(GO) test -race -count=1 $(GOTESTFLAGS) ./cmd/sslsession/...

bench: check-openssl
	$(GO) test -run '^$$' -bench . -benchmem -count 5 .

fuzz: check-openssl
	$(GO) test -run '^$$' -fuzz FuzzParseDER -fuzztime 60s .
	$(GO) test -run '^$$' -fuzz FuzzParsePEM -fuzztime 60s .

test-memory: check-openssl
	$(GO) test -run '^TestMemoryMillionSessions$$' -count=1 -v -tags memory .

clean:
	$(GO) clean -testcache

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

# make test-matrix OPENSSL_PREFIXES="/opt/openssl-1.0.2u system"
OPENSSL_PREFIXES ?= system
test-matrix:
	scripts/test-matrix.sh $(OPENSSL_PREFIXES)

check-scripts:
	scripts/check-scripts.sh
