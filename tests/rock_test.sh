#!/bin/sh
# weft-dev-1.rockspec lints, and `luarocks make` builds and installs the
# module from a copy of the checkout into a scratch tree, with no server
# (nothing is downloaded), where a stock luajit loads it and runs a task.
# Usage: rock_test.sh SOURCE_DIR
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
luarocks lint weft-dev-1.rockspec
# A copy: the cmake backend builds in ./build.luarocks of the source.
mkdir "$tmp/src"
tar -C "$src" --exclude=./.git --exclude='./build*' -cf - . |
  tar -C "$tmp/src" -xf -
cd "$tmp/src"
luarocks make --tree "$tmp/tree" --only-server="file://$tmp/none" \
  --deps-mode=none weft-dev-1.rockspec >"$tmp/make.log" 2>&1 ||
  { cat "$tmp/make.log" >&2; exit 1; }
out=$(luajit -e "package.cpath = '$tmp/tree/lib/lua/5.1/?.so'
  local weft = require 'weft'
  local ch = weft.chan(1)
  weft.start(function() ch:send('from the rock') end)
  while weft.step(1) > 0 do end
  print(select(2, ch:try_recv()))")
[ "$out" = "from the rock" ] || { echo "rock_test: got '$out'" >&2; exit 1; }
echo "rock_test: ok"
