# proxyvm/: proxyvmd, the proxy inside each proxy VM. The pure parsers
# (px_http, px_socks, px_ssrf) form their own archive so that unit tests
# link them without libevent; the fuzz targets (tests/fuzz/build.mk) compile
# PX_PARSE_SRCS themselves.
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

# make bench runs every component's benchmark; this one alone: make bench-proxy.
# make bench-proxy-bulk: tunnel throughput against direct, interleaved rounds,
# medians (tests/bench/proxy_bulk.sh; ROUNDS, PIN, CPU_* from the environment).
.PHONY: bench-proxy bench-proxy-bulk
bench: bench-proxy
bench-proxy:
	@bash tests/bench/proxy.sh
bench-proxy-bulk: $(BIN)/proxyvmd
	@PF_BIN=$(abspath $(BIN)) bash tests/bench/proxy_bulk.sh
