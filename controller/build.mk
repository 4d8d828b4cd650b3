# controller/: fleetd (the controller) and fleetctl (the operator's CLI).
CTL_SRCS := controller/ctl_conf.c controller/ctl_model.c controller/ctl_post.c \
	controller/ctl_virt.c controller/ctl_journal.c controller/ctl_tel.c \
	controller/ctl_order.c controller/ctl_mig.c controller/ctl_api.c controller/ctl_req.c \
	controller/ctl_plan.c controller/ctl_geo.c controller/ctl_policy.c \
	controller/ctl_region.c controller/ctl_keep.c controller/ctl_xml.c \
	controller/ctl_standby.c controller/ctl_failover.c controller/ctl_leader.c controller/ctl_recon.c \
	controller/ctl_handover.c controller/ctl_hb.c
CTL_LIB := $(O)/lib/libpfctl.a

$(CTL_LIB): $(call objs,$(CTL_SRCS))
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

# libxml2's headers live in their own folder; asked lazily like pc_libs.
$(OBJ)/controller/ctl_xml.o: CFLAGS += $(shell $(PKG_CONFIG) --cflags libxml-2.0)

PROGS += $(BIN)/fleetd
$(BIN)/fleetd: $(call objs,controller/fleetd.c) $(CTL_LIB) $(COMMON_LIB)
LIBS_fleetd = $(call pc_libs,libvirt libxml-2.0 libevent_openssl libevent_pthreads openssl hiredis libcjson inih) -lpthread

$(eval $(call unit_test,ctl_model,$(CTL_LIB) $(COMMON_LIB),inih libevent hiredis libcjson))
$(eval $(call unit_test,ctl_plan,$(CTL_LIB) $(COMMON_LIB),inih libevent hiredis libcjson))
$(eval $(call unit_test,ctl_xml,$(CTL_LIB) $(COMMON_LIB),libxml-2.0))
$(eval $(call unit_test,ctl_geo,$(CTL_LIB) $(COMMON_LIB),inih libevent hiredis libcjson))
$(eval $(call unit_test,ctl_req,$(CTL_LIB) $(COMMON_LIB),libcjson))
$(eval $(call unit_test,ctl_handover,$(CTL_LIB) $(COMMON_LIB),inih libevent hiredis libcjson))

PROGS += $(BIN)/fleetctl
$(BIN)/fleetctl: $(call objs,controller/fleetctl.c)
LIBS_fleetctl = $(call pc_libs,libcurl libcjson) -lm

# Benchmark (tests/bench/fleetd.sh): fleetd's telemetry ingest at scale.
$(BIN)/bench/fleetd_ingest: $(call objs,tests/bench/fleetd_ingest.c) $(CTL_LIB) $(COMMON_LIB)
LIBS_fleetd_ingest = $(call pc_libs,libvirt libxml-2.0 libevent_openssl libevent_pthreads openssl hiredis libcjson inih) -lpthread

# Benchmark: the rebalancing planner on 10,000 VMs / 1,000 hosts (pure, no I/O);
# part of make bench, alone: make bench-plan.
$(BIN)/bench/fleetd_plan: $(call objs,tests/bench/plan.c) $(CTL_LIB) $(COMMON_LIB)
LIBS_fleetd_plan = -lm
.PHONY: bench-plan
bench: bench-plan
bench-plan: $(BIN)/bench/fleetd_plan
	@$(BIN)/bench/fleetd_plan
