#!/usr/bin/env bash
# install-deps.sh: install every Debian 12 package proxyfleet needs to build,
# test and run its lab. Idempotent: when everything is present it only runs
# one dpkg query and exits. Must run as root (apt-get).
set -euo pipefail

PKGS=(
	# toolchain
	build-essential pkg-config
	# libraries the daemons link
	libevent-dev libhiredis-dev libcjson-dev libssl-dev libvirt-dev libxml2-dev
	libmnl-dev libinih-dev libcurl4-openssl-dev
	# unit-test framework
	libcmocka-dev
	# runtime: redis, libvirt + QEMU (TCG), lab plumbing
	redis-server redis-sentinel libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
	qemu-system-x86 busybox-static cpio iproute2 bridge-utils
	# clients the integration tests drive
	curl tshark procps psmisc iputils-ping netcat-openbsd openssl python3
)

missing=()
for p in "${PKGS[@]}"; do
	case "$p" in \#*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
	exit 1
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Services must not start on install (no systemd here; the lab starts its own).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	made_policy=1
fi
trap '[ $made_policy -eq 1 ] && rm -f "$policy"' EXIT
# One update when the lists are absent or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -n1)" ]; then
	apt-get update -qq
fi
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/proxyfleet-apt.log 2>&1 || {
	echo "install-deps: apt-get failed; last lines of /tmp/proxyfleet-apt.log:" >&2
	tail -n 20 /tmp/proxyfleet-apt.log >&2
	exit 1
}
echo "install-deps: done"
