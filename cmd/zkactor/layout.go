package main

import (
	"strconv"
	"strings"
)

// The names of zkactor's znodes. The rules are those of package global
// (candidates, global/queue.go), package cluster (registrations,
// cluster/registry.go) and cmd/boss (jobs, cmd/boss/jobs.go); they are
// unexported there, so the few lines that check them are copied here.
// Versions that stand together must agree on them anyway.
const (
	nodesDir    = "nodes"
	servicesDir = "services"
	globalsDir  = "globals"
	jobsDir     = "jobs"

	candidatePrefix = "_c_"
	candidateMark   = "-c-"
	guidLen         = 32
	sequenceLen     = 10

	// A registration is <node-id>-<the first 8 bytes of a SHA-256, in hex>.
	registrationHashLen = 16

	jobPrefix      = "job-"
	maxJobTokenLen = 64
)

// parseCandidate returns the sequence number of a candidate znode name,
// _c_<32 hex>-c-<10 digits>; ok is false for any other name (global/queue.go).
func parseCandidate(name string) (seq int64, ok bool) {
	if len(name) != len(candidatePrefix)+guidLen+len(candidateMark)+sequenceLen ||
		!strings.HasPrefix(name, candidatePrefix) {
		return 0, false
	}
	guid := name[len(candidatePrefix) : len(candidatePrefix)+guidLen]
	rest := name[len(candidatePrefix)+guidLen:]
	if !strings.HasPrefix(rest, candidateMark) || !isLowerHex(guid) {
		return 0, false
	}
	digits := rest[len(candidateMark):]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	return seq, err == nil
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

// jobToken returns the token of a job znode name, job-<token> with 1 to 64
// letters, digits, '-' or '_' (cmd/boss/jobs.go).
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
