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

.PHONY: all test check demo clean deps image lab-up lab-down lab-status fuzz bench
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

# The README's test command: installs what is missing, builds, runs every
# unit and integration test, closes with "N passed, N failed, N skipped".
test:
	@bash deploy/install-deps.sh
	@$(MAKE) --no-print-directory all $(UNIT_TESTS)
	@PF_BIN=$(abspath $(BIN)) PF_SANITIZE=$(SANITIZE) \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		bash tests/run.sh $(O)/test-logs $(UNIT_TESTS) $(INTEG_TESTS)

check: test

# The README's main command: the demo on the local lab.
demo:
	@bash deploy/install-deps.sh
	@$(MAKE) --no-print-directory all
	@PF_BIN=$(abspath $(BIN)) bash deploy/demo.sh

clean:
	rm -rf build $(CLEAN)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
