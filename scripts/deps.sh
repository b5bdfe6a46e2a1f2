#!/bin/sh
# Installs the Debian packages privmem builds and tests with, when any is missing.
# Called by the Makefile before every build; does nothing when all are present.
# `deps.sh fuzz`: also clang, libFuzzer's runtime and llvm-cov/llvm-profdata
# (make fuzz, make fuzz-cov).
set -eu

# pkg-config module -> Debian package providing it
need=""
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
for pair in liburcu-bp:liburcu-dev cmocka:libcmocka-dev libcrypto:libssl-dev; do
	mod=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod"; then
		need="$need $pkg"
	fi
done
# Zydis (src/vcpu/x86/'s decoder) has no pkg-config file in Debian 12.
[ -f /usr/include/Zydis/Zydis.h ] || need="$need libzydis-dev"
if [ "${1:-}" = fuzz ]; then
	command -v clang >/dev/null 2>&1 || need="$need clang"
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
		need="$need libclang-rt-14-dev"
	command -v llvm-cov-14 >/dev/null 2>&1 || need="$need llvm-14"
fi
[ -n "$need" ] || exit 0

echo "privmem: installing missing Debian packages:$need" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "privmem: need root (or sudo) to install:$need" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
