# deploy/build.mk: the proxy-VM appliance image and the local lab.
#
#   make image       build/image/{vmlinuz,initrd.img}, rebuilt only when an
#                    input changes (build.sh, init, proxyvmd appearing,
#                    changing or disappearing)
#   make lab-up      the multi-region lab (deploy/lab/lab.sh up); idempotent
#   make lab-down    removes everything the lab made
#   make lab-status  hosts, libvirt URIs, running VMs
#
# The image always comes from the normal build (build/bin/proxyvmd), also
# under SANITIZE=1: an ASan proxyvmd does not belong in a 128 MiB guest.

PF_IMAGE_DIR := build/image
PF_IMAGE_PROXYVMD := build/bin/proxyvmd
# When proxyvm/build.mk declares proxyvmd, build it before the image.
PF_IMAGE_PROXYVMD_DEP := $(filter $(PF_IMAGE_PROXYVMD),$(PROGS))

image: $(PF_IMAGE_DIR)/vmlinuz $(PF_IMAGE_DIR)/initrd.img

# The stamp holds "with proxyvmd" or "stand-in" and is rewritten only when
# that changes, so proxyvmd appearing or vanishing rebuilds the image while
# an unchanged state leaves it alone.
$(PF_IMAGE_DIR)/proxyvmd.stamp: pf-image-force $(PF_IMAGE_PROXYVMD_DEP)
	@mkdir -p $(@D)
	@if [ -x $(PF_IMAGE_PROXYVMD) ]; then s="with proxyvmd"; else s="stand-in"; fi; \
	[ "$$(cat $@ 2>/dev/null)" = "$$s" ] || echo "$$s" >$@

$(PF_IMAGE_DIR)/vmlinuz $(PF_IMAGE_DIR)/initrd.img &: deploy/image/build.sh deploy/image/init \
		$(PF_IMAGE_DIR)/proxyvmd.stamp $(wildcard $(PF_IMAGE_PROXYVMD)) $(PF_IMAGE_PROXYVMD_DEP)
	bash deploy/image/build.sh $(PF_IMAGE_DIR) $(PF_IMAGE_PROXYVMD)

lab-up: image
	@bash deploy/install-deps.sh
	@bash deploy/lab/lab.sh up

lab-down:
	@bash deploy/lab/lab.sh down

lab-status:
	@bash deploy/lab/lab.sh status

.PHONY: image lab-up lab-down lab-status pf-image-force
