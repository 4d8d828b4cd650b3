# proxyvm/: proxyvmd, the proxy inside each proxy VM. The pure parsers
# (px_http, px_socks, px_ssrf) form their own archive so that unit tests and
# fuzz targets link them without libevent.
PX_PARSE_SRCS := proxyvm/px_http.c proxyvm/px_socks.c proxyvm/px_ssrf.c
PX_PARSE_LIB := $(O)/lib/libpxparse.a
PX_SRCS := proxyvm/proxyvmd.c proxyvm/px_conf.c proxyvm/px_sess.c proxyvm/px_auth.c \
	proxyvm/px_dns.c proxyvm/px_tel.c proxyvm/px_admin.c proxyvm/px_svc.c

$(PX_PARSE_LIB): $(call objs,$(PX_PARSE_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

PROGS += $(BIN)/proxyvmd
$(BIN)/proxyvmd: $(call objs,$(PX_SRCS)) $(PX_PARSE_LIB) $(COMMON_LIB)
LIBS_proxyvmd = $(call pc_libs,libevent hiredis inih libmnl libcrypt) -lpthread

$(eval $(call unit_test,px_http,$(PX_PARSE_LIB) $(COMMON_LIB),))
$(eval $(call unit_test,px_socks,$(PX_PARSE_LIB) $(COMMON_LIB),))
$(eval $(call unit_test,px_ssrf,$(PX_PARSE_LIB) $(COMMON_LIB),))

# Fuzz targets (libFuzzer, clang): make fuzz runs each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
FUZZ_DIR := build/fuzz
PX_FUZZERS := http socks ssrf
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined

$(FUZZ_DIR)/fuzz_px_%: tests/fuzz/fuzz_px_%.c $(PX_PARSE_SRCS) common/util.c proxyvm/px_http.h \
		proxyvm/px_socks.h proxyvm/px_ssrf.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(PX_PARSE_SRCS) common/util.c

FUZZERS += $(patsubst %,$(FUZZ_DIR)/fuzz_px_%,$(PX_FUZZERS))

# make fuzz installs clang's libFuzzer runtime first when it is missing
# (tests/fuzz/install-deps.sh; make test does not need it).
.PHONY: fuzz-run
fuzz:
	@bash tests/fuzz/install-deps.sh
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(patsubst %,$(FUZZ_DIR)/fuzz_px_%,$(PX_FUZZERS))
	@for f in $^; do \
		n=$$(basename $$f); mkdir -p $(FUZZ_DIR)/corpus/$$n; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
			$(FUZZ_DIR)/corpus/$$n tests/fuzz/seeds/$$n 2>$(FUZZ_DIR)/$$n.log \
			|| { tail -n 40 $(FUZZ_DIR)/$$n.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units|stat::peak_rss' $(FUZZ_DIR)/$$n.log; \
	done

# make bench runs every component's benchmark; this one alone: make bench-proxy.
# make bench-proxy-bulk: tunnel throughput against direct, interleaved rounds,
# medians (tests/bench/proxy_bulk.sh; ROUNDS, PIN, CPU_* from the environment).
.PHONY: bench-proxy bench-proxy-bulk
bench: bench-proxy
bench-proxy:
	@bash tests/bench/proxy.sh
bench-proxy-bulk: $(BIN)/proxyvmd
	@PF_BIN=$(abspath $(BIN)) bash tests/bench/proxy_bulk.sh
