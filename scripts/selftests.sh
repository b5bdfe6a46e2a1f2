#!/bin/sh
# Builds Linux 6.12's KVM private-memory selftests from Debian's
# linux-source-6.12 package, unmodified, and runs each under `privmem exec`.
#
#   scripts/selftests.sh BUILD_DIR PRIVMEM_BINARY [TEST ...]
#
# The kernel source is a test input, never part of the repository:
# selftests-src.sh unpacks it into BUILD_DIR/selftests/src; the tests are
# built into BUILD_DIR/selftests/bin. A test passes when it exits 0 and
# reports no SKIP and no TAP "not ok"; each runs under a timeout.
set -eu

build=$1
privmem=$2
shift 2
tests=${*:-"guest_memfd_test set_memory_region_test pre_fault_memory_test
x86_64/private_mem_conversions_test x86_64/private_mem_kvm_exits_test"}
timeout=${SELFTEST_TIMEOUT:-300}
jobs=${SELFTEST_JOBS:-2}

kvm=$("$(dirname "$0")/selftests-src.sh" "$build")
out=$(cd "$build/selftests" && pwd)/bin
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
