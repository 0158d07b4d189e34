// Package boss holds end-to-end tests of cmd/boss: they build the command
// once, run bosses, workers and requestors as real processes against a
// real ZooKeeper (test/zktest), kill them with SIGKILL, and read what they
// print.
package boss
