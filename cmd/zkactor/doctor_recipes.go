package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
)

// The checks of the parts package provider and the recipes keep under the
// root. Their rules are in each package's documentation; where a record
// must stand beside another (a claim beside its item), the finding is
// confirmed by a second read (see confirm).

// prober reads a znode again after the tree was read.
type prober interface {
	exists(path string) (*zk.Stat, error) // nil, nil when gone
	childNames(path string) ([]string, error)
}

func (c *client) exists(path string) (*zk.Stat, error) {
	ok, stat, err := c.conn.Exists(path)
	if err != nil || !ok {
		return nil, err
	}
	return stat, nil
}

func (c *client) childNames(path string) ([]string, error) {
	names, _, err := c.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return names, err
}

// inconsistent reports z as lacking its counterpart, once a second read
// confirms it: the tree is read one znode at a time, so a claim read before
// a Take's item (or after an Ack's) may look alone. missing reads the
// counterpart now and says whether it is still missing; then z is read
// again: if it is the same znode (same czxid), both held at once, after
// the read of the counterpart, since z existed throughout.
func (d *doctor) inconsistent(z *znode, missing func(prober) (bool, error), format string, args ...any) {
	problem := fmt.Sprintf(format, args...)
	if d.probe != nil {
		gone, err := missing(d.probe)
		var stat *zk.Stat
		if err == nil && gone {
			stat, err = d.probe.exists(z.path)
		}
		switch {
		case err != nil:
			problem += fmt.Sprintf(" (not confirmed: %v)", err)
		case !gone || stat == nil || stat.Czxid != z.stat.Czxid:
			return // it changed meanwhile: the read saw two moments
		}
	}
	d.add(kindInconsistent, z.path, "%s", problem)
}

// absent is a missing function: path does not exist now.
func absent(path string) func(prober) (bool, error) {
	return func(p prober) (bool, error) {
		stat, err := p.exists(path)
		return stat == nil, err
	}
}

// checkPart checks a fixed part of a recipe's directory (items/, specs/,
// overrides/...): persistent, without data.
func (d *doctor) checkPart(z *znode) {
	d.persistent(z)
	if len(z.data) > 0 {
		d.add(kindGarbage, z.path, "%d bytes of data where zkactor stores none", len(z.data))
	}
}

// checkParts checks that dir holds only the parts named.
func (d *doctor) checkParts(dir *znode, what string, parts ...string) {
	for _, z := range dir.children {
		known := false
		for _, p := range parts {
			known = known || z.name == p
		}
		if known {
			d.checkPart(z)
		} else {
			d.add(kindGarbage, z.path, "not part of a %s (%s)", what, strings.Join(parts, ", "))
		}
	}
}

func (d *doctor) ephemeralRecord(z *znode, what, why string) bool {
	if !z.ephemeral() {
		d.add(kindGarbage, z.path, "persistent: %s must be ephemeral, or %s", what, why)
		return false
	}
	return true
}

func (d *doctor) persistentRecord(z *znode, what string) {
	if z.ephemeral() {
		d.add(kindGarbage, z.path, "ephemeral (session %s): %s is persistent, this one goes when that session ends", session(z.stat.EphemeralOwner), what)
	}
}

func (d *doctor) validName(z *znode) {
	if err := cluster.ValidateName(z.name); err != nil {
		d.add(kindGarbage, z.path, "not a name zkactor accepts: %v", err)
	}
}

// checkActivations checks a kind's activations (package provider).
func (d *doctor) checkActivations(dir *znode) {
	for _, z := range dir.children {
		d.leaf(z)
		d.validName(z)
		rec, err := records.Activation(z.data)
		switch {
		case err != nil:
			d.add(kindGarbage, z.path, "%v", err)
		case rec.GetKind() != dir.name || rec.GetIdentity() != z.name:
			d.add(kindGarbage, z.path, "the record activates %s/%s", rec.GetKind(), rec.GetIdentity())
		}
		if d.ephemeralRecord(z, "an activation", "its identity stays activated after its member is gone") {
			d.checkOwner(z)
		}
	}
}

// checkQueue checks a work queue (recipes/workqueue).
func (d *doctor) checkQueue(dir *znode) {
	d.checkDir(dir)
	d.checkParts(dir, "work queue", itemsDir, claimsDir, keysDir, waitersDir)
	for _, z := range dir.child(waitersDir).childList() {
		d.leaf(z)
		if _, _, ok := parseItem(z.name); !ok {
			d.add(kindGarbage, z.path, "not a waiter's name (<token>-<10 digits>): waiting takes pass it over")
		}
		if _, err := decodeQueueWaiter(z.data); err != nil {
			d.add(kindGarbage, z.path, "%v (a waiter keeps its place in line whatever its data)", err)
		}
		if d.ephemeralRecord(z, "a waiter", "it stays in line forever, and once it heads the line no waiting Take watches the items") {
			d.checkLive(z, "a waiting taker")
		}
	}
	items, claims, keys := dir.child(itemsDir), dir.child(claimsDir), dir.child(keysDir)
	keyed := map[string]bool{}
	for _, z := range items.childList() {
		d.leaf(z)
		key, _, ok := parseItem(z.name)
		if !ok {
			d.add(kindGarbage, z.path, "not an item's name (<key>-<10 digits>): takers pass it over")
			continue
		}
		keyed[key] = true
		d.persistentRecord(z, "an item")
		rec, err := decodeItem(z)
		if err != nil {
			d.add(kindGarbage, z.path, "%v", err)
		} else if dir.name == jobsQueue {
			if _, err := decodeJob(key, rec.GetPayload()); err != nil {
				d.add(kindGarbage, z.path, "not a cmd/boss job: %v", err)
			}
		}
		if keys != nil && keys.child(key) == nil {
			d.inconsistent(z, absent(joinPath(keys.path, key)),
				"no key znode %s/%s: a Put with its key queues the payload again instead of finding this item", keysDir, key)
		}
	}
	for _, z := range claims.childList() {
		d.leaf(z)
		if _, _, ok := parseItem(z.name); !ok {
			d.add(kindGarbage, z.path, "not a claim's name (its item's, <key>-<10 digits>)")
		}
		if _, err := decodeClaim(z.data); err != nil {
			d.add(kindGarbage, z.path, "%v (a claim holds its item whatever its data)", err)
		}
		if d.ephemeralRecord(z, "a claim", "it holds its item forever: no taker gets it again") {
			d.checkLive(z, "a claim's taker")
		}
		if items != nil && items.child(z.name) == nil {
			d.inconsistent(z, absent(joinPath(items.path, z.name)),
				"a claim without its item %s/%s", itemsDir, z.name)
		}
	}
	for _, z := range keys.childList() {
		d.leaf(z)
		if !validItemKey(z.name) {
			d.add(kindGarbage, z.path, "not an item key (a name zkactor accepts, at most %d bytes)", maxItemKeyLen)
		}
		d.persistentRecord(z, "a key")
		if len(z.data) > 0 {
			d.add(kindGarbage, z.path, "%d bytes of data where the queue stores none", len(z.data))
		}
		if items != nil && !keyed[z.name] {
			key := z.name
			d.inconsistent(z, func(p prober) (bool, error) {
				names, err := p.childNames(items.path)
				for _, n := range names {
					if k, _, ok := parseItem(n); ok && k == key {
						return false, err
					}
				}
				return true, err
			}, "a key that names no item (the next Put of the key deletes it)")
		}
	}
}

// checkRoleSet checks a role set (recipes/rolematch).
func (d *doctor) checkRoleSet(dir *znode) {
	d.checkDir(dir)
	d.checkParts(dir, "role set", specsDir, assignmentsDir, applicantsDir)
	specs := dir.child(specsDir)
	for _, z := range specs.childList() {
		d.leaf(z)
		d.validName(z)
		d.persistentRecord(z, "a role's spec")
		if rec, err := decodeRole(z); err != nil {
			d.add(kindGarbage, z.path, "%v", err)
		} else if rec.GetName() != "" && rec.GetName() != z.name {
			d.add(kindGarbage, z.path, "the record names role %q", rec.GetName())
		}
	}
	held := map[string]int{}
	for _, z := range dir.child(assignmentsDir).childList() {
		d.leaf(z)
		d.validName(z)
		if rec, err := decodeAssignment(z); err != nil {
			d.add(kindGarbage, z.path, "%v (the role is taken all the same)", err)
		} else {
			held[rec.GetApplicant()]++
			if rec.GetRole() != z.name {
				d.add(kindGarbage, z.path, "the record assigns role %q", rec.GetRole())
			}
		}
		if d.ephemeralRecord(z, "an assignment", "its role is held forever, by nobody once its holder is gone") {
			d.checkOwner(z)
		}
		if specs != nil && specs.child(z.name) == nil {
			d.inconsistent(z, absent(joinPath(specs.path, z.name)),
				"an assignment without a spec: the role was removed and its holder still holds it (its applicant lets go once it hears; if this lasts, the applicant does not watch)")
		}
	}
	for _, z := range dir.child(applicantsDir).childList() {
		d.leaf(z)
		rec, err := decodeApplicant(z)
		switch {
		case err != nil:
			d.add(kindGarbage, z.path, "%v", err)
		case rec.GetId() != z.name:
			d.add(kindGarbage, z.path, "the record names application %q", rec.GetId())
		}
		if n := held[z.name]; err == nil && n > int(rec.GetLimit()) {
			d.add(kindInconsistent, z.path, "holds %d roles, over its limit of %d", n, rec.GetLimit())
		}
		if d.ephemeralRecord(z, "an application", "it outlives its applicant") {
			d.checkOwner(z)
		}
	}
}

// checkLock checks a lock's waiters (recipes/lock).
func (d *doctor) checkLock(dir *znode) {
	d.checkDir(dir)
	for _, z := range dir.children {
		d.leaf(z)
		if _, ok := parseProtected(z.name, waiterMark); !ok {
			d.add(kindGarbage, z.path, "not a waiter's name (_c_<32 hex digits>-l-<10 digits>): the lock passes it over")
			continue
		}
		if !z.ephemeral() {
			d.add(kindGarbage, z.path, "persistent: the lock passes it over (only ephemeral waiters queue)")
			continue
		}
		if rec, err := decodeWaiter(z); err != nil {
			d.add(kindGarbage, z.path, "%v (it queues all the same)", err)
		} else if rec.GetName() != dir.name {
			d.add(kindGarbage, z.path, "the record waits for lock %q", rec.GetName())
		}
		d.checkLive(z, "a waiter")
	}
}

// checkBarrier checks a barrier's ready znode and participants
// (recipes/barrier).
func (d *doctor) checkBarrier(dir *znode) {
	d.checkDir(dir)
	for _, z := range dir.children {
		d.leaf(z)
		if z.name == readyName {
			d.persistentRecord(z, "ready")
			if _, err := decodeReady(z); err != nil {
				d.add(kindGarbage, z.path, "%v", err)
			}
			continue
		}
		if _, ok := parseProtected(z.name, participantMark); !ok {
			d.add(kindGarbage, z.path, "not a participant's name (_c_<32 hex digits>-p-<10 digits>) nor ready: the barrier passes it over")
			continue
		}
		if !z.ephemeral() {
			d.add(kindGarbage, z.path, "persistent: Enter and Leave pass it over (only ephemeral participants count)")
			continue
		}
		if rec, err := decodeParticipant(z); err != nil {
			d.add(kindGarbage, z.path, "%v (it counts all the same)", err)
		} else if rec.GetName() != dir.name {
			d.add(kindGarbage, z.path, "the record enters barrier %q", rec.GetName())
		}
		d.checkLive(z, "a participant")
	}
}

// checkConfig checks a service's config record and its overrides
// (recipes/config).
func (d *doctor) checkConfig(svc *znode) {
	d.validName(svc)
	d.persistentRecord(svc, "a config record")
	if _, err := decodeConfig(svc); err != nil {
		d.add(kindGarbage, svc.path, "%v", err)
	}
	d.checkParts(svc, "service's config", overridesDir)
	for _, o := range svc.child(overridesDir).childList() {
		d.leaf(o)
		d.validName(o)
		d.persistentRecord(o, "an override")
		if _, err := decodeConfig(o); err != nil {
			d.add(kindGarbage, o.path, "%v", err)
		}
	}
}
