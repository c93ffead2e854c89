#!/bin/sh
# bench/fs_floor.sh [ROUNDS]: what reading a whole 100 MB file can cost,
# measured interleaved in one run so the machine's noise hits every
# contender alike: cat, C reading into fresh or reused memory
# (bench/fs_floor/readfloor.c says what each mode does), Go's os.ReadFile
# and weft.fs.read_file; and lua_pushlstring alone, the copy into the
# string that read_file cannot avoid (bench/fs_floor/pushstr.c). Each
# figure is MB/s, the median over ROUNDS (default 5) of each contender's
# own median of five reads (cat: five `cat FILE > /dev/null` back to back,
# their exec included), with its ratio to cat. WEFT=path/to/weft picks the build (default build-fs/weft);
# WEFT_BASE=path/to/other/weft adds a row for another build, run in the
# same rounds (a before-and-after comparison).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-5}
weft=${WEFT:-build-fs/weft}
base_weft=${WEFT_BASE:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/readfloor" bench/fs_floor/readfloor.c
# shellcheck disable=SC2046
cc -O2 $(pkg-config --cflags luajit) -o "$tmp/pushstr" \
  bench/fs_floor/pushstr.c $(pkg-config --libs luajit)
have_go=0
if command -v go >/dev/null 2>&1; then
  cp bench/fs_floor/readfile.go "$tmp/readfile.go"
  (cd "$tmp" && GOCACHE="$tmp/gocache" go build -o readfile_go readfile.go) &&
    have_go=1
fi
file=$tmp/file
head -c 100000000 /dev/urandom > "$file"
cat "$file" > /dev/null # in the page cache for everyone

now() { date +%s.%N; }
cat5() {
  t0=$(now)
  for _ in 1 2 3 4 5; do cat "$file" > /dev/null; done
  t1=$(now)
  echo "$t0 $t1" | awk '{ printf "%.0f\n", 5 * 100000000 / ($2 - $1) / 1e6 }'
}

modes="cat fresh reused fresh2 reused2 huge huge2"
r=1
while [ "$r" -le "$rounds" ]; do
  cat5 >> "$tmp/cat"
  for m in $modes; do "$tmp/readfloor" "$m" "$file" >> "$tmp/c-$m"; done
  for m in luajit huge; do "$tmp/pushstr" "$m" "$file" >> "$tmp/push-$m"; done
  [ "$have_go" = 1 ] && "$tmp/readfile_go" "$file" >> "$tmp/go"
  "$weft" bench/weft_bench.lua readfile "$file" |
    awk '{ printf "%.0f\n", $2 }' >> "$tmp/weft"
  if [ -n "$base_weft" ]; then
    "$base_weft" bench/weft_bench.lua readfile "$file" |
      awk '{ printf "%.0f\n", $2 }' >> "$tmp/weft-base"
  fi
  r=$((r + 1))
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(median "$tmp/cat")
row() {
  m=$(median "$tmp/$1")
  printf "%-40s %6s MB/s  %5.2fx cat\n" "$2" "$m" "$(echo "$m $base" |
    awk '{ print $1 / $2 }')"
}
echo "100 MB file in the page cache, median of $rounds interleaved rounds"
row cat "cat file > /dev/null (exec included)"
row c-cat "C: 128 KiB reads, one reused buffer"
row c-reused "C: whole file into a reused buffer"
row c-fresh "C: into fresh malloc'd memory"
row c-huge "C: into fresh memory, huge pages"
row c-fresh2 "C: fresh, then copied to fresh"
row c-reused2 "C: reused, then copied to fresh"
row c-huge2 "C: huge pages, then copied to fresh"
row push-luajit "lua_pushlstring, LuaJIT's allocator"
row push-huge "lua_pushlstring, huge-page allocator"
[ "$have_go" = 1 ] && row go "Go 1.19 os.ReadFile"
row weft "weft.fs.read_file ($weft)"
[ -n "$base_weft" ] && row weft-base "weft.fs.read_file ($base_weft)"
exit 0
