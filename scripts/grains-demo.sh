#!/usr/bin/env bash
# grains-demo.sh: protoactor-go grains on zkactor, told as a story (make grains-demo).
#
# Starts its own ZooKeeper on a free port in a temporary directory (installing Debian's package if
# needed; a ZooKeeper it did not start is never touched), builds cmd/grains, starts three members,
# increments counters from a client, kills (-9) the member that hosts one of them, and increments
# again: that member's counters are activated on the others once its session has ended, with a
# larger epoch, and their counts go on where they were (each count lives in ZooKeeper, written
# fenced by its activation's znode). Everything it started is stopped on exit, success or not.
# Exit status 0 means every count came out right.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly REPO_ROOT
readonly WAIT_SECONDS=20 # deadline for each thing the demo waits for
readonly COUNTERS=(apple banana cherry damson elder fig)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/zkactor-grains.XXXXXX")"
readonly WORK
BIN="$WORK/grains"
ZK_DIR="$WORK/zookeeper"
ZK_STARTED=0
declare -A PID=() # member name -> pid

# shellcheck source=scripts/story.sh
source "$REPO_ROOT/scripts/story.sh"

# start_member NAME: a member (see start_process).
start_member() { start_process "$1" member; }

# client ARGS...: a client command; its output goes to the terminal and to $WORK/client.out.
client() {
	say "\$ grains $*"
	"$BIN" "${FLAGS[@]}" "$@" 2>>"$WORK/client.err" | tee "$WORK/client.out" | sed -u 's/^/  /' ||
		die "grains $* failed"
}

# count_of ID: the count the last client output gives counter ID; member_of ID, epoch_of ID likewise.
field_of() { sed -n "s|^counter/$1 = \([0-9]*\) (member \([^,]*\), epoch \([0-9]*\))\$|\\$2|p" "$WORK/client.out"; }
count_of() { field_of "$1" 1; }
member_of() { field_of "$1" 2; }
epoch_of() { field_of "$1" 3; }

expect_counts() {
	local want=$1 id
	for id in "${COUNTERS[@]}"; do
		[[ $(count_of "$id") == "$want" ]] || die "counter/$id = $(count_of "$id"), want $want"
	done
}

heading "1. ZooKeeper"
"$REPO_ROOT/scripts/zookeeper.sh" install
ZK_PORT=$("$REPO_ROOT/scripts/zookeeper.sh" free-port) || die "no free port for ZooKeeper"
ZK_STARTED=1
connect=$("$REPO_ROOT/scripts/zookeeper.sh" start --dir "$ZK_DIR" --port "$ZK_PORT" 2>"$WORK/zookeeper.err") ||
	die "ZooKeeper did not start: $(cat "$WORK/zookeeper.err")"
say "A fresh ZooKeeper serves on $connect (in $ZK_DIR)."
FLAGS=(-zk "$connect" -root /grains-demo -session-timeout 2s)

heading "2. Build cmd/grains"
(cd "$REPO_ROOT" && go build -o "$BIN" ./cmd/grains)
say "Built $BIN."

heading "3. Three members"
for m in m1 m2 m3; do
	start_member "$m"
done
for m in m1 m2 m3; do
	wait_for "$m has joined" has_line "$m" "hosts counters"
done
three_members() { [[ $("$BIN" "${FLAGS[@]}" members 2>/dev/null | wc -l) == 3 ]]; }
wait_for "every member sees the others" three_members
client members

heading "4. Counters: each identity is activated once, on one member"
client incr "${COUNTERS[@]}"
expect_counts 1
client incr "${COUNTERS[@]}"
expect_counts 2

heading "5. kill -9 the member that hosts counter/apple"
victim_id=$(member_of apple)
old_epoch=$(epoch_of apple)
victim=""
for m in m1 m2 m3; do
	has_line "$m" "Member $victim_id " && victim=$m
done
[[ -n $victim ]] || die "no member is $victim_id"
declare -A moved=()
for id in "${COUNTERS[@]}"; do
	[[ $(member_of "$id") == "$victim_id" ]] && moved[$id]=1
done
kill -KILL "${PID[$victim]}"
wait "${PID[$victim]}" 2>/dev/null || true
unset "PID[$victim]"
say "Killed $victim ($victim_id), which hosted: ${!moved[*]}."
say "Its ZooKeeper session ends within the session timeout (2s); then its counters can be activated elsewhere."

heading "6. The same counters again"
client incr "${COUNTERS[@]}"
expect_counts 3
for id in "${!moved[@]}"; do
	[[ $(member_of "$id") != "$victim_id" ]] || die "counter/$id is still on the killed member"
done
(($(epoch_of apple) > old_epoch)) || die "counter/apple's epoch did not grow ($old_epoch -> $(epoch_of apple))"
say "counter/apple moved from $victim_id to $(member_of apple); its epoch grew from $old_epoch to $(epoch_of apple)."

heading "7. Summary"
activated=$(cat "$WORK"/m*.log | grep -c '^Activated ' || true)
say "Counters: ${#COUNTERS[@]}; activations: $activated (${#COUNTERS[@]} first, ${#moved[@]} again after the kill)."
((activated == ${#COUNTERS[@]} + ${#moved[@]})) || die "expected $((${#COUNTERS[@]} + ${#moved[@]})) activations, saw $activated"
say "Every count went on where it was, on exactly one activation at a time. Stopping everything the demo started."
