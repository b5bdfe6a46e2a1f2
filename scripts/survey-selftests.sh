#!/bin/sh
# Surveys Linux 6.12's x86-64 KVM selftests (the generic ones and x86_64/*,
# the Makefile's TEST_GEN_PROGS and TEST_GEN_PROGS_EXTENDED for x86_64) on
# privmem and on the host's KVM, and prints a markdown table.
#
#   scripts/survey-selftests.sh BUILD_DIR PRIVMEM_BINARY [TEST ...]
#
# The source is the tree selftests-src.sh unpacks into BUILD_DIR/selftests/src;
# the whole suite is built, unmodified, into BUILD_DIR/selftests/bin. Each test
# runs from the kvm selftests directory as
#   privmem exec --kvm-version 6.12 -- TEST      (column "privmem")
#   TEST                                         (column "host KVM", when /dev/kvm opens)
# under a timeout (60 s; a test that times out gets one retry with 300 s).
# Verdicts: PASS (exit 0, no SKIP, no TAP "not ok"), SKIP (exit 4, or exit 0
# with skipped subtests), FAIL (exit != 0: the assertion and its message),
# CRASH (killed by a signal), TIMEOUT. Logs and verdicts are kept in
# BUILD_DIR/selftests/survey/{privmem,host}/TEST.{log,res}.
#
# Environment:
#   SURVEY_RUN="privmem host"  columns to run now ("" only prints the table
#                              from the kept verdicts; two runs with one column
#                              each may go in parallel)
#   SURVEY_KVM_DIR=DIR         an already built kvm selftests directory (its
#                              binaries in place): no unpacking, no build
#   SURVEY_TIMEOUT=60 SURVEY_RETRY_TIMEOUT=300 SURVEY_JOBS=2 (build jobs)
set -eu

build=$1
privmem=$2
shift 2
run_columns=${SURVEY_RUN-"privmem host"}
timeout=${SURVEY_TIMEOUT:-60}
retry_timeout=${SURVEY_RETRY_TIMEOUT:-300}
jobs=${SURVEY_JOBS:-2}

case $privmem in /*) ;; *) privmem=$(pwd)/$privmem ;; esac
mkdir -p "$build/selftests"
results=$(cd "$build/selftests" && pwd)/survey

if [ -n "${SURVEY_KVM_DIR:-}" ]; then
	kvm=$(cd "$SURVEY_KVM_DIR" && pwd)
	out=$kvm
else
	kvm=$("$(dirname "$0")/selftests-src.sh" "$build")
	out=$(cd "$build/selftests" && pwd)/bin
fi

# The test list is the Makefile's own, so the survey follows the tree.
if [ $# -gt 0 ]; then
	tests=$*
else
	tests=$(make -s --no-print-directory -C "$kvm" OUTPUT="$out" \
		--eval 'survey-list: ; @echo $(TEST_GEN_PROGS) $(TEST_GEN_PROGS_EXTENDED)' \
		survey-list | tr ' ' '\n' | sed "s|^$out/||" | grep -v '^$')
fi

if [ -z "${SURVEY_KVM_DIR:-}" ] && [ -n "$run_columns" ]; then
	echo "survey: building the KVM selftests into $out" >&2
	mkdir -p "$out"
	targets=""
	for t in $tests; do targets="$targets $out/$t"; done
	# shellcheck disable=SC2086
	make -s -C "$kvm" -j"$jobs" OUTPUT="$out" $targets >/dev/null
fi

# Arguments a test needs to run at all. nx_huge_pages_test is normally run by
# nx_huge_pages_test.sh, which rewrites the host's KVM module parameters and
# huge page count: the survey runs the binary alone, with the wrapper's token.
test_args() {
	case $1 in
	x86_64/nx_huge_pages_test) echo "-t 887563923 -p 100 -r" ;;
	*) echo "" ;;
	esac
}

# Markdown-safe one-liner of at most 200 characters.
md() {
	tr '\n' ' ' | sed 's/|/\\|/g; s/  */ /g; s/^ //; s/ $//' | cut -c1-200
}

# classify LOG RC SECONDS: prints "VERDICT<TAB>detail".
classify() {
	log=$1 rc=$2 secs=$3
	if [ "$rc" -eq 124 ]; then
		printf 'TIMEOUT\tno exit within %s s\n' "$secs"
		return
	fi
	if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
		sig=$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))
		printf 'CRASH\tSIG%s; %s\n' "$sig" "$(grep -v '^$' "$log" | tail -n 2 | md)"
		return
	fi
	skips=$(grep -c 'SKIP' "$log" || true)
	if [ "$rc" -eq 4 ] || { [ "$rc" -eq 0 ] && [ "$skips" -gt 0 ] && ! grep -q '^not ok' "$log"; }; then
		why=$(grep -m1 'SKIP' "$log" | sed 's/^.*SKIP[ -]*//' | md)
		# Some skip with exit 4 and their own words only.
		[ -n "$why" ] || why=$(grep -v '^$' "$log" | tail -n 1 | md)
		if [ "$rc" -eq 0 ]; then
			oks=$(grep -c '^ok ' "$log" || true)
			why="exit 0, $skips of $oks subtests skipped: $why"
		fi
		printf 'SKIP\t%s\n' "$why"
		return
	fi
	if [ "$rc" -eq 0 ] && ! grep -q '^not ok' "$log"; then
		printf 'PASS\t\n'
		return
	fi
	if grep -q 'Test Assertion Failure' "$log"; then
		# "  file:line: condition", "  pid=... errno=N - text", the
		# numbered backtrace, then the message.
		where=$(grep -m1 -A1 'Test Assertion Failure' "$log" | tail -n 1 | md)
		errno=$(grep -m1 -o 'errno=[0-9]* - .*' "$log" | md)
		msg=$(sed -n '/Test Assertion Failure/,$p' "$log" | sed '1,3d' |
			grep -v '^ *[0-9][0-9]*	0x\|^ *[0-9][0-9]*	\|(inlined by)' |
			grep -v '^$' | head -n 2 | md)
		printf 'FAIL\t%s (%s): %s\n' "$where" "$errno" "$msg"
		return
	fi
	if grep -q '^not ok' "$log"; then
		printf 'FAIL\texit %s: %s\n' "$rc" "$(grep '^not ok' "$log" | head -n 3 | md)"
		return
	fi
	printf 'FAIL\texit %s: %s\n' "$rc" "$(grep -v '^$' "$log" | tail -n 2 | md)"
}

# run_one COLUMN TEST: runs TEST once more with the retry timeout if needed.
run_one() {
	column=$1 t=$2
	res=$results/$column/$t
	mkdir -p "$(dirname "$res")"
	if [ "$column" = privmem ]; then
		set -- "$privmem" exec --kvm-version 6.12 -- "$out/$t"
	else
		if ! (exec 3<>/dev/kvm) 2>/dev/null; then
			printf 'n/a\tno /dev/kvm\n' >"$res.res"
			return
		fi
		set -- "$out/$t"
	fi
	# shellcheck disable=SC2046
	set -- "$@" $(test_args "$t")
	note=""
	for limit in "$timeout" "$retry_timeout"; do
		start=$(date +%s)
		set +e
		(cd "$kvm" && timeout "$limit" "$@" </dev/null) >"$res.log" 2>&1
		rc=$?
		set -e
		secs=$(( $(date +%s) - start ))
		[ "$rc" -eq 124 ] && [ "$limit" = "$timeout" ] || break
		note=" (timed out at $timeout s, retried with $retry_timeout s)"
	done
	classify "$res.log" "$rc" "$secs" | sed "s|\$|$note|" >"$res.res"
	printf '%s\t%s\t%s s\n' "$column" "$t" "$secs" >&2
}

for column in $run_columns; do
	for t in $tests; do
		run_one "$column" "$t"
	done
done

verdict() { cut -f1 "$results/$1/$2.res" 2>/dev/null || echo "-"; }
detail() { cut -f2- "$results/$1/$2.res" 2>/dev/null || true; }

echo "| test | privmem | host KVM | privmem's detail | host's detail |"
echo "|---|---|---|---|---|"
for t in $tests; do
	echo "| $t | $(verdict privmem "$t") | $(verdict host "$t") | $(detail privmem "$t") | $(detail host "$t") |"
done
echo
for column in privmem host; do
	printf '%s:' "$column"
	for v in PASS SKIP FAIL CRASH TIMEOUT; do
		n=0
		for t in $tests; do [ "$(verdict $column "$t")" = $v ] && n=$((n + 1)); done
		printf ' %s %s' "$n" "$v"
	done
	echo
done
