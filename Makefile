# plfm-vt front door. See README.md and docs/engineering/dev-environment.md.
#
#   make dev     deps + build + kernel + `vt dev up` + deploy examples/hello, then curl it
#   make deps    install the Debian packages the project needs (idempotent)
#   make kernel  build the minimal guest kernel into the kernel cache (minutes), or reuse it
#   make build   configure and build everything into build/
#   make build-dev  only what make dev runs (the CLI, the services, vt-init, examples/hello)
#   make test    deps + build + every ctest label (unit, integration, e2e)
#   make check   raw-JSON ratchet, the OpenAPI linter, clang-format (dry run) and clang-tidy;
#                must be clean
#   make asan    build with ASan+UBSan into build-asan/ and run the unit tests
#   make fuzz FUZZER=name SECONDS=600   run one libFuzzer target (clang, build-fuzz/)

BUILD_DIR   ?= build
ASAN_DIR    ?= build-asan
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= 2
CMAKE_FLAGS ?=
export CCACHE_DIR ?= $(HOME)/.cache/plfm-ccache
# Paths relative to the checkout, so that worktrees and fresh clones share cache hits.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: all dev deps kernel configure build build-dev test test-unit test-integration test-e2e check format asan fuzz clean

all: build

deps:
	@scripts/install-deps

# The minimal guest kernel (scripts/build-kernel): built once into the kernel
# cache (minutes), then preferred by scripts/fetch-kernel. make dev and CI do
# not build it; they use it when cached, Debian's cloud kernel otherwise.
kernel:
	@scripts/build-kernel

# One command from a fresh clone to an app served through the ingress
# (docs/engineering/vt-dev.md). `build/cli/vt/vt dev down` stops it.
dev: deps
	@$(MAKE) --no-print-directory build-dev
	@scripts/dev $(abspath $(BUILD_DIR))

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DPLFM_WERROR=ON $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Only what `make dev` runs: the CLI, the three services, the guest init and
# the example app (no tests, benches or fuzz corpora).
DEV_TARGETS := vt plfm-control-plane plfm-node-agent plfm-ingress vt-init hello
build-dev: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target $(DEV_TARGETS)

test: deps
	@$(MAKE) --no-print-directory build
	@scripts/run-tests $(BUILD_DIR) $(JOBS)

test-unit: build
	cd $(BUILD_DIR) && ctest -L unit -j $(JOBS) --output-on-failure

test-integration: build
	cd $(BUILD_DIR) && ctest -L integration -j $(JOBS) --output-on-failure

test-e2e: build
	cd $(BUILD_DIR) && ctest -L e2e -j $(JOBS) --output-on-failure

check: configure
	@scripts/check-json-access
	@echo "check: the API contract with @redocly/cli (scripts/lint-openapi)"
	@scripts/lint-openapi
	@scripts/check $(BUILD_DIR) $(JOBS)

format:
	@scripts/check --fix $(BUILD_DIR) $(JOBS)

asan:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPLFM_SANITIZE=ON -DPLFM_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ctest -L unit -j $(JOBS) --output-on-failure

fuzz:
	@scripts/fuzz $(FUZZER) $(or $(SECONDS),60)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) build-fuzz
