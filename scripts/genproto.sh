#!/usr/bin/env bash
# Regenerates all Go code from the protobuf schema under proto/.
#
# buf and protoc-gen-go come from the Go module proxy at pinned versions and
# are built into .tools/bin (git-ignored); once built (or once their modules
# are in the Go module cache) this runs offline. No remote buf plugins are
# used. Run from anywhere: `make proto` or scripts/genproto.sh.
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12 # keep equal to google.golang.org/protobuf in go.mod

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bin=$root/.tools/bin
mkdir -p "$bin"

# ensure_tool <binary> <package> <version>: go install unless the binary exists at that version.
ensure_tool() {
  local name=$1 pkg=$2 version=$3
  if [[ -x $bin/$name ]] && "$bin/$name" --version 2>/dev/null | grep -qF -- "${version#v}"; then
    return
  fi
  echo "genproto: building $name $version into .tools/bin" >&2
  # Offline first: serve the module from the local module cache (a plain
  # GOPROXY=off fails in `go install pkg@version`, which looks up deprecations);
  # fall back to the configured GOPROXY (the Go module proxy) to fetch it.
  GOBIN=$bin GOFLAGS= GOPROXY="file://$(go env GOMODCACHE)/cache/download" \
    go install "$pkg@$version" 2>/dev/null ||
    GOBIN=$bin GOFLAGS= go install "$pkg@$version"
}

ensure_tool buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
ensure_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"

export PATH=$bin:$PATH

buf lint
buf generate
echo "genproto: generated Go code under proto/" >&2
