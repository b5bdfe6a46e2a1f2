#!/bin/sh
# Builds Linux 6.12's KVM private-memory selftests from Debian's
# linux-source-6.12 package, unmodified, and runs each under `privmem exec`.
#
#   scripts/selftests.sh BUILD_DIR PRIVMEM_BINARY [TEST ...]
#
# The kernel source is a test input, never part of the repository: the
# package's tarball is taken from /usr/src if installed, else fetched with
# `apt-get download` into BUILD_DIR/selftests (no root needed; one
# `apt-get update` is tried first when the download fails and we are root).
# It is unpacked and its selftests are built there once (stamps keep the
# work for later runs). A test passes when it exits 0 and reports no SKIP
# and no TAP "not ok"; each runs under a timeout.
set -eu

build=$1
privmem=$2
shift 2
tests=${*:-"guest_memfd_test set_memory_region_test pre_fault_memory_test
x86_64/private_mem_conversions_test x86_64/private_mem_kvm_exits_test"}
pkg=linux-source-6.12
dir=$build/selftests
src=$dir/src
timeout=${SELFTEST_TIMEOUT:-300}
jobs=${SELFTEST_JOBS:-2}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
src=$dir/src

fetch_tarball() {
	if [ -f /usr/src/$pkg.tar.xz ]; then
		echo /usr/src/$pkg.tar.xz
		return
	fi
	if ! ls "$dir"/${pkg}_*.deb >/dev/null 2>&1; then
		echo "selftests: fetching $pkg with apt-get download" >&2
		if ! (cd "$dir" && apt-get download -q $pkg >&2); then
			if [ "$(id -u)" = 0 ]; then
				apt-get update -qq >&2
				(cd "$dir" && apt-get download -q $pkg >&2)
			else
				echo "selftests: cannot download $pkg (try: sudo apt-get update)" >&2
				exit 2
			fi
		fi
	fi
	deb=$(ls "$dir"/${pkg}_*.deb | tail -n 1)
	if [ ! -f "$dir/deb/usr/src/$pkg.tar.xz" ]; then
		rm -rf "$dir/deb"
		dpkg-deb -x "$deb" "$dir/deb"
	fi
	echo "$dir/deb/usr/src/$pkg.tar.xz"
}

if [ ! -f "$src/.unpacked" ]; then
	tarball=$(fetch_tarball)
	echo "selftests: unpacking $tarball" >&2
	rm -rf "$src"
	mkdir -p "$src"
	tar -xf "$tarball" -C "$src" --strip-components=1
	touch "$src/.unpacked"
fi
if [ ! -f "$src/.headers" ]; then
	echo "selftests: make headers" >&2
	make -s -C "$src" headers >/dev/null
	touch "$src/.headers"
fi

kvm=$src/tools/testing/selftests/kvm
out=$dir/bin
mkdir -p "$out"
targets=""
for t in $tests; do targets="$targets $out/$t"; done
echo "selftests: building$(printf ' %s' $tests)" >&2
# shellcheck disable=SC2086
make -s -C "$kvm" -j"$jobs" OUTPUT="$out" $targets >/dev/null

fail=0
for t in $tests; do
	log=$out/$t.log
	start=$(date +%s)
	set +e
	(cd "$kvm" && timeout "$timeout" "$privmem" exec --kvm-version 6.12 -- "$out/$t") >"$log" 2>&1
	rc=$?
	set -e
	secs=$(( $(date +%s) - start ))
	if [ $rc -ne 0 ] || grep -q "SKIP" "$log" || grep -q "^not ok" "$log"; then
		echo "FAIL  $t (exit $rc, ${secs} s)"
		sed 's/^/      /' "$log" | tail -n 25
		fail=1
	else
		echo "ok    $t (${secs} s)"
	fi
done
exit $fail
