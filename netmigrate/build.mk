# netmigrate/: libnetmigrate (announcements, netlink, orders, the handover
# plan), the `netmigrate` CLI and the `netmigrated` host agent.
NM_LIB_SRCS := netmigrate/nm_pkt.c netmigrate/nm_ctx.c netmigrate/nm_nl.c netmigrate/nm_order.c
NM_LIB := $(O)/lib/libnetmigrate.a

$(NM_LIB): $(call objs,$(NM_LIB_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

PROGS += $(BIN)/netmigrate $(BIN)/netmigrated

$(BIN)/netmigrate: $(call objs,netmigrate/netmigrate.c) $(NM_LIB) $(COMMON_LIB)
LIBS_netmigrate = $(call pc_libs,libmnl)

NMD_SRCS := netmigrate/nmd.c netmigrate/nmd_conf.c netmigrate/nmd_orders.c netmigrate/nmd_metrics.c \
	netmigrate/nmd_hb.c netmigrate/nmd_want.c
$(BIN)/netmigrated: $(call objs,$(NMD_SRCS)) $(NM_LIB) $(COMMON_LIB)
LIBS_netmigrated = $(call pc_libs,libmnl libcrypto $(COMMON_PKGS))


$(eval $(call unit_test,nm_pkt,$(NM_LIB) $(COMMON_LIB),libmnl))
$(eval $(call unit_test,nm_order,$(NM_LIB) $(COMMON_LIB),libmnl))

# Not part of `make test`: handover of 100 service IPs, in namespaces.
# `make bench` runs it with every other component's benchmark.
bench: bench-netmigrate
bench-netmigrate: $(BIN)/netmigrate
	@bash tests/bench/handover.sh $(abspath $(BIN))
.PHONY: bench-netmigrate
