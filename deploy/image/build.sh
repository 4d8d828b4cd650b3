#!/usr/bin/env bash
# build.sh: build the proxyfleet proxy-VM appliance: a guest kernel and an
# initramfs that boots straight into the proxy.
#
# The kernel is Debian's cloud kernel, downloaded with `apt-get download` and
# unpacked with `dpkg-deb -x` (never installed on this machine). The initramfs
# is busybox-static, the virtio modules the kernel needs for its NIC, our
# /init (deploy/image/init) and, when build/bin/proxyvmd exists, proxyvmd with
# every shared library ldd names (dynamic loader included). Without proxyvmd
# the /init runs busybox httpd as a stand-in.
#
# The output is reproducible: every file gets the same mtime, the cpio list is
# sorted, owners are 0:0 and gzip writes no timestamp, so the same inputs give
# byte-identical images. Caching is make's job (deploy/build.mk); this script
# always rebuilds what it is asked for, except the downloaded .deb, which it
# keeps in OUT/dl.
#
# usage: build.sh OUTDIR [PROXYVMD]
# env:   PF_KERNEL_PKG   kernel package to use (default: the newest
#                        linux-image-6.1.0-NN-cloud-amd64-unsigned apt knows)
#        PF_IMAGE_DL     where downloaded .debs are kept (default OUTDIR/dl)
#        SOURCE_DATE_EPOCH  mtime of every file in the initramfs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
# Load order matters: each module needs the symbols of those before it.
VIRTIO_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
	virtio_pci failover net_failover virtio_net)

die() { echo "image: $*" >&2; exit 1; }
log() { echo "image: $*"; }

# kernel_pkg_pick: print the kernel package name to use.
kernel_pkg_pick() {
	if [ -n "${PF_KERNEL_PKG:-}" ]; then
		echo "$PF_KERNEL_PKG"
		return
	fi
	local pkg
	pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' |
		awk '{print $1}' | sort -V | tail -n1)
	[ -n "$pkg" ] || die "apt-cache knows no linux-image-6.1.0-NN-cloud-amd64-unsigned (run apt-get update?)"
	echo "$pkg"
}

# kernel_fetch DLDIR PKG: download PKG's .deb into DLDIR unless present; print its path.
kernel_fetch() {
	local dl=$1 pkg=$2 deb
	mkdir -p "$dl"
	deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n1)
	if [ -z "$deb" ]; then
		log "downloading $pkg" >&2
		# _apt cannot write into a root-owned build dir: download as root,
		# quietly (apt warns about the unsandboxed download).
		(cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>"$dl/apt.err") ||
			die "apt-get download $pkg failed: $(tail -n3 "$dl/apt.err")"
		deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n1)
		[ -n "$deb" ] || die "apt-get download left no .deb for $pkg in $dl"
	fi
	echo "$deb"
}

# root_busybox ROOT: busybox-static plus one symlink per applet.
root_busybox() {
	local root=$1 a
	local bb=/bin/busybox
	! ldd "$bb" >/dev/null 2>&1 ||
		die "$bb is not static: install busybox-static"
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc,www,lib/modules}
	install -m 0755 "$bb" "$root/bin/busybox"
	# What glibc programs (proxyvmd) expect to find; /init writes hosts
	# and resolv.conf from the command line.
	printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
	for a in $("$bb" --list | LC_ALL=C sort); do
		[ "$a" = busybox ] && continue
		ln -sf busybox "$root/bin/$a"
	done
}

# root_modules ROOT KDIR KVER: copy the virtio modules and write their load order.
root_modules() {
	local root=$1 kdir=$2 kver=$3 m f
	local dst="$root/lib/modules/$kver"
	mkdir -p "$dst"
	: >"$root/etc/modules.order"
	for m in "${VIRTIO_MODULES[@]}"; do
		f=$(find "$kdir/lib/modules/$kver/kernel" -name "$m.ko" | head -n1)
		[ -n "$f" ] || die "module $m.ko not found in kernel $kver"
		install -m 0644 "$f" "$dst/$m.ko"
		echo "/lib/modules/$kver/$m.ko" >>"$root/etc/modules.order"
	done
}

# root_proxyvmd ROOT BIN: proxyvmd and the shared libraries it loads, each at
# the path ldd reports (symlinks resolved), so the loader finds them as usual.
root_proxyvmd() {
	local root=$1 bin=$2 lib
	install -m 0755 "$bin" "$root/bin/proxyvmd"
	ldd "$bin" >/dev/null 2>&1 || { log "proxyvmd is static"; return 0; }
	for lib in $(ldd "$bin" | grep -oE '/[^ ]+' | LC_ALL=C sort -u); do
		[ -e "$lib" ] || die "ldd names $lib, which does not exist"
		mkdir -p "$root$(dirname "$lib")"
		install -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
}

# cpio_pack ROOT OUT: a reproducible gzip'd newc archive of ROOT.
cpio_pack() {
	local root=$1 out=$2
	find "$root" -exec touch -h -d "@$EPOCH" {} +
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -9 -n >"$out.tmp"
	mv "$out.tmp" "$out"
}

main() {
	[ $# -ge 1 ] || die "usage: build.sh OUTDIR [PROXYVMD]"
	local out=$1 proxyvmd=${2:-}
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	local work="$out/work" pkg deb kver
	rm -rf "$work"
	mkdir -p "$work/kernel" "$work/root"

	pkg=$(kernel_pkg_pick)
	deb=$(kernel_fetch "${PF_IMAGE_DL:-$out/dl}" "$pkg")
	dpkg-deb -x "$deb" "$work/kernel"
	kver=${pkg#linux-image-}
	kver=${kver%-unsigned}
	[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $deb"

	root_busybox "$work/root"
	root_modules "$work/root" "$work/kernel" "$kver"
	install -m 0755 "$HERE/init" "$work/root/init"
	if [ -n "$proxyvmd" ] && [ -x "$proxyvmd" ]; then
		root_proxyvmd "$work/root" "$proxyvmd"
		log "including proxyvmd from $proxyvmd"
	else
		log "no proxyvmd: the image runs the busybox httpd stand-in"
	fi
	printf 'kernel=%s\ndeb=%s\n' "$kver" "$(basename "$deb")" >"$work/root/etc/pf-image"

	cpio_pack "$work/root" "$out/initrd.img"
	install -m 0644 "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	cp "$work/root/etc/pf-image" "$out/image.info"
	rm -rf "$work"
	log "built $out/vmlinuz ($kver) and $out/initrd.img ($(du -k "$out/initrd.img" | cut -f1) KiB)"
}

main "$@"
