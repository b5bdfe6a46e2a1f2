#!/bin/sh
# The Debian packages privmem builds and tests with.
#
#   scripts/deps.sh [fuzz]            every build runs this: exits 0 when every
#                                     package is there; otherwise installs the
#                                     missing ones when run as root (apt-get,
#                                     as on a fresh Debian 12 or in CI), else
#                                     names them and the command that installs
#                                     them and exits 1 (a build never calls sudo)
#   scripts/deps.sh --install [fuzz]  installs the missing ones (`make deps`):
#                                     apt-get, through sudo when not root
#   fuzz: also clang, libFuzzer's runtime and llvm-cov/llvm-profdata (make fuzz,
#   make fuzz-cov)
set -eu

install=0
fuzz=0
for arg in "$@"; do
	case $arg in
	--install) install=1 ;;
	fuzz) fuzz=1 ;;
	*) echo "usage: scripts/deps.sh [--install] [fuzz]" >&2; exit 2 ;;
	esac
done

# pkg-config module -> Debian package providing it
need=""
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
{ command -v cc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1; } || need="$need build-essential"
for pair in liburcu-bp:liburcu-dev cmocka:libcmocka-dev libcrypto:libssl-dev; do
	mod=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod"; then
		need="$need $pkg"
	fi
done
# Zydis (src/vcpu/x86/'s decoder) has no pkg-config file in Debian 12.
[ -f /usr/include/Zydis/Zydis.h ] || need="$need libzydis-dev"
# --plot draws with gnuplot (and the tests draw).
command -v gnuplot >/dev/null 2>&1 || need="$need gnuplot-nox"
if [ "$fuzz" = 1 ]; then
	command -v clang >/dev/null 2>&1 || need="$need clang"
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
		need="$need libclang-rt-14-dev"
	command -v llvm-cov-14 >/dev/null 2>&1 || need="$need llvm-14"
fi
[ -n "$need" ] || exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
	if [ "$install" = 0 ]; then
		echo "privmem: missing Debian packages:$need" >&2
		echo "privmem: run \`make deps\` to install them (it uses sudo), or: sudo apt-get install$need" >&2
		exit 1
	fi
	if command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "privmem: need root (or sudo) to install:$need" >&2
		exit 1
	fi
fi

echo "privmem: installing Debian packages:$need" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
