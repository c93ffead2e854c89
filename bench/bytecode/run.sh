#!/bin/sh
# bench/bytecode/run.sh [RUNS] [NAME...]: bench/bytecode/micro.lua with weft's
# Lua modules loaded from the embedded bytecode and from source
# (WEFT_LUA_DIR=lua), RUNS times each (default 3) interleaved; the table
# shows the medians (ns and bytes allocated per operation) and the ratio
# bytecode / source. With no NAME, every benchmark of micro.lua. WEFT=path picks the binary (default build-rt/weft);
# BASE=path adds the embedded bytecode of another binary (say, one built
# before a change) as a third column.
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-3}
[ $# -gt 0 ] && shift
weft=${WEFT:-build-rt/weft}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046 # one benchmark name a line
[ $# -gt 0 ] || set -- $("$weft" bench/bytecode/micro.lua --list)
# One process per benchmark and system, so that none inherits another's
# traces and heap.
i=1
while [ "$i" -le "$runs" ]; do
  for b in "$@"; do
    WEFT_LUA_DIR=lua "$weft" bench/bytecode/micro.lua "$b" >>"$tmp/source"
    "$weft" bench/bytecode/micro.lua "$b" >>"$tmp/bytecode"
    if [ -n "${BASE:-}" ]; then
      "$BASE" bench/bytecode/micro.lua "$b" >>"$tmp/base"
    fi
  done
  i=$((i + 1))
done
[ -n "${BASE:-}" ] || : >"$tmp/base"
awk '
  function med(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((n + 1) / 2)]
  }
  FNR == 1 { f++ }
  { if (!seen[$1]++) order[++n] = $1; ns[f, $1] = ns[f, $1] " " $2
    by[f, $1] = by[f, $1] " " $3 }
  END {
    base = (ns[3, order[1]] != "")
    printf "%-26s %11s %11s %7s", "benchmark", "source ns", "bytecode ns", "bc/src"
    if (base) printf " %11s", "base bc ns"
    printf " %9s %9s", "src B/op", "bc B/op"
    if (base) printf " %9s", "base B/op"
    printf "\n"
    for (i = 1; i <= n; i++) {
      k = order[i]; s = med(ns[1, k]); b = med(ns[2, k])
      printf "%-26s %11.1f %11.1f %6.2fx", k, s, b, (s > 0 ? b / s : 0)
      if (base) printf " %11.1f", med(ns[3, k])
      printf " %9d %9d", med(by[1, k]), med(by[2, k])
      if (base) printf " %9d", med(by[3, k])
      printf "\n"
    }
  }' "$tmp/source" "$tmp/bytecode" "$tmp/base"
