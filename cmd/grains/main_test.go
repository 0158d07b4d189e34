package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsage: no command, an unknown command or a bad flag print the usage
// and exit 2, before anything reaches for ZooKeeper.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"-nosuchflag", "member"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "usage: grains") {
			t.Errorf("run(%q) printed %q, want the usage", args, errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stdout", args, out.String())
		}
	}
}

// TestBadListenAddress: a member with a -listen that is not host:port
// fails with a message naming it.
func TestBadListenAddress(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-listen", "nonsense", "member"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `-listen "nonsense"`) {
		t.Fatalf("stderr %q does not name the bad flag", errOut.String())
	}
}
