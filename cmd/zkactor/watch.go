package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// follow prints the report, then again whenever a watch under the root
// fires and the report has changed, until ctx ends. Each read sets the
// watches that have fired since the last one (see watches), so a change
// anywhere under the root, in data or children, wakes it. A read that
// fails (the connection lost) is reported on stderr and retried when the
// client reconnects; the root's deletion ends it with an error.
func follow(ctx context.Context, cl *client, root string, print func(*Report) error, separate bool, stdout, stderr io.Writer) error {
	var last []byte
	for first := true; ; first = false {
		// Consume the pending signal first: a change from here on signals again.
		select {
		case <-cl.watches.changed:
		default:
		}
		tree, err := cl.readTree(root, false)
		switch {
		case errors.Is(err, errNoRoot):
			return err
		case err != nil:
			fmt.Fprintf(stderr, "zkactor: %v (reading again once ZooKeeper answers)\n", err)
		default:
			r := buildReport(tree, cl.servers, time.Now())
			key, err := reportKey(r)
			if err != nil {
				return err
			}
			if string(key) != string(last) {
				last = key
				if separate && !first {
					fmt.Fprintln(stdout)
				}
				if err := print(r); err != nil {
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-cl.watches.changed:
		}
	}
}

// reportKey is the report without its read time: two reads of an
// unchanged tree have the same key.
func reportKey(r *Report) ([]byte, error) {
	c := *r
	c.ReadAt = time.Time{}
	return json.Marshal(&c)
}
