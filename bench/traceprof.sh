#!/bin/sh
# bench/traceprof.sh SCRIPT [ARGS]: where a weft script's time goes, trace
# by trace. perf cannot name LuaJIT's traces (their machine code is made at
# run time), so this runs SCRIPT under `perf record` with jit.dump writing
# each trace's machine code and addresses, then counts the samples that
# fall in each trace. Prints the share of samples of the hottest traces,
# with where each starts (its first source line, or the trace and exit it
# grows from), then the hottest functions outside traces (LuaJIT's VM,
# the runtime, the kernel). WEFT=path/to/weft picks the build (default
# build-rel/weft). Needs perf and a luajit with jit.dump (/usr/share/
# luajit-2.1, Debian's luajit package). Example, the ping-pong of
# bench/README.md: bench/traceprof.sh bench/weft_bench.lua pingpong
set -eu
[ $# -ge 1 ] || { echo "usage: bench/traceprof.sh SCRIPT [ARGS]" >&2; exit 2; }
weft=${WEFT:-build-rel/weft}
[ -x "$weft" ] || { echo "bench/traceprof.sh: build first ($weft not found)" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench/traceprof.sh: perf is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
# The wrapper starts the dump, then runs the script with its arguments.
cat >"$tmp/wrap.lua" <<EOF
package.path = package.path .. ";/usr/share/luajit-2.1/?.lua"
require("jit.dump").start("tm", "$tmp/dump.txt")
assert(loadfile("$script"))(...)
EOF
perf record -q -o "$tmp/perf.data" "$weft" "$tmp/wrap.lua" "$@" 2>/dev/null
# Each trace's first and last instruction address, and where it starts.
awk '/^---- TRACE [0-9]+ start/ { sub(/^---- TRACE [0-9]+ start /, ""); at = $0 }
  /^---- TRACE [0-9]+ mcode/ { t = $3; first = ""; next }
  t != "" && /^[0-9a-f]+  / { if (first == "") first = $1; last = $1 }
  /^---- TRACE [0-9]+ stop/ { if (t != "") print t, first, last, at; t = "" }' \
  "$tmp/dump.txt" >"$tmp/traces.txt"
perf script -i "$tmp/perf.data" -F ip,sym 2>/dev/null >"$tmp/ips.txt"
# Addresses are compared as strings padded to one width (both tools print
# lowercase hex), which orders them as numbers: mawk, Debian's awk, has no
# strtonum.
awk 'function pad(h) { while (length(h) < 16) h = "0" h; return h }
  NR == FNR { n++; tr[n] = $1; lo[n] = pad($2); hi[n] = pad($3)
    $1 = $2 = $3 = ""; sub(/^ +/, ""); where[n] = $0; next }
  { total++; ip = pad($1); hit = 0
    for (i = 1; i <= n; i++) if (ip >= lo[i] && ip <= hi[i]) { hit = i; break }
    if (hit) in_trace[hit]++; else { s = $2 == "" ? "?" : $2; other[s]++ } }
  END {
    if (total == 0) { print "no samples"; exit 1 }
    for (i = 1; i <= n; i++) if (in_trace[i])
      printf "%5.1f%%  trace %s (%s)\n", 100 * in_trace[i] / total, tr[i],
        where[i] | "sort -rn | head -12"
    close("sort -rn | head -12")
    print "--"
    for (s in other)
      printf "%5.1f%%  %s\n", 100 * other[s] / total, s | "sort -rn | head -12"
  }' "$tmp/traces.txt" "$tmp/ips.txt"
