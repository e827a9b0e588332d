# The commands the README promises. CMake does the building; this file only
# names the everyday jobs.
BUILD      ?= build
TEST_BUILD ?= build-test
RUN_DIR    ?= run
JOBS       ?= $(shell nproc)

.PHONY: all build run stop test test-unit test-cluster bench format clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Creates a cloud in ./run on first use and starts one peer (EC2 API edge on
# 127.0.0.1:8773) in the background; `make stop` stops it.
run: build
	./scripts/run start $(RUN_DIR) $(BUILD)/mallee

stop:
	./scripts/run stop $(RUN_DIR) $(BUILD)/mallee

# Every tier that fits CI (unit, cluster, fuzz), built with clang under
# AddressSanitizer and UBSan; ends with ctest's summary.
test:
	CC=clang cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug \
		-DMALLEE_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j 2 $(CTEST_ARGS)

test-unit:
	$(MAKE) test CTEST_ARGS="-L unit"

test-cluster:
	$(MAKE) test CTEST_ARGS="-L cluster"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
