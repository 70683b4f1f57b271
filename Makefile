# Thin wrapper over meson (DESIGN.md §5). Each target installs what is missing first.
#   make demo   build, then run the demo cluster (configs/demo-cluster) on this machine
#   make demo-k8s  the same cluster as real Kubernetes objects on ../shared/k8s-lab
#   make test   build, then every test: unit, scenario, e2e; unit again under ASan+UBSan
#   make image  build, then the container image of configs/k8s/Dockerfile without a Docker engine
#               or registry (build/image/nodeplane-image.tar: ctr images import / podman load)
#   make bench  build, then the perf/ benchmarks (lb_bench at a size that fits --no-huge; the
#               full-size figures in perf/RESULTS.md need hugepages, see there)
#   make format        clang-format every C++ file in place (.clang-format)
#   make check-format  fail on any C++ file that differs from .clang-format (CI runs it)
#   make check-layers  fail on an include that points up a layer (docs/architecture.md; CI runs it)
#   make check-python  pyflakes over the Python of tests/, tools/, perf/ (CI runs it)
#   make fuzz          build the libFuzzer targets (clang, ASan+UBSan) and run each FUZZ_SECONDS
#   make fuzz-smoke    each fuzz target over its committed corpus, then briefly (part of make test)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS = $(addprefix tests/fuzz/fuzz_,packet_path control_line apply_reader manifests cni dns heartbeat)
MESON_OPTS ?=

.PHONY: image all deps build test test-unit test-asan demo demo-k8s bench clean format check-format check-layers check-python lint fuzz fuzz-build fuzz-smoke

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz-smoke

test-unit: build
	meson test -C $(BUILD) --print-errorlogs --suite unit

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

test-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --suite unit --no-rebuild

$(FUZZ_BUILD)/build.ninja:
	CC=clang CXX=clang++ meson setup $(FUZZ_BUILD) -Dfuzz=true -Dbuildtype=debugoptimized \
	  -Db_sanitize=address,undefined -Db_lundef=false

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) $(FUZZ_TARGETS)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) ./scripts/fuzz.sh run $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) ./scripts/fuzz.sh smoke

demo: build
	/usr/bin/python3 tools/demo.py

# The seed's cluster as real Kubernetes objects on ../shared/k8s-lab (two nodes), nodeplane on both.
demo-k8s: build
	/usr/bin/python3 tools/demo_k8s.py

image: build
	/usr/bin/python3 tools/build_image.py --build-dir $(BUILD)

bench: build
	./$(BUILD)/perf/dataplane_bench
	./$(BUILD)/perf/overlay_bench
	./$(BUILD)/perf/lb_bench --flows 200000 --services 2000
	./$(BUILD)/perf/policy_bench
	./$(BUILD)/perf/control_bench --services 2000
	./$(BUILD)/perf/dns_bench
	./$(BUILD)/perf/metrics_bench
	./$(BUILD)/perf/esp_bench
	/usr/bin/python3 perf/dns_bench.py
	/usr/bin/python3 perf/metrics_bench.py
	/usr/bin/python3 perf/pod_bench.py
	/usr/bin/python3 perf/cluster_link_bench.py
	/usr/bin/python3 perf/k8s_bench.py --pods 50

format: deps
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

check-format: deps
	@./scripts/check-format.sh

check-layers:
	@/usr/bin/python3 tools/check_layers.py

# The Python of tests, tools and benchmarks: no unused imports, undefined names (pyflakes).
check-python:
	@/usr/bin/python3 -m pyflakes tests tools perf && echo "check-python: pyflakes finds nothing"

lint: deps check-format check-layers check-python

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
