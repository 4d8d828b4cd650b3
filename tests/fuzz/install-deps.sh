#!/usr/bin/env bash
# install-deps.sh: what the fuzz targets need on Debian 12, installed on
# demand; `make test` (after deploy/install-deps.sh) and `make fuzz` call it.
#
# libFuzzer comes with clang, but Debian splits its runtime
# (libclang_rt.fuzzer-x86_64.a) into libclang-rt-14-dev, which clang only
# recommends: with --no-install-recommends, or on a machine that has clang
# from elsewhere, `clang -fsanitize=fuzzer` fails at link time. The pair is
# ~260 MB installed (clang pulls LLVM), which `make demo` does not need, so it stays
# out of deploy/install-deps.sh. This first tries to link a one-line fuzz
# target: when that works nothing is installed (and apt is not asked).
set -euo pipefail

PKGS=(clang libclang-rt-14-dev)

probe() {
	local d
	d=$(mktemp -d /tmp/pf-fuzz-probe.XXXXXX)
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$d/p.c"
	clang -fsanitize=fuzzer,address,undefined -o "$d/p" "$d/p.c" >"$d/log" 2>&1
	local rc=$?
	rm -rf "$d"
	return $rc
}

command -v clang >/dev/null 2>&1 && probe && exit 0

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "fuzz: clang cannot link a libFuzzer target although ${PKGS[*]} are installed" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "fuzz: missing packages: ${missing[*]}; run as root or apt-get install them" >&2
	exit 1
fi
echo "fuzz: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -n1)" ]; then
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/proxyfleet-fuzz-apt.log 2>&1 || {
	echo "fuzz: apt-get failed; last lines of /tmp/proxyfleet-fuzz-apt.log:" >&2
	tail -n 20 /tmp/proxyfleet-fuzz-apt.log >&2
	exit 1
}
probe || { echo "fuzz: clang still cannot link a libFuzzer target" >&2; exit 1; }
