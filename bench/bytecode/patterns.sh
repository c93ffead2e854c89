#!/bin/sh
# bench/bytecode/patterns.sh [RUNS]: bench/bytecode/patterns.lua in a stock
# luajit from source, from `luajit -bg` bytecode (what the build embedded
# before scripts/bcsave.lua) and from scripts/bcsave.lua's bytecode, RUNS
# times each (default 3) interleaved; medians of ns per table.
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
luajit -bg bench/bytecode/patterns.lua "$tmp/plain.bc"
luajit scripts/bcsave.lua -g bench/bytecode/patterns.lua "$tmp/keep.bc"
i=1
while [ "$i" -le "$runs" ]; do
  luajit bench/bytecode/patterns.lua >>"$tmp/source"
  luajit "$tmp/plain.bc" >>"$tmp/plain"
  luajit "$tmp/keep.bc" >>"$tmp/keep"
  i=$((i + 1))
done
awk -F '\t' '
  function med(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  FNR == 1 { f++ }
  { if (!seen[$1]++) order[++n] = $1; v[f, $1] = v[f, $1] " " $2 }
  END {
    printf "%-16s %9s %12s %12s\n", "ns per table", "source", "luajit -bg",
      "bcsave.lua"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "%-16s %9.1f %12.1f %12.1f\n", k, med(v[1, k]), med(v[2, k]),
        med(v[3, k])
    }
  }' "$tmp/source" "$tmp/plain" "$tmp/keep"
