#!/bin/sh
# Fetches Debian's OVMF firmware (package ovmf: /usr/share/ovmf/OVMF.fd
# carries the SEV and TDX metadata) into DIR (default build/ovmf), for
# tests/test_measure.c; nothing to do if it is there. Uses apt-get download
# (no install, no root needed for the package itself) and dpkg-deb -x.
# Exit 0 if DIR/usr/share/ovmf/OVMF.fd exists afterwards, 1 otherwise (the
# tests then skip, saying why).
set -u
dir=${1:-build/ovmf}
fd="$dir/usr/share/ovmf/OVMF.fd"
[ -f "$fd" ] && exit 0
mkdir -p "$dir" || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
( cd "$work" && apt-get download ovmf >/dev/null 2>&1 ) ||
	{ apt-get update -qq >/dev/null 2>&1 && ( cd "$work" && apt-get download ovmf >/dev/null 2>&1 ); }
deb=$(ls "$work"/ovmf_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
	echo "fetch-ovmf: apt-get download ovmf failed: the OVMF tests will skip" >&2
	exit 1
fi
dpkg-deb -x "$deb" "$dir" || exit 1
[ -f "$fd" ] && echo "fetch-ovmf: $(basename "$deb") -> $fd"
