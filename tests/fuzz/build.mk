# tests/fuzz/: libFuzzer targets (clang; ASan + UBSan, UB fatal), one per
# parser of what comes from outside: HTTP heads, SOCKS5 frames, SSRF lists
# (proxyvmd), handover orders (netmigrated), the three daemons' config files,
# fleetd's API request bodies. Each compiles the sources it tests with the
# fuzzer's instrumentation instead of linking the archives.
#
# `make test` builds $(FUZZERS) and tests/run.sh runs each for
# FUZZ_TEST_SECONDS (default 20) through tests/fuzz/run.sh; `make fuzz` runs
# them for FUZZ_SECONDS each and keeps what they find in $(FUZZ_DIR)/corpus.
#
# The binaries are built the same way whatever SANITIZE says (always
# instrumented; nothing from CFLAGS or SANFLAGS enters FUZZ_CFLAGS), so they
# live in build/fuzz for both `make test` and `make test SANITIZE=1`: the
# second pass reuses the first one's binaries when no source changed, and
# each pass keeps its scratch corpora and crash inputs in its own log dir.
FUZZ_SECONDS ?= 30
FUZZ_DIR := build/fuzz
FUZZ_CC := clang
FUZZ_CFLAGS := -std=c11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# A header change rebuilds them all: they are a few seconds each.
FUZZ_HDRS := $(wildcard common/*.h proxyvm/*.h netmigrate/*.h controller/*.h)

# $(call fuzz_target,NAME,SOURCES,PKG-CONFIG-PACKAGES): tests/fuzz/NAME.c
# with SOURCES into $(FUZZ_DIR)/NAME, seeds in tests/fuzz/seeds/NAME/.
# Linked to a temporary name first, so a failed link leaves no binary.
define fuzz_target
FUZZERS += $(FUZZ_DIR)/$(1)
$(FUZZ_DIR)/$(1): tests/fuzz/$(1).c $(2) $(FUZZ_HDRS)
	@mkdir -p $$(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $$@.tmp $$< $(2) $(if $(3),$$(call pc_libs,$(3))) && mv $$@.tmp $$@
endef

$(eval $(call fuzz_target,fuzz_px_http,$(PX_PARSE_SRCS) common/util.c,))
$(eval $(call fuzz_target,fuzz_px_socks,$(PX_PARSE_SRCS) common/util.c,))
$(eval $(call fuzz_target,fuzz_px_ssrf,$(PX_PARSE_SRCS) common/util.c,))
$(eval $(call fuzz_target,fuzz_nm_order,$(NM_LIB_SRCS) common/util.c,libmnl))
$(eval $(call fuzz_target,fuzz_conf,common/conf.c common/log.c common/util.c common/rtarget.c \
	controller/ctl_conf.c proxyvm/px_conf.c proxyvm/px_ssrf.c netmigrate/nmd_conf.c \
	netmigrate/nm_pkt.c,inih))
$(eval $(call fuzz_target,fuzz_ctl_api,controller/ctl_req.c controller/ctl_model.c \
	controller/ctl_geo.c controller/ctl_plan.c common/util.c,libcjson))

# make fuzz installs clang's libFuzzer runtime first when it is missing
# (tests/fuzz/install-deps.sh), then runs every target for FUZZ_SECONDS on
# a corpus kept between runs; one TAP line per target, the libFuzzer output
# in $(FUZZ_DIR)/logs. It goes through all of them and fails at the end
# when one crashed.
.PHONY: fuzz-run
fuzz:
	@bash tests/fuzz/install-deps.sh
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(FUZZERS)
	@rc=0; for f in $^; do \
		n=$$(basename $$f); \
		out=$$(FUZZ_TEST_SECONDS=$(FUZZ_SECONDS) FUZZ_CORPUS=$(FUZZ_DIR)/corpus/$$n \
			bash tests/fuzz/run.sh $$f $(FUZZ_DIR)/logs) || rc=1; \
		echo "$$out" | grep -v '^1\.\.'; \
	done; exit $$rc
