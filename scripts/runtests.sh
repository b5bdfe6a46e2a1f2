#!/bin/sh
# Runs each test program given on the command line; prints one line per program
# and a closing "N passed, N failed" line counting test cases (cmocka's own counts).
set -u
passed=0
failed=0
bad=""
for t in "$@"; do
	log="$t.log"
	if "$t" >"$log" 2>&1; then status=ok; else status=FAIL; bad="$bad $t"; fi
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ "$status" = FAIL ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-5s %-40s %s passed, %s failed\n' "$status" "$(basename "$t")" "$p" "$f"
done
for t in $bad; do
	echo "---- $t.log (tail) ----"
	tail -n 40 "$t.log"
done
echo "$passed passed, $failed failed"
[ -z "$bad" ]
