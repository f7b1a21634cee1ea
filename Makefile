# Kiln — build, run, test. `make run` and `make test` install what is missing
# first (scripts/bootstrap); plain `make` only builds.
SHELL := /bin/bash
.DEFAULT_GOAL := all
# keep intermediate objects (the fuzz and asan chains) between runs
.SECONDARY:

CC      ?= cc
PY      := /usr/bin/python3
PKGS    := libmicrohttpd jansson sqlite3 libsodium libzstd libjwt libcurl libarchive yaml-0.1 zlib
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Isrc -Wall -Wextra -Wshadow -Wno-unused-parameter \
               -Wformat=2 -Wno-format-nonliteral -Wno-missing-field-initializers -Wvla -fno-strict-aliasing \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lxgboost -ldl -lpthread -lm
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
GEN      := build/gen/migrations.c build/gen/ui_assets.c build/gen/commit.c build/gen/worker_py.c
OBJ      := $(SRC:%.c=build/obj/%.o) $(GEN:build/gen/%.c=build/obj/gen/%.o)
LIB_OBJ  := $(filter-out build/obj/src/main.o,$(OBJ))
ASAN_OBJ := $(LIB_OBJ:build/obj/%=build/asan/%)
UNIT_SRC := $(shell find tests/unit -name '*.c' 2>/dev/null | sort)
MIGRATIONS := $(sort $(wildcard src/store/migrations/*.sql))
UI_SRC   := $(shell find ui/src ui/public ui/scripts ui/index.html ui/package.json ui/package-lock.json \
              ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)

.PHONY: FORCE all run test asan bench unit api sdk e2e fuzz crash check-banned ui bootstrap clean fmt distclean

all: build/kiln

bootstrap:
	@scripts/bootstrap

# ---- the binary ------------------------------------------------------------
build/kiln: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $(OBJ) $(LIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -MMD -MP -c $< -o $@

build/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O0 -c $< -o $@

# Rewritten only when the commit changes, so it relinks but never rebuilds all.
build/gen/commit.c: FORCE
	@mkdir -p build/gen
	@echo 'const char kiln_commit[] = "$(COMMIT)";' > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

FORCE:

build/gen/migrations.c: $(MIGRATIONS) scripts/embed_assets.py
	@mkdir -p build/gen
	$(PY) scripts/embed_assets.py $@ migrations src/store/migrations

# The serving backend's Python worker, embedded so the binary runs it with
# `python3 -I -c` and needs no file beside it.
build/gen/worker_py.c: src/serve/backends/kiln_worker.py scripts/embed_text.py
	@mkdir -p build/gen
	$(PY) scripts/embed_text.py $@ serve_worker_py $<

# The dashboard is built when npm is present; without it the binary serves a
# page saying so (the API works either way).
# Which assets the last embed used: a KILN_NO_UI build followed by a plain one
# (or the reverse) must re-embed even when no UI source changed.
UI_MODE := $(if $(KILN_NO_UI),none,dashboard)
build/gen/ui-mode: FORCE
	@mkdir -p build/gen
	@echo $(UI_MODE) | cmp -s - $@ || echo $(UI_MODE) > $@

build/gen/ui_assets.c: $(UI_SRC) scripts/embed_assets.py build/gen/ui-mode
	@mkdir -p build/gen
	@if [ -z "$(KILN_NO_UI)" ] && command -v npm >/dev/null 2>&1 && [ -f ui/package.json ]; then \
	  $(MAKE) --no-print-directory ui; \
	else echo "note: npm not found; building without the dashboard"; fi
	$(PY) scripts/embed_assets.py $@ ui $(if $(KILN_NO_UI),build/no-ui,ui/dist)

# npm ci again whenever the lock file changes
ui/node_modules/.kiln-stamp: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

ui: ui/node_modules/.kiln-stamp
	@cd ui && npm run --silent build

-include $(OBJ:.o=.d)

# ---- running ---------------------------------------------------------------
run: bootstrap all
	@echo "Starting Kiln with data in ./data (Ctrl-C stops it)"
	@./build/kiln server --data ./data --listen $${KILN_LISTEN:-127.0.0.1:8080}

# ---- tests -------------------------------------------------------------------
test: bootstrap all
	@scripts/test-all

check-banned:
	@scripts/check-banned

# the unit tests also drive the real binary (kiln admin ...)
build/tests/unit: $(UNIT_SRC) $(LIB_OBJ) | build/kiln
	@mkdir -p build/tests
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $@ $(UNIT_SRC) $(LIB_OBJ) -lcriterion $(LIBS)

unit: build/tests/unit
	build/tests/unit --jobs 2

api: build/kiln
	KILN_BIN=build/kiln $(PY) -m pytest -q tests/api

sdk: build/kiln
	$(PY) -m pytest -q tests/sdk

e2e: build/kiln
	KILN_BIN=$(CURDIR)/build/kiln tests/e2e/run.sh

# ---- sanitizers: unit and API suites under ASan/UBSan -------------------------
build/asan/%.o: build/obj/%.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -c $(if $(filter gen/%,$*),build/$*.c,$*.c) -o $@

build/asan/kiln: $(ASAN_OBJ) src/main.c
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ src/main.c $(ASAN_OBJ) $(LIBS)

build/asan/unit: $(UNIT_SRC) $(ASAN_OBJ) | build/kiln
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $(UNIT_SRC) $(ASAN_OBJ) -lcriterion $(LIBS)

asan: build/asan/unit build/asan/kiln
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  build/asan/unit --jobs 2 --filter '!(serve_python/*)'
	@# Criterion's own runner (not a test) leaks ~48 bytes per event when tests that
	@# fork worker processes run two at a time; those tests run one at a time here.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  build/asan/unit --jobs 1 --filter 'serve_python/*'
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  KILN_BIN=build/asan/kiln KILN_ASAN=1 $(PY) -m pytest -q tests/api

# ---- fuzzing (libFuzzer, clang) ----------------------------------------------
# Sources are compiled once with coverage hooks; each harness links them.
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_OBJ   := $(LIB_SRC:%.c=build/fuzz/obj/%.o) $(GEN:build/gen/%.c=build/fuzz/obj/gen/%.o)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CFLAGS_BASE) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build/fuzz/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	clang $(CFLAGS_BASE) -O0 -c $< -o $@

-include $(FUZZ_OBJ:.o=.d)

build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p build/fuzz
	clang $(CFLAGS_BASE) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LIBS)

FUZZERS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: $(FUZZERS)
	@scripts/run-fuzz $(FUZZ_SECONDS)

crash: build/tests/crash
	build/tests/crash

build/tests/crash: tests/crash/crash.c $(LIB_OBJ)
	@mkdir -p build/tests
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LIBS)

# ---- benchmarks --------------------------------------------------------------
bench: bootstrap all
	bench/http/run.sh
	bench/tracking/run.sh
	bench/serving/run.sh

# bench/serving's limit: the serving backend called in-process (no HTTP)
build/bench/serve_raw: bench/serving/raw.c $(LIB_OBJ)
	@mkdir -p build/bench
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LIBS)

# micro-benchmark of the V2 parser/encoder (µs per call; not part of `make bench`)
build/bench/v2_parse: bench/proto/v2_parse.c $(LIB_OBJ)
	@mkdir -p build/bench
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LIBS)

fmt:
	clang-format -i $(SRC) $(shell find src -name '*.h') $(UNIT_SRC)

clean:
	rm -rf build

distclean: clean
	rm -rf deps ui/node_modules ui/dist tests/e2e/node_modules
