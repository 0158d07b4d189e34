package cluster_test

import (
	"context"
	"testing"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

// Config reports what the session was dialed with, defaults filled in, and
// hands out copies: a caller that changes them changes nothing of the
// session's.
func TestConfigIsACopyWithDefaults(t *testing.T) {
	zkc := zktest.Shared(t)
	servers := zkc.Addrs()
	s, err := cluster.Dial(context.Background(), cluster.Config{
		Servers: servers, Logger: testLogger(),
		Auth: &cluster.DigestAuth{User: "u", Password: "p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := s.Config()
	if len(cfg.Servers) != len(servers) || cfg.Servers[0] != servers[0] {
		t.Errorf("Servers %v, want %v", cfg.Servers, servers)
	}
	if cfg.SessionTimeout != cluster.DefaultSessionTimeout || cfg.RequestTimeout != cluster.DefaultRequestTimeout {
		t.Errorf("timeouts %v and %v, want the defaults", cfg.SessionTimeout, cfg.RequestTimeout)
	}
	if cfg.Auth == nil || cfg.Auth.User != "u" || cfg.Auth.Password != "p" {
		t.Fatalf("Auth %+v, want u:p", cfg.Auth)
	}
	cfg.Servers[0], cfg.Auth.User = "elsewhere:1", "other"
	if again := s.Config(); again.Servers[0] != servers[0] || again.Auth.User != "u" {
		t.Errorf("changing a returned Config changed the session's: %v %+v", again.Servers, again.Auth)
	}
}
