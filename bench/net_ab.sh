#!/bin/sh
# bench/net_ab.sh: weft's TCP echo and bulk figures against Go's (bench/go,
# GOMAXPROCS=1), measured interleaved in this one run: each round runs every
# program once per workload, in turn, so that the machine's noise falls on
# all of them alike. Prints each program's median of RUNS rounds and its
# ratio to Go's median, for the figure (requests/s, MB/s) and for the CPU
# time the process used (user + sys, from perf stat), which other load on
# the machine disturbs less than the wall clock the figure comes from.
#
# Usage: bench/net_ab.sh [RUNS [WORKLOAD...]]   (default: 5 echo bulk)
#   WEFT=path     the weft binary (default build-net/weft)
#   WEFT_B=path   a second weft binary measured beside it (a baseline build;
#                 one older than conn:read_into has no bulk_into figure)
#   GOBENCH=path  a built bench/go binary (default: build it here)
# Workloads (bench/weft_bench.lua): echo, bulk (conn:read) and bulk_into
# (conn:read_into); Go runs its bulk for bulk_into.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
[ $# -gt 0 ] && shift
workloads=${*:-echo bulk}
weft=${WEFT:-build-net/weft}
weft_b=${WEFT_B:-}
[ -x "$weft" ] || { echo "net_ab: build first ($weft not found)" >&2; exit 1; }
command -v perf >/dev/null || { echo "net_ab: needs perf" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gobin=${GOBENCH:-}
if [ -z "$gobin" ]; then
  gobin=$tmp/gobench
  (cd bench/go && go build -o "$gobin" .)
fi

# measure CMD...: "figure cpu_seconds" of one run (nothing if it failed).
measure() {
  perf stat -o "$tmp/stat" "$@" >"$tmp/out" 2>/dev/null || return 0
  fig=$(awk '{print $2; exit}' "$tmp/out")
  cpu=$(awk '/seconds user/ {u = $1} /seconds sys/ {s = $1}
    END {print u + s}' "$tmp/stat")
  [ -n "$fig" ] && echo "$fig $cpu"
}
one() { measure "$2" bench/weft_bench.lua "$1"; }
gone() {
  wl=$1
  [ "$wl" = bulk_into ] && wl=bulk
  GOMAXPROCS=1 measure "$gobin" "$wl"
}

i=0
while [ "$i" -lt "$runs" ]; do
  for wl in $workloads; do
    one "$wl" "$weft" >>"$tmp/$wl.a"
    [ -z "$weft_b" ] || one "$wl" "$weft_b" >>"$tmp/$wl.b"
    gone "$wl" >>"$tmp/$wl.go"
  done
  i=$((i + 1))
done

# med FILE FIELD: the median of that field.
med() {
  awk -v f="$2" '{print $f}' "$1" | sort -g |
    awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
printf '%-10s %-7s %10s %6s %8s %6s   %s\n' workload program figure "x Go" \
  "cpu s" "Go/cpu" "figures"
for wl in $workloads; do
  gf=$(med "$tmp/$wl.go" 1)
  gc=$(med "$tmp/$wl.go" 2)
  for p in a b go; do
    [ -s "$tmp/$wl.$p" ] || continue
    name=$p
    [ "$p" = a ] && name=weft
    [ "$p" = b ] && name=weft_b
    f=$(med "$tmp/$wl.$p" 1)
    c=$(med "$tmp/$wl.$p" 2)
    printf '%-10s %-7s %10.0f %6.3f %8.3f %6.3f   %s\n' "$wl" "$name" "$f" \
      "$(echo "$f $gf" | awk '{print $1 / $2}')" "$c" \
      "$(echo "$gc $c" | awk '{print $1 / $2}')" \
      "$(awk '{print $1}' "$tmp/$wl.$p" | sort -g | awk '{printf "%.0f ", $1}')"
  done
done
