#!/bin/sh
# The Debian packages privmem builds and tests with.
#
#   scripts/deps.sh            checks: exits 0 when every one is there, else
#                              names the missing ones and the command that
#                              installs them, and exits 1 (every build runs
#                              this: a build never installs anything itself)
#   scripts/deps.sh --install  installs the missing ones (`make deps`):
#                              apt-get, through sudo when not root
set -eu

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
[ -n "$need" ] || exit 0

if [ "${1:-}" != --install ]; then
	echo "privmem: missing Debian packages:$need" >&2
	echo "privmem: run \`make deps\` to install them (or: sudo apt-get install$need)" >&2
	exit 1
fi

echo "privmem: installing Debian packages:$need" >&2
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
