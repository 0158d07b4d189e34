package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFindings = 1 // doctor found something
	exitFailed   = 2 // bad usage, ZooKeeper unreachable, no root, a read failed
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage:
  zkactor inspect [flags]   print nodes, services, globals, activations, work queues
                            (and boss jobs), roles, locks, barriers and configs
  zkactor doctor [flags]    print what looks wrong, one finding per line; exit 1 if any

zkactor only reads: it never writes to ZooKeeper. Exit status 2 when it cannot
read (bad flags, ZooKeeper unreachable, no such root). See "zkactor inspect -h".
`

// common holds the flags every command takes.
type common struct {
	servers []string
	root    string
	timeout time.Duration
	verbose bool
}

func (c *common) register(fs *flag.FlagSet) (servers *string) {
	servers = fs.String("zk", envOr("ZK_SERVERS", "localhost:2181"), "ZooKeeper servers, `host:port[,host:port...]` (env ZK_SERVERS)")
	fs.StringVar(&c.root, "root", envOr("ZKACTOR_ROOT", "/zkactor"), "znode `path` under which the cluster lives (env ZKACTOR_ROOT)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for a ZooKeeper session (and for each server's cons reply)")
	fs.BoolVar(&c.verbose, "v", false, "go-zookeeper's log on stderr")
	return servers
}

func (c *common) finish(servers string, stderr io.Writer) bool {
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.servers = append(c.servers, s)
		}
	}
	c.servers = zk.FormatServers(c.servers) // adds the default port
	c.root = strings.TrimSuffix(c.root, "/")
	switch {
	case len(c.servers) == 0:
		fmt.Fprintln(stderr, "zkactor: -zk: no servers")
	case !strings.HasPrefix(c.root, "/"):
		fmt.Fprintf(stderr, "zkactor: -root %q: want an absolute znode path, such as /zkactor\n", c.root)
	case c.timeout <= 0:
		fmt.Fprintf(stderr, "zkactor: -timeout %v: want a positive duration\n", c.timeout)
	default:
		return true
	}
	return false
}

func (c *common) zkLog(stderr io.Writer) io.Writer {
	if c.verbose {
		return stderr
	}
	return nil
}

// run is the command with its arguments; ctx ends it (SIGINT, SIGTERM).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitFailed
	}
	switch args[0] {
	case "inspect":
		return runInspect(ctx, args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "zkactor: unknown command %q\n\n%s", args[0], usage)
		return exitFailed
	}
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zkactor inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c       common
		asJSON  = fs.Bool("json", false, "print one JSON document (with -watch: one per line, each on one line)")
		watch   = fs.Bool("watch", false, "follow changes: print again whenever something under the root changes, until SIGINT, SIGTERM or -for")
		forTime = fs.Duration("for", 0, "with -watch, stop after this `duration` (0: until SIGINT or SIGTERM)")
	)
	servers := c.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: zkactor inspect [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkactor inspect: unexpected arguments %q\n", fs.Args())
		return exitFailed
	}
	if !c.finish(*servers, stderr) {
		return exitFailed
	}
	if *forTime < 0 || *forTime > 0 && !*watch {
		fmt.Fprintln(stderr, "zkactor inspect: -for needs -watch and a positive duration")
		return exitFailed
	}

	var w *watches
	if *watch {
		w = newWatches()
	}
	cl, err := dial(ctx, c.servers, c.timeout, c.zkLog(stderr), w)
	if err != nil {
		fmt.Fprintf(stderr, "zkactor: %v\n", err)
		return exitFailed
	}
	defer cl.close()

	print := func(r *Report) error {
		if *asJSON {
			return writeJSON(stdout, r, !*watch)
		}
		return writeText(stdout, r)
	}
	if *watch {
		if *forTime > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *forTime)
			defer cancel()
		}
		err = follow(ctx, cl, c.root, print, !*asJSON, stdout, stderr)
	} else {
		var tree *znode
		if tree, err = cl.readTree(c.root, false); err == nil {
			err = print(buildReport(tree, c.servers, time.Now()))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "zkactor: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zkactor doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	asJSON := fs.Bool("json", false, `print {"findings": [{"kind", "path", "problem"}, ...]}`)
	servers := c.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: zkactor doctor [flags]\n\nPrints one finding per line, \"<kind> <path>: <problem>\"; exit status 1 if any.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkactor doctor: unexpected arguments %q\n", fs.Args())
		return exitFailed
	}
	if !c.finish(*servers, stderr) {
		return exitFailed
	}
	cl, err := dial(ctx, c.servers, c.timeout, c.zkLog(stderr), nil)
	if err != nil {
		fmt.Fprintf(stderr, "zkactor: %v\n", err)
		return exitFailed
	}
	defer cl.close()
	tree, err := cl.readTree(c.root, true)
	if err != nil {
		fmt.Fprintf(stderr, "zkactor: %v\n", err)
		return exitFailed
	}
	// cons after the read: a session seen in the tree and gone by now is
	// gone indeed; one that appeared since is connected, which does no harm.
	live, complete, consErr := liveSessions(c.servers, c.timeout)
	findings := diagnose(tree, sessions{
		nodes: nodeSessions(tree), live: live, complete: complete, consErr: consErr, servers: joinServers(c.servers),
	}, cl)
	if err := writeFindings(stdout, findings, *asJSON); err != nil {
		fmt.Fprintf(stderr, "zkactor: %v\n", err)
		return exitFailed
	}
	if len(findings) > 0 {
		return exitFindings
	}
	return exitOK
}

func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitFailed
}

func joinServers(servers []string) string { return strings.Join(servers, ",") }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
