package config

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
)

// Set writes values as the config record of service if the record is at
// expectedVersion (Absent: it must not exist yet, and is created), and
// returns the record's new version. values are validated first (see
// ParseJSON); nil is the empty object. Another version is a *ConflictError
// (errors.Is ErrConflict) carrying the current one, and nothing is written.
// AnyVersion writes unconditionally.
//
// A write whose reply was lost (the connection broke) is sent again once
// the client has reconnected, within ctx. If the first one was applied,
// the second meets its own write as a conflict: the record is read back,
// and if it holds this call's write (its write id), the call succeeds with
// that version. Only when another writer changed the record again before
// the read back does such a call report ErrConflict for a write that was
// applied. Any error other than ErrConflict, ErrInvalid or
// cluster.ErrTooLarge leaves the outcome unknown (Get tells).
func (st *Store) Set(ctx context.Context, service string, values *structpb.Struct, expectedVersion int32) (int32, error) {
	if err := validNames("set", service, "", false); err != nil {
		return 0, err
	}
	v, err := st.write(ctx, st.ServicePath(service), values, expectedVersion, st.createService(service))
	if err != nil {
		return 0, fmt.Errorf("zkactor: config set %q: %w", service, err)
	}
	return v, nil
}

// SetOverride is Set for the override of one process of service. The
// service must have a config record (else ErrNoService). The override
// outlives the process: it stays until DeleteOverride.
func (st *Store) SetOverride(ctx context.Context, service, process string, values *structpb.Struct, expectedVersion int32) (int32, error) {
	if err := validNames("set override", service, process, true); err != nil {
		return 0, err
	}
	v, err := st.write(ctx, st.OverridePath(service, process), values, expectedVersion, st.createOverride(service, process))
	if err != nil {
		return 0, fmt.Errorf("zkactor: config set override %q/%q: %w", service, process, err)
	}
	return v, nil
}

// DeleteOverride deletes the override of process in service if it is at
// expectedVersion (AnyVersion: whatever it is, and an absent override is
// no error). Another version, or no override, is a *ConflictError. A
// delete sent again after its reply was lost that finds the override gone
// counts as done: the first one was applied, or another client deleted it
// in that window, which cannot be told apart.
func (st *Store) DeleteOverride(ctx context.Context, service, process string, expectedVersion int32) error {
	if err := validNames("delete override", service, process, true); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("zkactor: config delete override %q/%q: %w", service, process, err)
	}
	if expectedVersion < AnyVersion || expectedVersion == Absent {
		return fail(fmt.Errorf("%w: expected version %d", ErrInvalid, expectedVersion))
	}
	p := st.OverridePath(service, process)
	version := expectedVersion
	if version == AnyVersion {
		version = -1 // ZooKeeper's "any"
	}
	var attempts atomic.Int32
	err := st.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		attempts.Add(1)
		return c.Delete(p, version)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode) && (expectedVersion == AnyVersion || attempts.Load() > 1):
		return nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrBadVersion):
		return fail(st.conflict(ctx, p, expectedVersion, ""))
	}
	return fail(zkError(err))
}

// write is the compare-and-set write of one config znode; create makes the
// znode (and what must exist around it) with the given data.
func (st *Store) write(ctx context.Context, p string, values *structpb.Struct, expected int32, create func(*zk.Conn, []byte) error) (int32, error) {
	if expected < AnyVersion {
		return 0, fmt.Errorf("%w: expected version %d", ErrInvalid, expected)
	}
	data, writeID, err := encode(values)
	if err != nil {
		return 0, err
	}
	createOp := cluster.Op{Name: "create", Path: p, Idempotent: true}
	setOp := cluster.Op{Name: "set", Path: p, Idempotent: true}
	switch expected {
	case Absent:
		err := st.s.Do(ctx, createOp, func(c *zk.Conn) error { return create(c, data) })
		if errors.Is(err, zk.ErrNodeExists) {
			return st.resolve(ctx, p, expected, writeID)
		}
		if err != nil {
			return 0, zkError(err)
		}
		return 0, nil
	case AnyVersion:
		for {
			var stat *zk.Stat
			err := st.s.Do(ctx, setOp, func(c *zk.Conn) error {
				var err error
				stat, err = c.Set(p, data, -1)
				return err
			})
			if err == nil {
				return stat.Version, nil
			}
			if !errors.Is(err, zk.ErrNoNode) {
				return 0, zkError(err)
			}
			err = st.s.Do(ctx, createOp, func(c *zk.Conn) error { return create(c, data) })
			if err == nil {
				return 0, nil
			}
			if !errors.Is(err, zk.ErrNodeExists) {
				return 0, zkError(err)
			}
			// Created by someone else (or by our own create whose reply was
			// lost): set it.
		}
	default:
		var stat *zk.Stat
		err := st.s.Do(ctx, setOp, func(c *zk.Conn) error {
			var err error
			stat, err = c.Set(p, data, expected)
			return err
		})
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
			return st.resolve(ctx, p, expected, writeID)
		}
		if err != nil {
			return 0, zkError(err)
		}
		return stat.Version, nil
	}
}

// ownWrite is what conflict returns when the record holds this call's own
// write: a write sent again after its reply was lost met itself.
type ownWrite struct{ version int32 }

func (o *ownWrite) Error() string { return fmt.Sprintf("own write at version %d", o.version) }

// resolve is conflict for a write: its own write is success at that
// version.
func (st *Store) resolve(ctx context.Context, p string, expected int32, writeID string) (int32, error) {
	err := st.conflict(ctx, p, expected, writeID)
	var own *ownWrite
	if errors.As(err, &own) {
		return own.version, nil
	}
	return 0, err
}

// conflict reads p after a compare-and-set found another version than
// expected. If p holds the write writeID, the write was this call's own,
// retried after its reply was lost: it returns an *ownWrite. Otherwise it
// returns a *ConflictError with the current version.
func (st *Store) conflict(ctx context.Context, p string, expected int32, writeID string) error {
	var (
		data []byte
		stat *zk.Stat
	)
	err := st.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		data, stat, err = c.Get(p)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return &ConflictError{Path: p, Expected: expected, Current: Absent}
	}
	if err != nil {
		return fmt.Errorf("%w at %s, and reading it back failed: %w", ErrConflict, p, zkError(err))
	}
	if writeID != "" {
		if rec, err := decode(data); err == nil && rec.GetWriteId() == writeID {
			st.log.Debug("a write sent again after its reply was lost met itself", "path", p, "version", stat.Version)
			return &ownWrite{version: stat.Version}
		}
	}
	return &ConflictError{Path: p, Expected: expected, Current: stat.Version}
}

// createService creates a service's record and its overrides directory in
// one multi, making <root>/config (and the root) first if need be.
func (st *Store) createService(service string) func(*zk.Conn, []byte) error {
	svc, ovs, acl := st.ServicePath(service), st.OverridesPath(service), st.s.ACL()
	return func(c *zk.Conn, data []byte) error {
		for attempt := 0; ; attempt++ {
			_, err := c.Multi(
				&zk.CreateRequest{Path: svc, Data: data, Acl: acl},
				&zk.CreateRequest{Path: ovs, Acl: acl},
			)
			if !errors.Is(err, zk.ErrNoNode) || attempt > 0 {
				return err
			}
			_, err = zkutil.CreateWithParents(c, st.root, st.ConfigPath(), nil, 0, acl)
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
		}
	}
}

// createOverride creates an override, and the overrides directory if it is
// missing (the service's record must exist).
func (st *Store) createOverride(service, process string) func(*zk.Conn, []byte) error {
	ovs, ov, acl := st.OverridesPath(service), st.OverridePath(service, process), st.s.ACL()
	return func(c *zk.Conn, data []byte) error {
		for attempt := 0; ; attempt++ {
			_, err := c.Create(ov, data, 0, acl)
			if !errors.Is(err, zk.ErrNoNode) || attempt > 0 {
				return err
			}
			_, err = c.Create(ovs, nil, 0, acl)
			if errors.Is(err, zk.ErrNoNode) {
				return ErrNoService
			}
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
		}
	}
}
