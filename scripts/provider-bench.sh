#!/usr/bin/env bash
# provider-bench.sh: zkactor's protoactor-go cluster provider next to protoactor-go's own ZooKeeper
# provider, in one run (make provider-bench). Starts its own ZooKeeper (standalone, fsync on) on a
# free port in a temporary directory, runs cmd/providerbench against it with the arguments given
# (see `go doc ./cmd/providerbench`), prints its table and stops everything it started.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zkactor-pbench.XXXXXX")"
ZK_STARTED=0
cleanup() {
	if ((ZK_STARTED)); then
		"$REPO_ROOT/scripts/zookeeper.sh" stop --dir "$WORK/zookeeper" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

"$REPO_ROOT/scripts/zookeeper.sh" install
ZK_STARTED=1
connect=$("$REPO_ROOT/scripts/zookeeper.sh" start --dir "$WORK/zookeeper" --port "$("$REPO_ROOT/scripts/zookeeper.sh" free-port)")
echo "ZooKeeper on $connect" >&2
(cd "$REPO_ROOT" && go build -o "$WORK/providerbench" ./cmd/providerbench)
"$WORK/providerbench" -zk "$connect" "$@"
