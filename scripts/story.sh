# story.sh: what demo.sh and grains-demo.sh share (sourced, not run). The caller sets WORK,
# ZK_DIR, ZK_STARTED, PID (an associative array of name -> pid), BIN and WAIT_SECONDS first.

heading() { printf '\n== %s ==\n' "$*"; }
say() { printf '%s\n' "$*"; }
die() {
	printf '\ndemo FAILED: %s\n' "$*" >&2
	for f in "$WORK"/*.err; do
		[[ -s $f ]] || continue
		printf -- '--- last lines of %s ---\n' "$(basename "$f")" >&2
		tail -n 15 "$f" >&2
	done
	exit 1
}

cleanup() {
	local name
	for name in "${!PID[@]}"; do
		kill -TERM "${PID[$name]}" 2>/dev/null || true
	done
	for name in "${!PID[@]}"; do
		wait "${PID[$name]}" 2>/dev/null || true
	done
	if ((ZK_STARTED)); then
		"$REPO_ROOT/scripts/zookeeper.sh" stop --dir "$ZK_DIR" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for WHAT CMD...: runs CMD until it succeeds, for at most WAIT_SECONDS.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT_SECONDS))
	shift
	until "$@"; do
		((SECONDS < deadline)) || die "not within ${WAIT_SECONDS}s: $what"
		sleep 0.1
	done
}

# start_process NAME ARGS...: "$BIN" "${FLAGS[@]}" ARGS... in the background; its output goes to the
# terminal, prefixed with NAME, and to $WORK/NAME.log; its logs to $WORK/NAME.err.
start_process() {
	local name=$1
	shift
	"$BIN" "${FLAGS[@]}" "$@" </dev/null \
		> >(tee "$WORK/$name.log" | sed -u "s/^/  [$name] /") 2>"$WORK/$name.err" &
	PID[$name]=$!
}

has_line() { grep -qF -- "$2" "$WORK/$1.log" 2>/dev/null; }
