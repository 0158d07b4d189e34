package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestGetMergesServiceAndOverride(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	ctx := ctxT(t)

	// Nothing written yet: the empty config, both parts absent.
	cfg, err := n.store.Get(ctx, "billing", "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServiceRecord.Exists || cfg.Override.Exists || jsonOf(cfg.Values) != `{}` ||
		cfg.ServiceRecord.Version != config.Absent || cfg.Override.Version != config.Absent {
		t.Fatalf("Get before any write = %v", cfg)
	}

	v, err := n.store.Set(ctx, "billing", values(t, `{"db":{"host":"a","port":5432},"debug":true,"zones":["x","y"]}`), config.Absent)
	if err != nil || v != 0 {
		t.Fatalf("Set(Absent) = %d, %v; want version 0", v, err)
	}
	ov, err := n.store.SetOverride(ctx, "billing", "worker-1", values(t, `{"db":{"host":"b"},"debug":null,"zones":["z"]}`), config.Absent)
	if err != nil || ov != 0 {
		t.Fatalf("SetOverride(Absent) = %d, %v; want version 0", ov, err)
	}

	cfg, err = n.store.Get(ctx, "billing", "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(cfg.Values), `{"db":{"host":"b","port":5432},"zones":["z"]}`; got != want {
		t.Errorf("merged = %s, want %s", got, want)
	}
	if !cfg.ServiceRecord.Exists || cfg.ServiceRecord.Version != 0 || !cfg.Override.Exists || cfg.Override.Version != 0 {
		t.Errorf("parts = %v / %v; want both at version 0", cfg.ServiceRecord, cfg.Override)
	}
	if cfg.Revision != max(cfg.ServiceRecord.Revision, cfg.Override.Revision) || cfg.Override.Revision <= cfg.ServiceRecord.Revision {
		t.Errorf("revisions: config %d, service %d, override %d", cfg.Revision, cfg.ServiceRecord.Revision, cfg.Override.Revision)
	}
	if got := jsonOf(cfg.Override.Values); got != `{"db":{"host":"b"},"debug":null,"zones":["z"]}` {
		t.Errorf("override part = %s", got)
	}
	// Another process has no override; "" reads the service alone.
	for _, process := range []string{"worker-2", ""} {
		cfg, err := n.store.Get(ctx, "billing", process)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jsonOf(cfg.Values), `{"db":{"host":"a","port":5432},"debug":true,"zones":["x","y"]}`; got != want || cfg.Override.Exists {
			t.Errorf("Get(billing, %q) = %s (override %v), want the service's %s", process, got, cfg.Override, want)
		}
	}
}

func TestCompareAndSet(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	ctx := ctxT(t)

	conflict := func(err error, current int32) {
		t.Helper()
		var ce *config.ConflictError
		if !errors.Is(err, config.ErrConflict) || !errors.As(err, &ce) || ce.Current != current {
			t.Fatalf("err = %v; want a conflict at version %d", err, current)
		}
	}
	if _, err := n.store.Set(ctx, "svc", values(t, `{"n":0}`), 0); true {
		conflict(err, config.Absent) // nothing to update
	}
	if _, err := n.store.Set(ctx, "svc", values(t, `{"n":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	_, err := n.store.Set(ctx, "svc", values(t, `{"n":2}`), config.Absent)
	conflict(err, 0)
	if !strings.Contains(err.Error(), "is at version 0") {
		t.Errorf("the conflict does not mention the current version: %v", err)
	}
	if v, err := n.store.Set(ctx, "svc", values(t, `{"n":3}`), 0); err != nil || v != 1 {
		t.Fatalf("Set at 0 = %d, %v; want 1", v, err)
	}
	_, err = n.store.Set(ctx, "svc", values(t, `{"n":4}`), 0)
	conflict(err, 1)
	if v, err := n.store.Set(ctx, "svc", values(t, `{"n":5}`), config.AnyVersion); err != nil || v != 2 {
		t.Fatalf("Set at AnyVersion = %d, %v; want 2", v, err)
	}
	if cfg, err := n.store.Get(ctx, "svc", ""); err != nil || jsonOf(cfg.Values) != `{"n":5}` || cfg.ServiceRecord.Version != 2 {
		t.Fatalf("Get = %v, %v; want n=5 at version 2 (the refused writes wrote nothing)", cfg, err)
	}

	// Overrides: of a service without a record, none.
	if _, err := n.store.SetOverride(ctx, "nosvc", "p", values(t, `{}`), config.Absent); !errors.Is(err, config.ErrNoService) {
		t.Errorf("SetOverride without a service record = %v, want ErrNoService", err)
	}
	if _, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"n":6}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	_, err = n.store.SetOverride(ctx, "svc", "p", values(t, `{"n":7}`), 3)
	conflict(err, 0)
	if v, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"n":8}`), 0); err != nil || v != 1 {
		t.Fatalf("SetOverride at 0 = %d, %v", v, err)
	}
	conflict(n.store.DeleteOverride(ctx, "svc", "p", 0), 1)
	if err := n.store.DeleteOverride(ctx, "svc", "p", 1); err != nil {
		t.Fatal(err)
	}
	conflict(n.store.DeleteOverride(ctx, "svc", "p", 1), config.Absent)
	if err := n.store.DeleteOverride(ctx, "svc", "p", config.AnyVersion); err != nil {
		t.Errorf("DeleteOverride(AnyVersion) of an absent override = %v", err)
	}
	// AnyVersion creates an absent override too.
	if v, err := n.store.SetOverride(ctx, "svc", "q", values(t, `{"n":9}`), config.AnyVersion); err != nil || v != 0 {
		t.Fatalf("SetOverride(AnyVersion) of an absent override = %d, %v", v, err)
	}
	if err := n.store.DeleteOverride(ctx, "svc", "q", config.Absent); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("DeleteOverride(Absent) = %v, want ErrInvalid", err)
	}
	if _, err := n.store.Set(ctx, "svc", values(t, `{}`), -3); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("Set at version -3 = %v, want ErrInvalid", err)
	}
}

// Invalid records and bad names are refused before any request: nothing
// appears in ZooKeeper.
func TestInvalidWritesWriteNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	raw := zkc.Connect(t)
	ctx := ctxT(t)

	nan := &structpb.Struct{Fields: map[string]*structpb.Value{"a": {}}}
	huge := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue(strings.Repeat("x", config.MaxRecordSize))}}
	for _, v := range []*structpb.Struct{nan, huge} {
		if _, err := n.store.Set(ctx, "svc", v, config.Absent); !errors.Is(err, config.ErrInvalid) && !errors.Is(err, cluster.ErrTooLarge) {
			t.Errorf("Set of an invalid record = %v", err)
		}
	}
	for _, bad := range []string{"", "a/b", "..", "x\x00y", strings.Repeat("n", cluster.MaxNameLength+1)} {
		checks := map[string]error{}
		_, checks["Set"] = n.store.Set(ctx, bad, nil, config.Absent)
		_, checks["SetOverride service"] = n.store.SetOverride(ctx, bad, "p", nil, config.Absent)
		_, checks["SetOverride process"] = n.store.SetOverride(ctx, "svc", bad, nil, config.Absent)
		checks["DeleteOverride"] = n.store.DeleteOverride(ctx, "svc", bad, config.AnyVersion)
		_, checks["Get"] = n.store.Get(ctx, bad, "")
		if bad != "" { // process "" reads the service's record alone
			_, checks["Get process"] = n.store.Get(ctx, "svc", bad)
			_, checks["Subscribe"] = n.store.Subscribe(ctx, "svc", bad, newRecorder(n).pid)
		}
		_, checks["Subscribe service"] = n.store.Subscribe(ctx, bad, "", newRecorder(n).pid)
		for call, err := range checks {
			if !errors.Is(err, cluster.ErrBadName) {
				t.Errorf("%s with name %q = %v, want ErrBadName", call, bad, err)
			}
		}
	}
	if _, err := config.NewStore(n.system, n.session, config.Options{Root: "relative"}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("NewStore with a relative root = %v, want ErrBadName", err)
	}
	if ok, _, err := raw.Exists(root); err != nil || ok {
		t.Errorf("%s exists = %v, %v: refused writes made znodes", root, ok, err)
	}
}

// A znode whose ACL refuses this client: a clear error, nothing changed.
func TestACLRefusal(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	owner := zkc.Connect(t)
	ctx := ctxT(t)
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	readOnly := append(zk.DigestACL(zk.PermAll, "owner", "secret"), zk.WorldACL(zk.PermRead)...)
	secret := zk.DigestACL(zk.PermAll, "owner", "secret")
	if _, err := n.store.Set(ctx, "open", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err) // makes <root>/config
	}
	cfgPath := n.store.ConfigPath()
	for _, z := range []struct {
		path string
		acl  []zk.ACL
	}{
		{cfgPath + "/locked", readOnly},
		{cfgPath + "/locked/overrides", readOnly},
		{cfgPath + "/hidden", secret},
	} {
		if _, err := owner.Create(z.path, nil, 0, z.acl); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := n.store.Set(ctx, "locked", values(t, `{"a":2}`), 0); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("Set on a read-only record = %v, want ErrNotAllowed", err)
	}
	if _, err := n.store.SetOverride(ctx, "locked", "p", values(t, `{"a":2}`), config.Absent); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("SetOverride under a read-only service = %v, want ErrNotAllowed", err)
	}
	if cfg, err := n.store.Get(ctx, "locked", "p"); err != nil || !cfg.ServiceRecord.Exists || cfg.ServiceRecord.Version != 0 {
		t.Errorf("Get of a readable record = %v, %v", cfg, err)
	}
	if _, err := n.store.Get(ctx, "hidden", ""); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("Get of an unreadable record = %v, want ErrNotAllowed", err)
	}
	r := newRecorder(n)
	if _, err := n.store.Subscribe(ctx, "hidden", "", r.pid); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("Subscribe to an unreadable record = %v, want ErrNotAllowed", err)
	}
	if config.Subscriptions(n.store) != 0 {
		t.Errorf("a refused Subscribe left a subscription behind")
	}
}
