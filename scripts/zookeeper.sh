#!/usr/bin/env bash
# zookeeper.sh: install, run and stop the ZooKeeper servers zkactor develops and tests against.
#
# This is the only place that knows how to launch a ZooKeeper JVM (classpath, JVM flags, logging).
# The Go test harness (test/zktest) runs `zookeeper.sh serve DIR` and so does `start` below.
#
#   zookeeper.sh install                                 install Debian's zookeeper package if missing
#   zookeeper.sh serve DIR                               run the server for DIR/zoo.cfg in the foreground
#   zookeeper.sh start [--dir D] [--port P] [--servers N] start 1 (default) or N servers in the background
#   zookeeper.sh stop [--dir D]                          stop what start started
#   zookeeper.sh status [--dir D]                        show what start started and whether it serves
#   zookeeper.sh free-port                               print a port P with P, P+100 and P+200 free
#
# start writes under D (default: .zk at the repository root), one directory per server:
#   D/serverK/zoo.cfg, D/serverK/data/ (with myid), D/serverK/zookeeper.log, D/serverK/zookeeper.pid
# Server K (1-based) listens for clients on P+K-1, for its peers on P+100+K-1 and for leader
# election on P+200+K-1, all on 127.0.0.1.
set -euo pipefail

readonly ZK_JAR=/usr/share/java/zookeeper.jar
# zookeeper.jar's manifest Class-Path brings in zookeeper-jute, slf4j-api, netty, jetty, jackson,
# commons-* and snappy. Debian's launcher adds no logging binding, so without the two jars below the
# server logs nothing at all.
readonly ZK_CLASSPATH="$ZK_JAR:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
readonly ZK_MAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain
# Debian's JVM defaults to G1 with a quarter of RAM as heap; tests need far less. -UsePerfData:
# tests kill servers with SIGKILL, which would leave files in /tmp/hsperfdata_$USER behind.
readonly ZK_JVM_FLAGS=(-Xmx256m -XX:+UseSerialGC -XX:-UsePerfData)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly REPO_ROOT
readonly START_TIMEOUT_SECONDS=60

die() {
	echo "zookeeper.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# port_free P succeeds if nothing accepts connections on 127.0.0.1:P.
port_free() { ! { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && return 0; exec 3<&-; return 1; }

# cmd_free_port prints a port P for `start --port P`: P, P+100 and P+200 (the client, peer and election
# ports of server 1) are free. The demos and benchmarks start their own server on it.
cmd_free_port() {
	[[ $# -eq 0 ]] || usage
	local p tries
	for ((tries = 0; tries < 50; tries++)); do
		# Below the kernel's ephemeral range (32768 and up): no ":0" listener or outgoing
		# connection can take the server's ports while it is down.
		p=$((20000 + RANDOM % 12000))
		if port_free "$p" && port_free $((p + 100)) && port_free $((p + 200)); then
			echo "$p"
			return 0
		fi
	done
	die "no free port for ZooKeeper on 127.0.0.1"
}

cmd_install() {
	[[ -e $ZK_JAR ]] && return 0
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	echo "zookeeper.sh: installing Debian's zookeeper package" >&2
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >/dev/null
	[[ -e $ZK_JAR ]] || die "apt-get installed zookeeper but $ZK_JAR is still missing"
}

cmd_serve() {
	[[ $# -eq 1 ]] || usage
	[[ -d $1 ]] || die "serve: no such directory: $1"
	local dir
	dir="$(cd "$1" && pwd -P)"
	[[ -f $dir/zoo.cfg ]] || die "serve: $dir/zoo.cfg does not exist"
	[[ -e $ZK_JAR ]] || die "ZooKeeper is not installed ($ZK_JAR is missing): run scripts/zookeeper.sh install"
	command -v java >/dev/null || die "java is not installed: run scripts/zookeeper.sh install"
	cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.dir}/zookeeper.log
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] %-5p [%t:%C{1}@%L] - %m%n
EOF
	exec java "${ZK_JVM_FLAGS[@]}" \
		"-Dzookeeper.log.dir=$dir" \
		"-Dlog4j.configuration=file:$dir/log4j.properties" \
		-cp "$ZK_CLASSPATH" "$ZK_MAIN" "$dir/zoo.cfg"
}

# four_letter PORT WORD prints the server's reply to a four-letter word, or nothing. It uses
# bash's /dev/tcp, so it needs no netcat.
four_letter() {
	local reply=""
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
	printf %s "$2" >&3 2>/dev/null || true
	# The server closes the connection after its reply; read to the end, or give up after 2 s.
	IFS= read -r -d '' -t 2 reply <&3 || true
	exec 3<&-
	printf %s "$reply"
}

# mode PORT prints the server's Mode (standalone, leader, follower) once it serves clients.
mode() {
	four_letter "$1" srvr | sed -n 's/^Mode: //p'
}

# write_config DIR ID PORT N writes zoo.cfg and myid for server ID of an N-server group.
write_config() {
	local dir=$1 id=$2 port=$3 n=$4 k
	mkdir -p "$dir/data"
	{
		echo "tickTime=200"
		echo "initLimit=50"
		echo "syncLimit=25"
		echo "minSessionTimeout=400"
		echo "maxSessionTimeout=60000"
		echo "dataDir=$dir/data"
		echo "clientPort=$((port + id - 1))"
		echo "clientPortAddress=127.0.0.1"
		echo "maxClientCnxns=0"
		echo "admin.enableServer=false"
		echo "4lw.commands.whitelist=*"
		if ((n > 1)); then
			for ((k = 1; k <= n; k++)); do
				echo "server.$k=127.0.0.1:$((port + 100 + k - 1)):$((port + 200 + k - 1))"
			done
		fi
	} >"$dir/zoo.cfg"
	if ((n > 1)); then
		echo "$id" >"$dir/data/myid"
	fi
}

client_port() {
	sed -n 's/^clientPort=//p' "$1/zoo.cfg"
}

# running PIDFILE succeeds if the pid file names a live ZooKeeper JVM serving that directory
# (so a recycled pid is never mistaken for our server).
running() {
	local pid cmdline
	[[ -f $1 ]] || return 1
	pid=$(<"$1")
	{ cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline"); } 2>/dev/null || return 1
	[[ $cmdline == *"$ZK_MAIN $(dirname "$1")/zoo.cfg"* ]]
}

# alive PID succeeds if the process exists and is not a zombie. Used while start waits for its own
# children, which may not have exec'd java yet.
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

server_dirs() {
	local d
	for d in "$1"/server*; do
		[[ -f $d/zoo.cfg ]] && echo "$d"
	done
	return 0
}

show_log_tail() {
	echo "--- last lines of $1/zookeeper.log ---" >&2
	tail -n 30 "$1/zookeeper.log" >&2 2>/dev/null || true
	echo "--- $1/jvm.out ---" >&2
	tail -n 30 "$1/jvm.out" >&2 2>/dev/null || true
}

parse_dir_opt() {
	dir="$REPO_ROOT/.zk"
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=$2; shift 2 ;;
		*) usage ;;
		esac
	done
}

cmd_start() {
	local dir="$REPO_ROOT/.zk" port=2181 n=1 id sdir connect="" deadline m
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=$2; shift 2 ;;
		--port) port=$2; shift 2 ;;
		--servers) n=$2; shift 2 ;;
		*) usage ;;
		esac
	done
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "start: --servers must be a positive number"
	[[ $port =~ ^[0-9]+$ ]] || die "start: --port must be a number"
	for ((id = 1; id <= n; id++)); do
		if [[ -n $(four_letter $((port + id - 1)) ruok) ]]; then
			echo "zookeeper.sh: a server already answers on 127.0.0.1:$((port + id - 1)); not starting anything" >&2
			return 0
		fi
	done
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd -P)"
	for ((id = 1; id <= n; id++)); do
		sdir="$dir/server$id"
		if running "$sdir/zookeeper.pid"; then
			die "start: server $id in $dir still runs (pid $(<"$sdir/zookeeper.pid")) but does not answer; run: $0 stop --dir $dir"
		fi
		write_config "$sdir" "$id" "$port" "$n"
		# serve execs java, so $! is the JVM's pid.
		nohup "${BASH_SOURCE[0]}" serve "$sdir" </dev/null >"$sdir/jvm.out" 2>&1 &
		echo $! >"$sdir/zookeeper.pid"
		connect+="${connect:+,}127.0.0.1:$((port + id - 1))"
	done
	deadline=$((SECONDS + START_TIMEOUT_SECONDS))
	for ((id = 1; id <= n; id++)); do
		sdir="$dir/server$id"
		while :; do
			m=$(mode $((port + id - 1)))
			[[ -n $m ]] && break
			if ! alive "$(<"$sdir/zookeeper.pid")"; then
				show_log_tail "$sdir"
				cmd_stop --dir "$dir"
				die "start: server $id exited before serving (is ZooKeeper installed? run: $0 install)"
			fi
			if ((SECONDS >= deadline)); then
				show_log_tail "$sdir"
				cmd_stop --dir "$dir"
				die "start: server $id did not serve within ${START_TIMEOUT_SECONDS}s"
			fi
			sleep 0.1
		done
		echo "zookeeper.sh: server $id serves on 127.0.0.1:$((port + id - 1)) (Mode: $m, pid $(<"$sdir/zookeeper.pid"))" >&2
	done
	echo "$connect"
}

cmd_stop() {
	local dir sdir pid deadline stopped=0
	parse_dir_opt "$@"
	while read -r sdir; do
		[[ -n $sdir ]] || continue
		if ! running "$sdir/zookeeper.pid"; then
			rm -f "$sdir/zookeeper.pid"
			continue
		fi
		pid=$(<"$sdir/zookeeper.pid")
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 10))
		while running "$sdir/zookeeper.pid" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if running "$sdir/zookeeper.pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			while running "$sdir/zookeeper.pid"; do sleep 0.1; done
		fi
		rm -f "$sdir/zookeeper.pid"
		echo "zookeeper.sh: stopped $(basename "$sdir") (pid $pid)" >&2
		stopped=$((stopped + 1))
	done < <(server_dirs "$dir")
	((stopped > 0)) || echo "zookeeper.sh: nothing to stop in $dir" >&2
}

# status exits 0 if every server start started is running and serving, 3 otherwise.
cmd_status() {
	local dir sdir port m rc=0 found=0
	parse_dir_opt "$@"
	while read -r sdir; do
		[[ -n $sdir ]] || continue
		found=1
		port=$(client_port "$sdir")
		if ! running "$sdir/zookeeper.pid"; then
			echo "$(basename "$sdir") 127.0.0.1:$port not running"
			rc=3
			continue
		fi
		m=$(mode "$port")
		echo "$(basename "$sdir") 127.0.0.1:$port pid $(<"$sdir/zookeeper.pid") Mode: ${m:-not serving}"
		[[ -n $m ]] || rc=3
	done < <(server_dirs "$dir")
	if ((found == 0)); then
		echo "no servers started in $dir"
		rc=3
	fi
	return "$rc"
}

main() {
	[[ $# -ge 1 ]] || usage
	local sub=$1
	shift
	case $sub in
	install) cmd_install "$@" ;;
	serve) cmd_serve "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	free-port) cmd_free_port "$@" ;;
	*) usage ;;
	esac
}

main "$@"
