# proxyfleet: one non-recursive Makefile. Each component folder adds its
# binaries and tests through a build.mk fragment included below; objects go
# to $(O)/obj, binaries to $(O)/bin. SANITIZE=1 builds under ASan + UBSan in
# build/san so both builds can live side by side.

O ?= build
ifeq ($(SANITIZE),1)
O := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CC ?= cc
PKG_CONFIG ?= pkg-config
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
# Debian's headers need no -I: code includes <hiredis/hiredis.h>, <cjson/cJSON.h>.
CFLAGS += -std=c11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)

BIN := $(O)/bin
OBJ := $(O)/obj

# $(call objs,SRCS): the object files of some sources.
objs = $(patsubst %.c,$(OBJ)/%.o,$(1))
# $(call pc_libs,PKGS): link flags of Debian packages, evaluated lazily (at
# link time) so that `make test` can install them before pkg-config is asked.
pc_libs = $(shell $(PKG_CONFIG) --libs $(1))

PROGS :=
UNIT_TESTS :=
FUZZERS :=
CLEAN :=

include tests/build.mk
include common/build.mk
-include proxyvm/build.mk
-include netmigrate/build.mk
-include controller/build.mk
-include deploy/build.mk
include tests/fuzz/build.mk

.PHONY: all test test-repeat check demo clean deps image lab-up lab-down lab-status fuzz bench
.DEFAULT_GOAL := all

all: $(PROGS) $(TEST_TOOLS)

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Link rule shared by every program: objects and archives first, then libs.
$(BIN)/%:
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS_$(notdir $@))

deps:
	@bash deploy/install-deps.sh

INTEG_TESTS = $(sort $(wildcard tests/integ/t_*.sh))

# What every test run needs first: the packages (clang's libFuzzer runtime
# included), then the programs, the unit tests and the fuzz targets, built
# by a sub-make so that pkg-config is asked after the install.
ALL_TESTS = $(UNIT_TESTS) $(FUZZERS) $(INTEG_TESTS)
TEST_ENV = PF_BIN=$(abspath $(BIN)) PF_SANITIZE=$(SANITIZE) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
.PHONY: test-build
test-build:
	@bash deploy/install-deps.sh
	@bash tests/fuzz/install-deps.sh
	@$(MAKE) --no-print-directory all $(UNIT_TESTS) $(FUZZERS)

# The README's test command: installs what is missing, builds, runs every
# unit test, every fuzz target (FUZZ_TEST_SECONDS each) and every
# integration test, closes with "N passed, N failed, N skipped".
test: test-build
	@$(TEST_ENV) bash tests/run.sh $(O)/test-logs $(ALL_TESTS)

check: test

# The flake hunt: `make test-repeat T=REGEX N=5` runs the matching tests N
# times each on the current build and prints per test how many runs failed
# (tests/repeat.sh; the failed runs' logs stay in $(O)/test-repeat/ROUND/).
N ?= 5
test-repeat: test-build
	@$(TEST_ENV) bash tests/repeat.sh $(O)/test-repeat $(N) $(ALL_TESTS)

# The README's main command: the demo on the local lab.
demo:
	@bash deploy/install-deps.sh
	@$(MAKE) --no-print-directory all
	@PF_BIN=$(abspath $(BIN)) bash deploy/demo.sh

clean:
	rm -rf build $(CLEAN)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
