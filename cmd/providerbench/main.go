// Command providerbench measures zkactor's protoactor-go cluster provider
// (package provider) side by side with protoactor-go's own ZooKeeper
// provider (cluster/clusterproviders/zk, with the disthash identity
// lookup), in one run against one ZooKeeper:
//
//   - join and leave visibility: from the moment a watcher of the members'
//     directory (this process, on the same server) is notified of the
//     member's znode, until each member's protoactor topology has the
//     change (ClusterTopology event), p50 and p99 over every (change,
//     member) pair;
//
//   - ZooKeeper reads per join and per leave, summed over the other
//     members (each member talks to ZooKeeper through a proxy of this
//     process that counts exists, getData and getChildren requests), for
//     clusters of N members, and the joiner's own. The reads are counted
//     on a cluster of their own: every time above and below is taken on
//     a cluster whose members connect to ZooKeeper directly, as a proxy
//     adds two hops to every request and notification;
//
//   - the provider's Shutdown(true) duration;
//
//   - identity lookup: IdentityLookup.Get of identities never asked before
//     (first activation), p50 and p99; then of one identity again and
//     again (ns per lookup, and the ZooKeeper requests it cost);
//
//   - duplicate activations under member churn: every member requests 50
//     identities round robin while a member joins, another leaves
//     (protoactor's Cluster.Shutdown) and one more joins; the grains' start
//     and stop times are collected from every member, and any moment when
//     one identity has two running activations counts.
//
//     providerbench -zk 127.0.0.1:2181 [-n 3,5,10] [-rounds 5] [-providers zkactor,protoactor]
//
// Every member is a process of its own (this binary, re-executed). make
// provider-bench starts a ZooKeeper of its own and runs it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
)

func main() {
	if which := os.Getenv(memberEnv); which != "" {
		os.Exit(runMember(which))
	}
	os.Exit(run())
}

type options struct {
	servers   []string
	sizes     []int
	rounds    int
	providers []string
	settle    time.Duration
	lookups   int
}

func run() int {
	var o options
	zkFlag := flag.String("zk", "127.0.0.1:2181", "a ZooKeeper server, host:port (members connect to it directly, or through counting proxies when their reads are counted)")
	sizes := flag.String("n", "3,5,10", "cluster sizes")
	flag.IntVar(&o.rounds, "rounds", 5, "joins and leaves measured per size")
	providers := flag.String("providers", "zkactor,protoactor", "providers to measure")
	flag.DurationVar(&o.settle, "settle", 2500*time.Millisecond, "quiet time after a change before reads are counted (protoactor's provider sleeps 1s on a busy directory)")
	flag.IntVar(&o.lookups, "lookups", 200, "first activations timed")
	flag.Parse()
	o.servers = []string{*zkFlag}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "bad -n %q\n", *sizes)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	o.providers = strings.Split(*providers, ",")

	conn, _, err := zk.Connect(o.servers, 10*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	var reports []*report
	for _, p := range o.providers {
		r, err := measure(conn, o, p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
			return 1
		}
		reports = append(reports, r)
	}
	printReport(os.Stdout, o, reports)
	return 0
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// report is one provider's figures.
type report struct {
	provider      string
	join, leave   []time.Duration // visibility, every (change, member)
	joinReads     map[int][]int64 // N → reads by the others, per join
	joinOwn       map[int][]int64 // N → the joiner's own reads
	leaveReads    map[int][]int64 // N → reads by the others, per leave
	shutdowns     []time.Duration // Shutdown(true)
	firstP50      time.Duration   // first activation
	firstP99      time.Duration   //
	cachedNs      int64           // per cached lookup
	cachedZK      int64           // ZooKeeper requests of the cached lookups (-1: not a ZooKeeper lookup)
	duplicates    int             // identities with two activations at once
	activations   int             // in the churn run
	churnRequests [2]int          // ok, failed
}

// member is a member process.
type member struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	proxy  *countingProxy
	id     string
	addr   string
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

// startMember starts a member process; counted puts a counting proxy
// between it and ZooKeeper.
func startMember(o options, provider, root string, counted bool) (*member, error) {
	var proxy *countingProxy
	server := o.servers[0]
	if counted {
		var err error
		if proxy, err = newCountingProxy(server); err != nil {
			return nil, err
		}
		server = proxy.addr()
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memberEnv+"="+provider, serversEnv+"="+server, rootEnv+"="+root, portEnv+"="+strconv.Itoa(port))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m := &member{cmd: cmd, proxy: proxy, exited: make(chan struct{}), more: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(m.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			close(m.more)
			m.more = make(chan struct{})
			m.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	ready, err := m.wait(40*time.Second, func(l string) bool { return strings.HasPrefix(l, "ready ") })
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("member did not start: %w", err)
	}
	f := strings.Fields(ready)
	m.id, m.addr = f[1], f[2]
	return m, nil
}

// wait returns the first line that matches.
func (m *member) wait(timeout time.Duration, match func(string) bool) (string, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		m.mu.Lock()
		lines, more := m.lines[seen:], m.more
		seen = len(m.lines)
		m.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		select {
		case <-more:
		case <-m.exited:
			return "", errors.New("the member exited")
		case <-deadline:
			return "", fmt.Errorf("not within %v", timeout)
		}
	}
}

func (m *member) snapshot() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.lines)
}

func (m *member) send(cmd string) { _, _ = io.WriteString(m.stdin, cmd+"\n") }

// stop closes stdin and waits for the process (killing it after 20 s).
func (m *member) stop() {
	_ = m.stdin.Close()
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	if m.proxy != nil {
		m.proxy.close()
	}
}

// seenAt is the time of m's first topology line at or after from whose
// member set satisfies ok.
func (m *member) seenAt(from time.Time, ok func(ids []string) bool) (time.Time, bool) {
	for _, l := range m.snapshot() {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "topology" {
			continue
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		var ids []string
		if len(f) > 2 {
			ids = strings.Split(f[2], ",")
		}
		if ns >= from.UnixNano()-int64(50*time.Millisecond) && ok(ids) {
			return time.Unix(0, ns), true
		}
	}
	return time.Time{}, false
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// dirWatch records when the children of a znode change.
type dirWatch struct {
	mu     sync.Mutex
	events []dirEvent
	quit   chan struct{}
	done   chan struct{}
}

type dirEvent struct {
	at       time.Time
	children int
}

func watchDir(conn *zk.Conn, dir string) *dirWatch {
	w := &dirWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			kids, _, ch, err := conn.ChildrenW(dir)
			if errors.Is(err, zk.ErrNoNode) {
				var ok bool
				ok, _, ch, err = conn.ExistsW(dir)
				if ok {
					continue
				}
			}
			if err != nil {
				select {
				case <-w.quit:
					return
				case <-time.After(10 * time.Millisecond):
					continue
				}
			}
			w.mu.Lock()
			w.events = append(w.events, dirEvent{time.Now(), len(kids)})
			w.mu.Unlock()
			select {
			case <-w.quit:
				return
			case <-ch:
			}
		}
	}()
	return w
}

func (w *dirWatch) stop() { close(w.quit); <-w.done }

// when waits for the first change at or after from that leaves n
// children, and returns its time.
func (w *dirWatch) when(from time.Time, n int) (time.Time, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, e := range w.events {
			if !e.at.Before(from) && e.children == n {
				w.mu.Unlock()
				return e.at, nil
			}
		}
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the directory never had %d children", n)
}

func reads(ms []*member) int64 {
	var n int64
	for _, m := range ms {
		if m.proxy != nil {
			n += m.proxy.reads.Load()
		}
	}
	return n
}

func ids(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.id)
	}
	return out
}

// waitSeen waits until every member's topology has exactly want, and
// returns when each first had it (from from on).
func waitSeen(ms []*member, from time.Time, want []string) ([]time.Time, error) {
	want = slices.Clone(want)
	slices.Sort(want)
	var at []time.Time
	for _, m := range ms {
		var t time.Time
		deadline := time.Now().Add(30 * time.Second)
		for {
			var ok bool
			if t, ok = m.seenAt(from, func(ids []string) bool { return slices.Equal(ids, want) }); ok {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("member %s never saw %v", m.id, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		at = append(at, t)
	}
	return at, nil
}

func measure(conn *zk.Conn, o options, provider string) (*report, error) {
	r := &report{provider: provider, joinReads: map[int][]int64{}, joinOwn: map[int][]int64{}, leaveReads: map[int][]int64{}}
	for i, n := range o.sizes {
		// Two passes over fresh clusters: one whose members reach ZooKeeper
		// through counting proxies, for the reads; one whose members
		// connect directly, for every time. A proxy adds two hops to each
		// request and notification (four per round trip, on this process's
		// goroutines): the apparatus's latency, not the provider's.
		for _, counted := range []bool{true, false} {
			if err := measureSize(conn, o, provider, n, counted, i == 0 && !counted, r); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// measureSize measures joins and leaves on a cluster of n members: the
// reads they cost when counted, else their visibility, Shutdown, and (when
// more) the lookups and the churn run.
func measureSize(conn *zk.Conn, o options, provider string, n int, counted, more bool, r *report) error {
	root := fmt.Sprintf("/providerbench/%s-%d-%08x", provider, n, rand.Uint32())
	dir := root + "/nodes"
	if provider == "protoactor" {
		dir = root + "/" + clusterName
	}
	w := watchDir(conn, dir)
	var ms []*member
	defer func() {
		for _, m := range ms {
			m.stop()
		}
		w.stop()
	}()
	for range n - 1 {
		m, err := startMember(o, provider, root, counted)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	if _, err := waitSeen(ms, time.Time{}, ids(ms)); err != nil {
		return err
	}
	pass := "timed"
	if counted {
		pass = "reads counted"
	}
	fmt.Fprintf(os.Stderr, "%s: N=%d (%s)\n", provider, n, pass)
	for range o.rounds {
		time.Sleep(o.settle)
		before := reads(ms)
		start := time.Now()
		joiner, err := startMember(o, provider, root, counted)
		if err != nil {
			return err
		}
		created, err := w.when(start, n)
		if err != nil {
			joiner.stop()
			return err
		}
		all := append(slices.Clone(ms), joiner)
		seen, err := waitSeen(all, created, ids(all))
		if err != nil {
			joiner.stop()
			return err
		}
		if counted {
			time.Sleep(o.settle)
			r.joinReads[n] = append(r.joinReads[n], reads(ms)-before)
			r.joinOwn[n] = append(r.joinOwn[n], joiner.proxy.reads.Load())
		} else {
			for _, t := range seen {
				r.join = append(r.join, t.Sub(created))
			}
		}

		before = reads(ms)
		start = time.Now()
		joiner.send("shutdown")
		line, err := joiner.wait(30*time.Second, func(l string) bool { return strings.HasPrefix(l, "shutdown ") })
		if err != nil {
			joiner.stop()
			return err
		}
		deleted, err := w.when(start, n-1)
		if err != nil {
			joiner.stop()
			return err
		}
		seen, err = waitSeen(ms, deleted, ids(ms))
		if err != nil {
			joiner.stop()
			return err
		}
		if counted {
			time.Sleep(o.settle)
			r.leaveReads[n] = append(r.leaveReads[n], reads(ms)-before)
		} else {
			ns, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			r.shutdowns = append(r.shutdowns, time.Duration(ns))
			for _, t := range seen {
				r.leave = append(r.leave, t.Sub(deleted))
			}
		}
		joiner.stop()
	}
	if !more {
		return nil
	}
	if err := lookupBench(o, r, ms); err != nil {
		return err
	}
	return churn(o, r, provider, root, &ms)
}

func lookupBench(o options, r *report, ms []*member) error {
	m := ms[0]
	m.send(fmt.Sprintf("lookups first %d %d", o.lookups, 1000000))
	line, err := m.wait(5*time.Minute, func(l string) bool { return strings.HasPrefix(l, "lookups ") })
	if err != nil {
		return err
	}
	f := strings.Fields(line)
	if len(f) != 5 {
		return fmt.Errorf("lookup bench: %q", line)
	}
	v := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
	r.firstP50, r.firstP99, r.cachedNs, r.cachedZK = time.Duration(v(1)), time.Duration(v(2)), v(3), v(4)
	return nil
}

// churn runs the duplicate-activation experiment on the cluster ms.
func churn(o options, r *report, provider, root string, ms *[]*member) error {
	const identities, loadMs = 50, 9000
	for _, m := range *ms {
		m.send(fmt.Sprintf("load %d %d", loadMs, identities))
	}
	time.Sleep(1500 * time.Millisecond)
	j1, err := startMember(o, provider, root, false)
	if err != nil {
		return err
	}
	j1.send(fmt.Sprintf("load %d %d", loadMs-3000, identities))
	*ms = append(*ms, j1)
	time.Sleep(1500 * time.Millisecond)
	leaver := (*ms)[0]
	leaver.send("leave")
	if _, err := leaver.wait(30*time.Second, func(l string) bool { return l == "left" }); err != nil {
		return err
	}
	j2, err := startMember(o, provider, root, false)
	if err != nil {
		return err
	}
	*ms = append(*ms, j2)
	for _, m := range *ms {
		if m == leaver || m == j2 {
			continue
		}
		if _, err := m.wait(60*time.Second, func(l string) bool { return strings.HasPrefix(l, "load ") }); err != nil {
			return err
		}
	}
	end := time.Now().UnixNano()
	type span struct{ from, to int64 }
	spans := map[string][]span{}
	for _, m := range *ms {
		open := map[string]int64{}
		for _, l := range m.snapshot() {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "act":
				open[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
				r.activations++
			case len(f) == 3 && f[0] == "deact":
				to, _ := strconv.ParseInt(f[2], 10, 64)
				if from, ok := open[f[1]]; ok {
					spans[f[1]] = append(spans[f[1]], span{from, to})
					delete(open, f[1])
				}
			case len(f) == 3 && f[0] == "load":
				ok, _ := strconv.Atoi(f[1])
				failed, _ := strconv.Atoi(f[2])
				r.churnRequests[0] += ok
				r.churnRequests[1] += failed
			}
		}
		for id, from := range open {
			spans[id] = append(spans[id], span{from, end})
		}
	}
	for _, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return int(a.from - b.from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from < ss[i-1].to {
				r.duplicates++
				break
			}
		}
	}
	return nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func mean(v []int64) float64 {
	if len(v) == 0 {
		return 0
	}
	var sum int64
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func printReport(w io.Writer, o options, rs []*report) {
	row := func(name string, f func(r *report) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, r := range rs {
			fmt.Fprintf(w, " %s |", f(r))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| measure |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.provider)
	}
	fmt.Fprint(w, "\n|---|")
	for range rs {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	row("join visible at every member, p50 / p99", func(r *report) string {
		return ms(percentile(r.join, 50)) + " / " + ms(percentile(r.join, 99))
	})
	row("leave visible at every member, p50 / p99", func(r *report) string {
		return ms(percentile(r.leave, 50)) + " / " + ms(percentile(r.leave, 99))
	})
	for _, n := range o.sizes {
		row(fmt.Sprintf("ZooKeeper reads per join, N=%d: by the others (per member); the joiner's own", n), func(r *report) string {
			m := mean(r.joinReads[n])
			return fmt.Sprintf("%.1f (%.2f); %.1f", m, m/float64(n-1), mean(r.joinOwn[n]))
		})
		row(fmt.Sprintf("ZooKeeper reads per leave, N=%d: by the others (per member)", n), func(r *report) string {
			m := mean(r.leaveReads[n])
			return fmt.Sprintf("%.1f (%.2f)", m, m/float64(n-1))
		})
	}
	row("provider Shutdown(true), p50 / max", func(r *report) string {
		return ms(percentile(r.shutdowns, 50)) + " / " + ms(percentile(r.shutdowns, 100))
	})
	row("IdentityLookup.Get, first activation, p50 / p99", func(r *report) string {
		return ms(r.firstP50) + " / " + ms(r.firstP99)
	})
	row("IdentityLookup.Get, again (ZooKeeper requests per 1e6)", func(r *report) string {
		zk := "none: not ZooKeeper"
		if r.cachedZK >= 0 {
			zk = strconv.FormatInt(r.cachedZK, 10)
		}
		return fmt.Sprintf("%d ns (%s)", r.cachedNs, zk)
	})
	row("identities with two activations at once under churn (activations; requests ok/failed)", func(r *report) string {
		return fmt.Sprintf("%d (%d; %d/%d)", r.duplicates, r.activations, r.churnRequests[0], r.churnRequests[1])
	})
}
