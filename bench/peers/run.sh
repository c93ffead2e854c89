#!/bin/sh
# bench/peers/run.sh [RUNS]: `bench/run --peers [RUNS]`. weft side by side
# with the peers a user would pick instead (Go, Tarantool fibers, luv,
# cqueues, copas) and the floor (bench/floor.lua), the same workloads
# written for each (bench/peers/*.lua, bench/go). Every figure is run RUNS
# times (default 3) interleaved: run 1 of every system, then run 2 of every
# system, ..., so that the machine's noise hits all alike; the table shows
# medians and weft's ratio to each, and replaces the peers table in
# bench/README.md (between <!-- peers:begin --> and <!-- peers:end -->).
# BENCH_ONLY="pingpong select ..." measures only those rows (the keys
# below), for a quick look; the others show "-", and bench/README.md is
# left alone.
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-3}
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/stderr
: >"$log"
note() { echo "bench/run --peers: $*" >&2; }

# apt_install PKG...: install, and once more after an apt-get update (a
# fresh machine's package lists may be missing or old).
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >"$tmp/apt" 2>&1 ||
    { apt-get update >>"$tmp/apt" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$tmp/apt" 2>&1; }
}

# The peers, from Debian's packages, installed here when run as root.
install_peers() {
  pkgs="golang-go golang-golang-x-sync-dev golang-golang-x-time-dev tarantool lua-luv lua-cqueues lua-copas lua-socket"
  missing=""
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
      missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  # shellcheck disable=SC2086 # one word per package
  if [ "$(id -u)" != 0 ]; then
    note "not root: not installing$missing (their columns show -)"
  elif ! apt_install $missing; then
    note "apt-get install$missing failed (their columns show -):"
    tail -n 3 "$tmp/apt" >&2
  fi
}
install_peers

# weft: WEFT=path, or a Release build in build-bench, brought up to date.
if [ -n "${WEFT:-}" ]; then
  weft=$WEFT
else
  weft=build-bench/weft
  { cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release &&
    cmake --build build-bench -j"$(nproc)"; } >"$tmp/build" 2>&1 ||
    { cat "$tmp/build" >&2; exit 1; }
fi
[ -x "$weft" ] || { note "$weft not found"; exit 1; }

# Go: with golang.org/x/{sync,time} from /usr/share/gocode when they are
# there (GOPATH mode, offline), else without errgroup and rate (-tags nox).
gobin=""
if command -v go >/dev/null 2>&1; then
  gobin=$tmp/gobench
  if ! (cd bench/go && GO111MODULE=off GOPATH=/usr/share/gocode \
    GOCACHE="$tmp/gocache" go build -o "$gobin" .) 2>>"$log"; then
    note "no golang.org/x/sync and x/time: Go's errgroup and rate rows show -"
    (cd bench/go && GOCACHE="$tmp/gocache" go build -tags nox -o "$gobin" .) ||
      gobin=""
  fi
fi

# has SYS: is the system's runtime here?
has() {
  case $1 in
    weft | floor) command -v luajit >/dev/null 2>&1 || [ "$1" = weft ] ;;
    go) [ -n "$gobin" ] ;;
    tarantool) command -v tarantool >/dev/null 2>&1 ;;
    luv | cqueues | copas)
      command -v luajit >/dev/null 2>&1 && luajit -e "require('$1')" 2>/dev/null ;;
  esac
}
systems="weft floor go tarantool luv cqueues copas"
present=""
for s in $systems; do
  if has "$s"; then present="$present $s"; else note "$s not installed: its column shows -"; fi
done

# GOMAXPROCS per workload, as the issue's targets have it.
procs() {
  case $1 in spawn | sleepers | errgroup | cpu16) echo 2 ;; *) echo 1 ;; esac
}

# run_one SYS WORKLOAD [ARG]: one process; its output line, "-" when the
# system lacks the workload, "fail" when it ran and failed.
run_one() {
  sys=$1 wl=$2
  shift
  case $sys in
    weft) set -- "$weft" bench/weft_bench.lua "$@" ;;
    floor)
      case $1 in pingpong | spawn | sleepers | buffered | errgroup) ;;
        *) echo "$1 -"; return ;; esac
      set -- luajit bench/floor.lua "$@" ;;
    go) set -- env GOMAXPROCS="$(procs "$1")" "$gobin" "$@" ;;
    tarantool) set -- tarantool bench/peers/tarantool.lua "$@" ;;
    *) set -- luajit "bench/peers/$sys.lua" "$@" ;;
  esac
  out=$("$@" 2>>"$log") || { note "$sys $wl: failed"; out=""; }
  if [ -n "$out" ]; then echo "$out"; else echo "$wl fail"; fi
}

# startup SYS: ms to start the runtime with nothing to do and exit, the
# mean of 100 execs. The Lua peers load their module and run its loop.
startup() {
  case $1 in
    weft) set -- "$weft" -e '' ;;
    floor) set -- luajit -e '' ;;
    go) set -- "$gobin" startup ;;
    tarantool) set -- tarantool -e '' ;;
    luv) set -- luajit -e 'require("luv").run()' ;;
    cqueues) set -- luajit -e 'assert(require("cqueues").new():loop())' ;;
    copas) set -- luajit -e 'require("copas")' ;;
  esac
  n=100
  t0=$(date +%s%N)
  i=0
  while [ "$i" -lt "$n" ]; do "$@" >/dev/null 2>>"$log"; i=$((i + 1)); done
  t1=$(date +%s%N)
  echo "$t0 $t1 $n" | awk '{printf "startup %.2f\n", ($2 - $1) / $3 / 1e6}'
}

# measure KEY WORKLOAD [ARG]: $runs runs of every present system,
# interleaved, into $tmp/KEY.SYS (one output line per run).
measure() {
  key=$1
  shift
  case " ${BENCH_ONLY:-$key} " in *" $key "*) ;; *) return ;; esac
  r=0
  while [ "$r" -lt "$runs" ]; do
    for s in $present; do
      if [ "$1" = startup ]; then startup "$s"; else run_one "$s" "$@"; fi \
        >>"$tmp/$key.$s"
    done
    r=$((r + 1))
  done
}

# med KEY SYS FIELD: the median of FIELD over the runs; "-" when the system
# lacks it, "fail" when any run failed.
med() {
  [ -f "$tmp/$1.$2" ] || { echo "-"; return; }
  awk -v f="$3" '
    $2 == "fail" { fail = 1 }
    $f ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ { v[++n] = $f + 0 }
    END {
      if (fail) { print "fail"; exit }
      if (n == 0) { print "-"; exit }
      for (i = 2; i <= n; i++) { x = v[i]; j = i - 1
        while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
      m = v[int((n + 1) / 2)]
      if (m < 10) printf "%.2f\n", m; else printf "%.0f\n", m }' "$tmp/$1.$2"
}

# row LABEL UNIT KEY FIELD BETTER TARGET: one table line. BETTER is "low" or
# "high". Each peer's cell is its median and weft's ratio to it (weft /
# peer); "weft behind" names the peers weft loses to. TARGET names a check
# (met_*, below) and its text.
table=$tmp/table
row() {
  label=$1 unit=$2 key=$3 field=$4 better=$5 target=$6
  wv=$(med "$key" weft "$field")
  line="| $label | $unit | $wv"
  behind=""
  for s in floor go tarantool luv cqueues copas; do
    pv=$(med "$key" "$s" "$field")
    cell=$pv
    if is_num "$wv" && is_num "$pv" && [ "$pv" != 0 ]; then
      ratio=$(echo "$wv $pv" | awk '{printf "%.2f", $1 / $2}')
      cell="$pv (${ratio}x)"
      if [ "$s" != floor ] && loses "$better" "$wv" "$pv"; then
        behind="$behind, $(label_of "$s")"
      fi
    fi
    line="$line | $cell"
  done
  behind=${behind#, }
  is_num "$wv" || behind="-"
  echo "$line | ${behind:-none} | $target | $(met "$key" "$field" "$better" "$target") |" >>"$table"
}
is_num() { case $1 in '' | - | fail | *[!0-9.eE+-]*) return 1 ;; esac; }
loses() { echo "$2 $3" | awk -v b="$1" '{ exit !(b == "low" ? $1 > $2 : $1 < $2) }'; }
label_of() {
  case $1 in go) echo Go ;; tarantool) echo Tarantool ;; *) echo "$1" ;; esac
}

# met KEY FIELD BETTER TARGET: "yes", "**no**" or "report" for the issue's
# targets; "ahead of every peer" for the rest.
met() {
  key=$1 field=$2 better=$3
  wv=$(med "$key" weft "$field")
  is_num "$wv" || { echo "-"; return; }
  fl=$(med "$key" floor "$field")
  gv=$(med "$key" go "$field")
  ok=yes
  case $4 in
    "<= 1.15x floor, < Go") cmp "$wv" "<=" "$fl" 1.15 && cmp "$wv" "<" "$gv" 1 || ok="**no**" ;;
    "< Go, < floor") cmp "$wv" "<" "$gv" 1 && cmp "$wv" "<" "$fl" 1 || ok="**no**" ;;
    "<= 2x floor, < Go") cmp "$wv" "<=" "$fl" 2 && cmp "$wv" "<" "$gv" 1 || ok="**no**" ;;
    "< Go") cmp "$wv" "<" "$gv" 1 || ok="**no**" ;;
    "<= floor") cmp "$wv" "<=" "$fl" 1 || ok="**no**" ;;
    report) ok=report ;;
    *) # ahead of every peer that has it
      for s in go tarantool luv cqueues copas; do
        pv=$(med "$key" "$s" "$field")
        if is_num "$pv" && loses "$better" "$wv" "$pv"; then ok="**no**"; fi
      done ;;
  esac
  echo "$ok"
}
# cmp A OP B K: A OP K*B, false when B is missing.
cmp() {
  is_num "$3" || return 1
  echo "$1 $3 $4" | awk -v op="$2" '{ x = $2 * $3
    exit !(op == "<" ? $1 < x : $1 <= x) }'
}

note "measuring, $runs interleaved runs per figure:$present"
measure pingpong pingpong
measure spawn spawn
measure sleepers100k sleepers 100000
measure sleepers sleepers
measure buffered buffered
measure select select
measure errgroup errgroup
measure rate_allow rate_allow
measure rate_wait rate_wait
measure cpu16 cpu16
measure echo echo
measure startup startup

: >"$table"
row "ping-pong, unbuffered, 1,000,000 round trips" "ns/round trip" pingpong 2 low "<= 1.15x floor, < Go"
row "spawn and join 100,000 tasks" "ns/task" spawn 2 low "< Go, < floor"
row "100,000 tasks sleeping 100 ms" "s wall" sleepers100k 2 low "ahead of every peer"
row "100,000 tasks sleeping 100 ms" "peak RSS B/task" sleepers100k 3 low "report"
row "1,000,000 tasks sleeping 100 ms" "s wall" sleepers 2 low "<= floor"
row "1,000,000 tasks sleeping 100 ms" "peak RSS B/task" sleepers 3 low "report"
row "buffered channel, cap 128, 2,000,000 items" "ns/item" buffered 2 low "<= 2x floor, < Go"
row "select over 4 channels, one ready" "ns/select" select 2 low "< Go"
row "errgroup of 100,000 tasks" "ns/task" errgroup 2 low "ahead of every peer"
row "rate limiter allow" "ns/call" rate_allow 2 low "ahead of every peer"
row "rate limiter wait at 1,000/s for 1 s, mean abs(interval - 1 ms)" "us" rate_wait 2 low "ahead of every peer"
row "16 CPU-bound jobs of ~50 ms, pool over serial" "speed-up" cpu16 2 high "ahead of every peer"
row "TCP echo, 100 connections x 1,000 round trips of 64 bytes" "requests/s" echo 2 high "ahead of every peer"
row "start-up, nothing to run" "ms" startup 2 low "ahead of every peer"

elapsed=$(($(date +%s) - start))
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
header="weft $("$weft" --version | cut -d' ' -f2) ($weft, tree $rev), $(nproc) cores, median of $runs interleaved runs, $(date -u '+%Y-%m-%d %H:%M') UTC, ${elapsed} s in all"
{
  echo "$header"
  echo
  echo "| workload | unit | weft | floor | Go 1.19 | Tarantool 2.6 | luv 1.44 | cqueues 20200726 | copas 1.1.7 | weft behind | target | met? |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$table"
} >"$tmp/out"
cat "$tmp/out"

# Replace the table between the markers in bench/README.md.
readme=bench/README.md
if [ -n "${BENCH_ONLY:-}" ]; then
  note "BENCH_ONLY: $readme left as it is"
elif grep -q '^<!-- peers:begin -->$' "$readme" && grep -q '^<!-- peers:end -->$' "$readme"; then
  awk -v out="$tmp/out" '
    /^<!-- peers:begin -->$/ { print; print ""; while ((getline l < out) > 0) print l; print ""; skip = 1; next }
    /^<!-- peers:end -->$/ { skip = 0 }
    !skip' "$readme" >"$tmp/readme" && cat "$tmp/readme" >"$readme"
  note "table written to $readme"
else
  note "no <!-- peers:begin --> / <!-- peers:end --> in $readme: not written"
fi
if grep -q ' fail$' "$tmp"/*.* 2>/dev/null; then
  note "some runs failed; their stderr (last 20 lines):"
  tail -n 20 "$log" >&2
fi
