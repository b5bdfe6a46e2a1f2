#!/bin/sh
# Coverage of each fuzz target's corpus per component: runs the replay
# binary built with -fprofile-instr-generate -fcoverage-mapping (make
# fuzz-cov) over tests/fuzz/corpus/NAME and build/fuzz/corpus/NAME, merges
# the profiles and prints llvm-cov's region, branch and line coverage
# summed over the files of each source folder.
#   scripts/fuzz_cov.sh BUILD NAME...
set -eu
build=$1
shift
for t in "$@"; do
	bin=$build/tests/fuzz_replay_$t
	rm -rf "$build/prof"
	mkdir -p "$build/prof"
	set -- tests/fuzz/corpus/$t
	[ -d build/fuzz/corpus/$t ] && set -- "$@" build/fuzz/corpus/$t
	LLVM_PROFILE_FILE="$build/prof/%p.profraw" "$bin" "$@" > "$build/cov-$t-replay.log"
	llvm-profdata-14 merge -sparse -o "$build/$t.profdata" "$build"/prof/*.profraw
	llvm-cov-14 report "$bin" -instr-profile="$build/$t.profdata" src > "$build/cov-$t.txt"
	echo "coverage of the $t corpus ($(grep -c '^replay:' "$build/cov-$t-replay.log") inputs):"
	# Columns of llvm-cov 14's report: file, regions, missed, cover,
	# functions, missed, executed, lines, missed, cover, branches, missed, cover.
	awk '
		$1 ~ /\.[ch]$/ && NF >= 13 {
			f = $1; sub(/^.*src\//, "", f); n = split(f, p, "/");
			c = (p[1] == "models" && n > 2) ? p[1] "/" p[2] : p[1];
			if (c ~ /\.[ch]$/) next;
			r[c] += $2; rm[c] += $3; l[c] += $8; lm[c] += $9; b[c] += $11; bm[c] += $12; seen[c] = 1;
		}
		END {
			printf "%-14s %16s %16s %16s\n", "component", "regions", "branches", "lines";
			for (c in seen) {
				printf "%-14s %7d/%-6d%3.0f%% %7d/%-6d%3.0f%% %7d/%-6d%3.0f%%\n", c,
					r[c] - rm[c], r[c], r[c] ? 100 * (r[c] - rm[c]) / r[c] : 0,
					b[c] - bm[c], b[c], b[c] ? 100 * (b[c] - bm[c]) / b[c] : 0,
					l[c] - lm[c], l[c], l[c] ? 100 * (l[c] - lm[c]) / l[c] : 0;
				R += r[c]; RM += rm[c]; B += b[c]; BM += bm[c]; L += l[c]; LM += lm[c];
			}
			printf "%-14s %7d/%-6d%3.0f%% %7d/%-6d%3.0f%% %7d/%-6d%3.0f%%\n", "total",
				R - RM, R, 100 * (R - RM) / R, B - BM, B, 100 * (B - BM) / B, L - LM, L, 100 * (L - LM) / L;
		}' "$build/cov-$t.txt" | sort
done
