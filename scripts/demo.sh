#!/usr/bin/env bash
# demo.sh: the boss example, told as a story (make demo).
#
# Starts its own ZooKeeper on a free port in a temporary directory (installing Debian's package if
# needed; a ZooKeeper it did not start is never touched), builds cmd/boss, starts a boss and two
# workers, submits jobs, stops the boss with SIGTERM, watches a worker take over, submits more
# jobs, waits until every job is done and prints a summary. Everything it started is stopped on
# exit, success or not. Exit status 0 means every job was done.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly REPO_ROOT
readonly WAIT_SECONDS=20 # deadline for each thing the demo waits for

WORK="$(mktemp -d "${TMPDIR:-/tmp}/zkactor-demo.XXXXXX")"
readonly WORK
BIN="$WORK/boss"
ZK_DIR="$WORK/zookeeper"
ZK_STARTED=0
declare -A PID=() # node name -> pid
SUBMITTED=0
ACCEPTED=0

# shellcheck source=scripts/story.sh
source "$REPO_ROOT/scripts/story.sh"

# start_node NAME: a persistent node (see start_process).
start_node() { start_process "$1"; }

# submit WORDS...: a transient requestor.
submit() {
	SUBMITTED=$((SUBMITTED + 1))
	say "\$ boss $*"
	if "$BIN" "${FLAGS[@]}" "$@" 2>>"$WORK/requestor.err" | sed -u 's/^/  [requestor] /'; then
		ACCEPTED=$((ACCEPTED + 1))
	else
		die "job \"$*\" was not accepted"
	fi
}

# jobs_done prints how many distinct jobs some boss has reported done.
jobs_done() {
	cat "$WORK"/*.log 2>/dev/null | sed -n 's/^Job done: .* (\(job-[A-Za-z0-9_-]*\)) by .*/\1/p' | sort -u | wc -l
}
all_done() { (($(jobs_done) >= ACCEPTED)); }

heading "1. ZooKeeper"
"$REPO_ROOT/scripts/zookeeper.sh" install
ZK_PORT=$("$REPO_ROOT/scripts/zookeeper.sh" free-port) || die "no free port for ZooKeeper"
ZK_STARTED=1
connect=$("$REPO_ROOT/scripts/zookeeper.sh" start --dir "$ZK_DIR" --port "$ZK_PORT" 2>"$WORK/zookeeper.err") ||
	die "ZooKeeper did not start: $(cat "$WORK/zookeeper.err")"
[[ $connect == "127.0.0.1:$ZK_PORT" ]] || die "ZooKeeper did not start on 127.0.0.1:$ZK_PORT: $(cat "$WORK/zookeeper.err")"
say "A fresh ZooKeeper serves on $connect (in $ZK_DIR)."
FLAGS=(-zk "$connect" -root /demo)

heading "2. Build cmd/boss"
(cd "$REPO_ROOT" && go build -o "$BIN" ./cmd/boss)
say "Built $BIN."

heading "3. A boss and two workers"
start_node boss
wait_for "the boss is elected" has_line boss "I'm the boss!"
start_node worker1
start_node worker2
wait_for "worker1 is ready" has_line worker1 "Worker waiting for task..."
wait_for "worker2 is ready" has_line worker2 "Worker waiting for task..."

heading "4. Jobs: the boss delegates, round-robin"
submit wash the dishes
submit feed the cat
submit write the report
submit water the plants
wait_for "the first jobs are done" all_done

heading "5. The boss stops (SIGTERM); a worker takes over"
kill -TERM "${PID[boss]}"
wait "${PID[boss]}" || die "the boss did not stop cleanly"
unset 'PID[boss]'
say "The boss has stopped."
new_boss=""
find_new_boss() {
	local w
	for w in worker1 worker2; do
		if has_line "$w" "I'm the boss!"; then
			new_boss=$w
			return 0
		fi
	done
	return 1
}
wait_for "a worker is elected boss" find_new_boss
say "$new_boss is the new boss: it delegates and, as a worker too, does tasks."

heading "6. More jobs, to the new boss"
submit mow the lawn
submit fix the bike
submit call mum
submit pay the bills
wait_for "every job is done" all_done

heading "7. Summary"
say "Jobs submitted: $SUBMITTED"
say "Jobs accepted:  $ACCEPTED"
say "Jobs done:      $(jobs_done)"
for w in worker1 worker2; do
	say "Tasks done by $w: $(grep -c '^Doing task: ' "$WORK/$w.log" || true)"
done
say "Every accepted job was done. Stopping everything the demo started."
