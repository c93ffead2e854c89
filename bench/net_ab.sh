#!/bin/sh
# bench/net_ab.sh: weft's TCP echo and bulk figures against Go's (bench/go,
# GOMAXPROCS=1), measured interleaved in this one run: each round runs every
# program once per workload, in turn, so that the machine's noise falls on
# all of them alike. Prints each program's median of RUNS rounds and its
# ratio to Go's median.
#
# Usage: bench/net_ab.sh [RUNS [WORKLOAD...]]   (default: 5 echo bulk)
#   WEFT=path     the weft binary (default build-net/weft)
#   WEFT_B=path   a second weft binary measured beside it (a baseline build;
#                 one older than conn:read_into has no bulk_into figure)
#   GOBENCH=path  a built bench/go binary (default: build it here)
# Workloads: echo, bulk (conn:read, bench/weft_bench.lua) and bulk_into
# (conn:read_into, bench/net_ab.lua); Go runs its bulk for bulk_into.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
[ $# -gt 0 ] && shift
workloads=${*:-echo bulk}
weft=${WEFT:-build-net/weft}
weft_b=${WEFT_B:-}
[ -x "$weft" ] || { echo "net_ab: build first ($weft not found)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gobin=${GOBENCH:-}
if [ -z "$gobin" ]; then
  gobin=$tmp/gobench
  (cd bench/go && go build -o "$gobin" .)
fi

# one WORKLOAD BINARY: the figure (field 2) of one run.
one() {
  case $1 in
    bulk_into) "$2" bench/net_ab.lua bulk_into ;;
    *) "$2" bench/weft_bench.lua "$1" ;;
  esac | awk '{print $2}'
}
gone() {
  wl=$1
  [ "$wl" = bulk_into ] && wl=bulk
  GOMAXPROCS=1 "$gobin" "$wl" | awk '{print $2}'
}

i=0
while [ "$i" -lt "$runs" ]; do
  for wl in $workloads; do
    one "$wl" "$weft" >>"$tmp/$wl.a"
    [ -n "$weft_b" ] && one "$wl" "$weft_b" >>"$tmp/$wl.b" 2>/dev/null
    gone "$wl" >>"$tmp/$wl.go"
  done
  i=$((i + 1))
done

med() { sort -g "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-10s %-8s %12s %7s   %s\n' workload program median "x Go" runs
for wl in $workloads; do
  g=$(med "$tmp/$wl.go")
  for p in a b go; do
    [ -s "$tmp/$wl.$p" ] || continue
    name=$p
    [ "$p" = a ] && name=weft
    [ "$p" = b ] && name=weft_b
    m=$(med "$tmp/$wl.$p")
    printf '%-10s %-8s %12.0f %7.3f   %s\n' "$wl" "$name" "$m" \
      "$(echo "$m $g" | awk '{print $1 / $2}')" \
      "$(sort -g "$tmp/$wl.$p" | awk '{printf "%.0f ", $1}')"
  done
done
