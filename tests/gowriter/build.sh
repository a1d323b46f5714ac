#!/usr/bin/env bash
# Build the Go CDC writer: tests/gowriter/build.sh [OUT]  (default: tests/gowriter/bin/gowriter)
# Needs only the Go toolchain: the generated protobuf code is committed (see generate.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/bin/gowriter}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"
cd "$here"
go build -o "$out" .
echo "built $out"
