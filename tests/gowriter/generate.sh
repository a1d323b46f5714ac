#!/usr/bin/env bash
# Regenerate (or check) tests/gowriter/commentpb/comment.pb.go from
# src/cdc_verify/schemas/comment.proto.
#
#   tests/gowriter/generate.sh           # rewrite commentpb/comment.pb.go
#   tests/gowriter/generate.sh --check   # exit 1 if the committed file is stale
#
# Needs protoc and protoc-gen-go; installs whichever is missing:
#   - protoc: Debian's protobuf-compiler package (apt-get), only when running as root;
#   - protoc-gen-go: `go install google.golang.org/protobuf/cmd/protoc-gen-go@<v>` into
#     $(go env GOPATH)/bin, <v> being the google.golang.org/protobuf version in go.mod
#     (an installed protoc-gen-go of another version is replaced).
#
# The header line naming the protoc version ("// \tprotoc        vX.Y.Z") is the only
# part of the output that depends on the protoc release, not on the .proto file or
# protoc-gen-go; --check ignores that one line so that CI with another distribution's
# protoc does not fail on it. Everything else must be identical.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
proto_root="$repo/src"
proto_file="cdc_verify/schemas/comment.proto"
target="$here/commentpb/comment.pb.go"
module="github.com/cdc-verify/cdc-verify/tests/gowriter"

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
  *) echo "generate.sh: unknown argument '$1' (use --check or nothing)" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "generate.sh: go is not on PATH" >&2; exit 2; }

# --- protoc -------------------------------------------------------------------
if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "generate.sh: installing protoc (apt-get install protobuf-compiler)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q protobuf-compiler >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q protobuf-compiler >/dev/null; }
  else
    echo "generate.sh: protoc is missing; install Debian's protobuf-compiler package" \
         "(apt-get install protobuf-compiler, as root) or put protoc on PATH" >&2
    exit 2
  fi
fi

# --- protoc-gen-go, pinned to go.mod's protobuf version ------------------------
pb_version="$(cd "$here" && go list -m -f '{{.Version}}' google.golang.org/protobuf)"
gobin="$(go env GOPATH)/bin"
plugin="$gobin/protoc-gen-go"
installed=""
if [ -x "$plugin" ]; then
  installed="$("$plugin" --version 2>/dev/null | awk '{print $2}')"
fi
if [ "$installed" != "$pb_version" ]; then
  echo "generate.sh: installing protoc-gen-go $pb_version into $gobin" \
       "(found: ${installed:-none})" >&2
  GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$pb_version"
fi

# --- generate -------------------------------------------------------------------
generate() {  # $1: output root; writes $1/commentpb/comment.pb.go
  protoc --plugin=protoc-gen-go="$plugin" \
    -I "$proto_root" \
    --go_out="$1" --go_opt=module="$module" \
    "$proto_root/$proto_file"
}

if [ "$check" = 0 ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  mkdir -p "$(dirname "$target")"
  cp "$tmp/commentpb/comment.pb.go" "$target"
  echo "generate.sh: wrote ${target#"$repo"/} (protoc-gen-go $pb_version, $(protoc --version))"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
generate "$tmp"
fresh="$tmp/commentpb/comment.pb.go"
if [ ! -f "$target" ]; then
  echo "generate.sh --check: ${target#"$repo"/} is missing; run tests/gowriter/generate.sh" >&2
  exit 1
fi
strip_protoc_version() { grep -v -E '^//[[:space:]]+protoc[[:space:]]+(v|\(unknown\))' "$1"; }
if ! diff -u <(strip_protoc_version "$target") <(strip_protoc_version "$fresh") \
     --label "committed ${target#"$repo"/}" --label "regenerated from $proto_file" >&2; then
  echo "generate.sh --check: ${target#"$repo"/} is stale against $proto_file;" \
       "run tests/gowriter/generate.sh and commit the result" >&2
  exit 1
fi
echo "generate.sh --check: ${target#"$repo"/} is up to date"
