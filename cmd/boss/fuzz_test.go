package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// FuzzJobInput feeds a requestor's job as the boss receives it: a Submit
// on the wire (token and text), then the job's words. Whatever the boss
// accepts must be storable in one znode and readable again by the next
// boss; a job's sleep must stay bounded. The seed corpus is in
// testdata/fuzz/FuzzJobInput; run with
//
//	go test -run '^$' -fuzz '^FuzzJobInput$' -fuzztime 1m ./cmd/boss/
func FuzzJobInput(f *testing.F) {
	f.Add("3fa2c1d0a1b2c3d4", "feed the cat")
	f.Add("T", "slow sleep:2s")
	f.Add("tok-en_1", strings.Repeat("x", maxJobText))
	f.Add("tok", strings.Repeat("x", maxJobText+1))
	f.Fuzz(func(t *testing.T, token, text string) {
		submitted, err := proto.Marshal(&bossv1.Submit{Token: token, Text: text})
		if err != nil {
			return // not valid UTF-8: it cannot be sent, so it never arrives
		}
		m := &bossv1.Submit{}
		if err := proto.Unmarshal(submitted, m); err != nil {
			t.Fatalf("a Submit does not decode: %v", err)
		}
		if d := jobSleep(m.Text); d < 0 || d > maxJobSleep {
			t.Fatalf("jobSleep(%q) = %v, outside [0, %v]", m.Text, d, maxJobSleep)
		}
		if err := checkJob(m.Token, m.Text); err != nil {
			return
		}
		if len(m.Text) == 0 || len(m.Text) > maxJobText {
			t.Fatalf("accepted a job of %d bytes", len(m.Text))
		}
		id := jobID(m.Token)
		if strings.ContainsAny(id, "/\x00") || len(id) > len(jobPrefix)+maxTokenLen {
			t.Fatalf("the job's znode name %q is not one short path element", id)
		}
		data, err := proto.Marshal(&bossv1.Job{Text: m.Text, SubmittedAt: timestamppb.Now()})
		if err != nil {
			t.Fatalf("an accepted job does not encode: %v", err)
		}
		if len(data) > maxJobText+64 {
			t.Fatalf("an accepted job encodes to %d bytes", len(data))
		}
		job, err := decodeJob(id, data)
		if err != nil {
			t.Fatalf("the next boss cannot read an accepted job back: %v", err)
		}
		if job.Id != id || job.Text != m.Text {
			t.Fatalf("read back %q %q, want %q %q", job.Id, job.Text, id, m.Text)
		}
	})
}

// FuzzDecodeJob feeds decodeJob a child of <root>/jobs: its name and data,
// which any client may have written. It must never panic, and what it
// accepts must be a job the boss could have accepted, encoded the same
// way. The seed corpus is in testdata/fuzz/FuzzDecodeJob; run with
//
//	go test -run '^$' -fuzz '^FuzzDecodeJob$' -fuzztime 1m ./cmd/boss/
func FuzzDecodeJob(f *testing.F) {
	valid, _ := proto.Marshal(&bossv1.Job{Text: "feed the cat", SubmittedAt: timestamppb.Now()})
	f.Add("job-3fa2c1d0a1b2c3d4", valid)
	f.Add("job-0000000001", valid)
	f.Add("job-garbage", []byte("\xff\xff\xff\xff"))
	f.Add("job-empty", []byte{})
	f.Add("notajob", valid)
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		job, err := decodeJob(name, data)
		if err != nil {
			return
		}
		if job.Id != name {
			t.Fatalf("decoded id %q from znode %q", job.Id, name)
		}
		token := strings.TrimPrefix(name, jobPrefix)
		if err := checkJob(token, job.Text); err != nil {
			t.Fatalf("decoded a job the boss would not accept: %v", err)
		}
		again, err := proto.Marshal(job)
		if err != nil {
			t.Fatalf("a decoded job does not encode: %v", err)
		}
		back := &bossv1.Job{}
		if err := proto.Unmarshal(again, back); err != nil || back.Text != job.Text {
			t.Fatalf("a decoded job does not survive a round trip: %v", err)
		}
	})
}
