# Unit tests: one cmocka binary per module, tests/unit/test_<module>.c, linked
# against the module's library. Components add theirs in their own build.mk
# with $(call unit_test,NAME,LIBS-ARCHIVES,PKG-CONFIG-PACKAGES).
TEST_BIN := $(BIN)/tests

define unit_test
UNIT_TESTS += $(TEST_BIN)/test_$(1)
$(TEST_BIN)/test_$(1): $(call objs,tests/unit/test_$(1).c) $(2)
LIBS_test_$(1) = $$(call pc_libs,cmocka $(3))
endef

# Test tools: the fine-grained client probe used by the lab tests and the demo.
TEST_TOOLS := $(BIN)/pfprobe
$(BIN)/pfprobe: $(call objs,tests/tools/pfprobe.c)
LIBS_pfprobe = $(call pc_libs,libevent)
