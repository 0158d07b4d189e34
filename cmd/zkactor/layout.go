package main

import (
	"strconv"
	"strings"

	"github.com/zkactor/zkactor/cluster"
)

// The names of zkactor's znodes. The rules are those of package global
// (candidates, global/queue.go), package cluster (registrations,
// cluster/registry.go), package provider (activations), the recipes
// (recipes/workqueue/names.go, recipes/lock/queue.go,
// recipes/barrier/queue.go, recipes/rolematch, recipes/config) and
// cmd/boss (job keys, cmd/boss/jobs.go); they are unexported there, so
// the few lines that check them are copied here. Versions that stand
// together must agree on them anyway.
const (
	nodesDir       = "nodes"
	servicesDir    = "services"
	globalsDir     = "globals"
	activationsDir = "activations" // package provider
	queuesDir      = "queues"      // recipes/workqueue
	rolesDir       = "roles"       // recipes/rolematch
	locksDir       = "locks"       // recipes/lock
	barriersDir    = "barriers"    // recipes/barrier
	configDir      = "config"      // recipes/config

	// A queue's parts (recipes/workqueue).
	itemsDir  = "items"
	claimsDir = "claims"
	keysDir   = "keys"
	// The line of waiting Takes (recipes/workqueue/wait.go): ephemeral
	// sequential <token>-<seq>, named as items are.
	waitersDir = "waiters"
	// The queue cmd/boss keeps its jobs in (cmd/boss/jobs.go).
	jobsQueue = "jobs"
	// A role set's parts (recipes/rolematch).
	specsDir       = "specs"
	assignmentsDir = "assignments"
	applicantsDir  = "applicants"
	// A service's config overrides (recipes/config).
	overridesDir = "overrides"
	// The znode that opens a barrier, beside its participants.
	readyName = "ready"

	candidatePrefix = "_c_"
	candidateMark   = "-c-"
	waiterMark      = "-l-" // a lock's waiter
	participantMark = "-p-" // a barrier's participant
	guidLen         = 32
	sequenceLen     = 10

	// An item's key is at most this long (workqueue.MaxKeyLength).
	maxItemKeyLen = 128

	// A registration is <node-id>-<the first 8 bytes of a SHA-256, in hex>.
	registrationHashLen = 16

	jobPrefix      = "job-"
	maxJobTokenLen = 64
)

// parseCandidate returns the sequence number of a candidate znode name,
// _c_<32 hex>-c-<10 digits>; ok is false for any other name (global/queue.go).
func parseCandidate(name string) (seq int64, ok bool) { return parseProtected(name, candidateMark) }

// parseProtected returns the sequence number of a protected sequential
// znode name, _c_<32 hex><mark><10 digits>: a candidate (-c-), a lock's
// waiter (-l-), a barrier's participant (-p-). ok is false for any other
// name.
func parseProtected(name, mark string) (seq int64, ok bool) {
	if len(name) != len(candidatePrefix)+guidLen+len(mark)+sequenceLen ||
		!strings.HasPrefix(name, candidatePrefix) {
		return 0, false
	}
	guid := name[len(candidatePrefix) : len(candidatePrefix)+guidLen]
	rest := name[len(candidatePrefix)+guidLen:]
	if !strings.HasPrefix(rest, mark) || !isLowerHex(guid) {
		return 0, false
	}
	return parseSequence(rest[len(mark):])
}

func parseSequence(digits string) (int64, bool) {
	if len(digits) != sequenceLen {
		return 0, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	return seq, err == nil
}

// parseItem splits a work queue item's (or claim's) znode name,
// <key>-<10 digits>, into its key and sequence number; ok is false for any
// other name (recipes/workqueue/names.go).
func parseItem(name string) (key string, seq int64, ok bool) {
	i := len(name) - sequenceLen - 1
	if i < 1 || name[i] != '-' {
		return "", 0, false
	}
	key = name[:i]
	if seq, ok = parseSequence(name[i+1:]); !ok || !validItemKey(key) {
		return "", 0, false
	}
	return key, seq, true
}

// validItemKey reports whether key may be a work queue item's key: a name
// cluster.ValidateName accepts, at most maxItemKeyLen bytes.
func validItemKey(key string) bool {
	return cluster.ValidateName(key) == nil && len(key) <= maxItemKeyLen
}

// registrationNode returns the node id a registration znode name starts
// with, <node-id>-<16 hex>; ok is false for any other name.
func registrationNode(name string) (nodeID string, ok bool) {
	i := len(name) - registrationHashLen - 1
	if i < 1 || name[i] != '-' || !isLowerHex(name[i+1:]) {
		return "", false
	}
	return name[:i], true
}

// jobToken returns the token of a job's id, job-<token> with 1 to 64
// letters, digits, '-' or '_' (cmd/boss/jobs.go): the key of the job's
// item in the queue "jobs", and the name of the old job store's znodes.
func jobToken(name string) (string, bool) {
	token, ok := strings.CutPrefix(name, jobPrefix)
	if !ok || token == "" || len(token) > maxJobTokenLen {
		return "", false
	}
	for _, r := range token {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return "", false
		}
	}
	return token, true
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
