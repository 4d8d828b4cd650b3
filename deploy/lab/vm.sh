#!/usr/bin/env bash
# vm.sh: define, start, migrate and remove proxy VMs on the lab's hosts.
#
# Renders deploy/templates/proxyvm.xml for one VM (identity on the kernel
# command line, fleet metadata in <metadata>, MAC derived from the VM id) and
# drives the host's libvirtd over its lab URI with virsh. Reads the address
# plan from build/lab/lab.env (written by lab.sh up).
#
# usage: vm.sh render VMID IP[,IP...] [primary|standby]    print the domain XML
#        vm.sh define HOST VMID IP[,IP...] [primary|standby]
#        vm.sh start  HOST VMID IP[,IP...] [primary|standby] define if needed, start
#        vm.sh destroy HOST VMID                           stop and undefine
#        vm.sh migrate SRC DST VMID                        live migration
#              (env PF_MIGRATE_MAX_DOWNTIME_MS, default 30; PF_MIGRATE_FLAGS)
#        vm.sh list [HOST]                                 running VMs
# An IP without /PREFIX gets /24 (the region segment). The gateway is the
# edge address of the region the first IPv4 address belongs to.
# env: PF_VM_KERNEL, PF_VM_INITRD boot another image than build/image's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_DIR=${PF_LAB_DIR:-$ROOT/build/lab}
TEMPLATE=$ROOT/deploy/templates/proxyvm.xml
MIGRATE_FLAGS="--live --auto-converge --persistent --undefinesource"

die() { echo "vm: $*" >&2; exit 1; }
log() { echo "vm: $*"; }

env_load() {
	[ -f "$LAB_DIR/lab.env" ] || die "no $LAB_DIR/lab.env: run make lab-up"
	# shellcheck source=/dev/null
	. "$LAB_DIR/lab.env"
}

# host_var HOST FIELD: a PF_HOST_<host>_<FIELD> value from lab.env.
host_var() {
	local v="PF_HOST_${1//-/_}_$2"
	[ -n "${!v:-}" ] || die "unknown host '$1' (hosts: $PF_LAB_HOSTS)"
	echo "${!v}"
}

host_uri() { host_var "$1" URI; }

# vm_mac VMID: 52:54:00 (QEMU's OUI) plus three bytes of the id's md5.
vm_mac() {
	local h
	h=$(printf '%s' "$1" | md5sum)
	echo "52:54:00:${h:0:2}:${h:2:2}:${h:4:2}"
}

# ips_normalize IPS: comma list with a prefix on every address.
ips_normalize() {
	local a out=()
	for a in ${1//,/ }; do
		case "$a" in
		*/*) out+=("$a") ;;
		*:*) out+=("$a/64") ;;
		*) out+=("$a/24") ;;
		esac
	done
	[ ${#out[@]} -gt 0 ] || die "no service IP given"
	local IFS=,
	echo "${out[*]}"
}

# ip_region IP: the region whose 10.77.N.0/24 holds IP.
ip_region() {
	local r p
	for r in $PF_LAB_REGIONS; do
		p="PF_REGION_${r}_PREFIX"
		p=${!p%.0/24}
		case "$1" in "$p".*) echo "$r"; return 0 ;; esac
	done
	die "service IP $1 is in no lab region (10.77.1.0/24 eu, 10.77.2.0/24 us)"
}

# vm_render VMID IPS ROLE: the domain XML on stdout.
vm_render() {
	local id=$1 ips role=${3:-primary} first region gw cmdline ipsxml a
	[[ $id =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || die "bad VM id '$id'"
	case "$role" in primary | standby) ;; *) die "role must be primary or standby" ;; esac
	ips=$(ips_normalize "$2")
	first=$(echo "${ips//,/ }" | tr ' ' '\n' | grep -v : | head -n1)
	[ -n "$first" ] || die "at least one IPv4 service address is needed"
	region=$(ip_region "${first%/*}")
	gw="PF_REGION_${region}_GW"
	gw=${!gw}
	cmdline="console=ttyS0 quiet panic=-1 pf.vm=$id pf.ip=$ips pf.gw=$gw pf.role=$role"
	cmdline+=" pf.redis=$PF_REDIS_ADDR pf.redis_pass=$PF_REDIS_PASS"
	# The lab runs Sentinel: proxyvmd finds the master through it.
	if [ -n "${PF_SENTINELS:-}" ]; then
		cmdline+=" pf.sentinels=$PF_SENTINELS pf.redis_master=$PF_REDIS_MASTER"
		cmdline+=" pf.sentinel_pass=$PF_SENTINEL_PASS"
	fi
	if [ -n "${PF_ADMIN_TOKEN:-}" ]; then cmdline+=" pf.admin_token=$PF_ADMIN_TOKEN"; fi
	# The lab's "internet" (client and origin) is a private range: let the
	# proxies reach it through the SSRF guard.
	[ -n "${PF_ORIGIN_NET:-}" ] && cmdline+=" pf.allow=$PF_ORIGIN_NET"
	ipsxml=""
	for a in ${ips//,/ }; do ipsxml+="<pf:ip>$a</pf:ip>"; done
	local kernel=${PF_VM_KERNEL:-$PF_IMAGE_KERNEL} initrd=${PF_VM_INITRD:-$PF_IMAGE_INITRD}
	[ -f "$kernel" ] && [ -f "$initrd" ] || die "no $kernel or $initrd: run make image"
	sed -e "s|@NAME@|$id|g" -e "s|@VMID@|$id|g" -e "s|@ROLE@|$role|g" \
		-e "s|@IPS_XML@|$ipsxml|g" -e "s|@KERNEL@|$kernel|g" \
		-e "s|@INITRD@|$initrd|g" -e "s|@CMDLINE@|$cmdline|g" \
		-e "s|@BRIDGE@|$PF_VM_BRIDGE|g" -e "s|@MAC@|$(vm_mac "$id")|g" "$TEMPLATE"
}

vm_define() {
	local host=$1 id=$2 xml
	mkdir -p "$LAB_DIR/vms"
	xml="$LAB_DIR/vms/$id.xml"
	vm_render "$id" "$3" "${4:-primary}" >"$xml"
	virsh -q -c "$(host_uri "$host")" define "$xml" >/dev/null ||
		die "virsh define $id on $host failed"
	log "defined $id on $host"
}

vm_defined() { virsh -q -c "$(host_uri "$1")" dominfo "$2" >/dev/null 2>&1; }

# cmd_start HOST VMID IPS [ROLE]: define (when needed) and start. A VM id
# lives on one host: starting it where another host already has it would
# run a second copy with the same MAC and IPs, so that is refused. Starting
# a VM that already runs there is a no-op.
cmd_start() {
	local host=$1 id=$2 h
	for h in $PF_LAB_HOSTS; do
		[ "$h" = "$host" ] && continue
		vm_defined "$h" "$id" && die "$id already exists on $h (one VM id, one host; vm.sh destroy $h $id first)"
	done
	vm_defined "$host" "$id" || vm_define "$@"
	if [ "$(virsh -q -c "$(host_uri "$host")" domstate "$id" 2>/dev/null)" = running ]; then
		log "$id already runs on $host"
		return 0
	fi
	virsh -q -c "$(host_uri "$host")" start "$id" >/dev/null || die "virsh start $id on $host failed"
	log "started $id on $host"
}

cmd_destroy() {
	local uri
	uri=$(host_uri "$1")
	virsh -q -c "$uri" destroy "$2" >/dev/null 2>&1 || true
	virsh -q -c "$uri" undefine "$2" >/dev/null 2>&1 || true
	vm_defined "$1" "$2" && die "$2 is still defined on $1"
	log "destroyed $2 on $1"
}

# cmd_migrate SRC DST VMID: live, persistent on DST, undefined on SRC; the
# data stream goes to DST's lab address (--migrateuri). Post-copy is not
# available under TCG. The maximum downtime (QEMU's default 300 ms) is set
# to PF_MIGRATE_MAX_DOWNTIME_MS (30): QEMU then iterates until the last copy
# fits, which cut the measured downtime from about 200 ms to 50-80 ms.
cmd_migrate() {
	local src=$1 dst=$2 id=$3 dip
	dip=$(host_var "$dst" IP)
	virsh -q -c "$(host_uri "$src")" migrate-setmaxdowntime "$id" "${PF_MIGRATE_MAX_DOWNTIME_MS:-30}" ||
		die "cannot set the maximum downtime of $id on $src"
	# shellcheck disable=SC2086 # a list of flags
	virsh -q -c "$(host_uri "$src")" migrate ${PF_MIGRATE_FLAGS:-$MIGRATE_FLAGS} \
		"$id" "$(host_uri "$dst")" --migrateuri "tcp://$dip" ||
		die "migration of $id from $src to $dst failed"
	log "migrated $id from $src to $dst"
}

cmd_list() {
	local h hosts=${1:-$PF_LAB_HOSTS}
	for h in $hosts; do
		echo "$h: $(virsh -q -c "$(host_uri "$h")" list --name | sed '/^$/d' | paste -sd' ' -)"
	done
}

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	env_load
	case "$cmd" in
	render) [ $# -ge 2 ] || die "usage: vm.sh render VMID IPS [ROLE]"; vm_render "$@" ;;
	define) [ $# -ge 3 ] || die "usage: vm.sh define HOST VMID IPS [ROLE]"; vm_define "$@" ;;
	start) [ $# -ge 3 ] || die "usage: vm.sh start HOST VMID IPS [ROLE]"; cmd_start "$@" ;;
	destroy) [ $# -eq 2 ] || die "usage: vm.sh destroy HOST VMID"; cmd_destroy "$@" ;;
	migrate) [ $# -eq 3 ] || die "usage: vm.sh migrate SRC DST VMID"; cmd_migrate "$@" ;;
	list) cmd_list "$@" ;;
	*) die "usage: vm.sh render|define|start|destroy|migrate|list ..." ;;
	esac
}

main "$@"
