# common/: code several daemons share (logging, config, signals, clocks, the
# Redis link). Built once into an archive every program links.
COMMON_SRCS := common/log.c common/util.c common/conf.c common/sig.c common/rlink.c common/rtarget.c common/hb.c
COMMON_LIB := $(O)/lib/libpfcommon.a
COMMON_PKGS := libevent hiredis inih

$(COMMON_LIB): $(call objs,$(COMMON_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(eval $(call unit_test,log,$(COMMON_LIB),))
$(eval $(call unit_test,conf,$(COMMON_LIB),inih))
$(eval $(call unit_test,rlink,$(COMMON_LIB),libevent hiredis))
$(eval $(call unit_test,hb,$(COMMON_LIB),libcrypto))
