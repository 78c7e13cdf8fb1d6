# loom — entry points. Everything real happens in CMake; this file strings the steps together so
# that a fresh Debian machine needs exactly one command:
#
#   make demo      install dependencies, build, fetch the default models, run the main pipeline
#   make test      install dependencies, build, fetch the models, run every test (ctest + fuzz)
#   make install PREFIX=/usr/local     programs, man pages (loom(1), loom(7), loom-<tool>(1))
#   make bench     the benchmarks of tests/bench (side by side with their peers)
#
# Variables: BUILD (build dir), PREFIX, JOBS, CMAKE_FLAGS (e.g. -DLOOM_CUDA=OFF), FUZZ_SECONDS.

BUILD        ?= build
FUZZ_BUILD   ?= build-fuzz
PREFIX       ?= /usr/local
JOBS         ?= $(shell nproc)
CMAKE_FLAGS  ?=
FUZZ_SECONDS ?= 20

.PHONY: all deps configure build models models-all test unit-test fuzz demo install bench clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build $(BUILD) -j$(JOBS)

models: deps
	@scripts/fetch-models

# the tests also check Gemma 3 (parity with llama.cpp): every model
models-all: deps
	@scripts/fetch-models --all

unit-test: build models-all
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@# tests skipped here (CUDA without a GPU) say why: the line after gtest's "file:line: Skipped"
	@awk '/: Skipped$$/ { n = split($$1, p, "/"); f = p[n]; sub(/:[0-9]+:$$/, "", f); getline; print "skipped in " f ": " $$0 }' \
	  $(BUILD)/Testing/Temporary/LastTest.log | sort -u

# libFuzzer targets need clang: a separate build tree, then a short run of each target.
fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DLOOM_FUZZ=ON -DLOOM_CUDA=OFF -DLOOM_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz-targets
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-all $(FUZZ_BUILD)

test: unit-test fuzz

demo: build models
	PATH="$(CURDIR)/$(BUILD)/bin:$$PATH" examples/rag.sh

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

bench: build models-all
	tests/bench/run-all

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
