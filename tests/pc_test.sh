#!/bin/sh
# weft.pc works from the build tree and from an install into any prefix:
# build tests/pc_hello.c with nothing but pkg-config, run it, check it.
# Usage: pc_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # $1: where libweft.so is (the dynamic linker does not know)
  out=$(LD_LIBRARY_PATH=$1 "$tmp/hello")
  [ "$out" = "hello" ] || { echo "pc_test: got '$out'" >&2; exit 1; }
}
PKG_CONFIG_PATH=$build cc -o "$tmp/hello" "$src/tests/pc_hello.c" \
  $(PKG_CONFIG_PATH=$build pkg-config --cflags --libs --static weft)
check "$build"
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name weft.pc)")
cc -o "$tmp/hello" "$src/tests/pc_hello.c" \
  $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs --static weft)
check "$pc/.."
# The module lands where a stock luajit finds it under that prefix.
find "$tmp/prefix" -path '*lua/5.1/weft.so' | grep -q . ||
  { echo "pc_test: no lua/5.1/weft.so installed" >&2; exit 1; }
echo "pc_test: ok"
