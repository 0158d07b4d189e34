package global

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// installedStaging is a stand-in installed in an actor system of its own,
// which stops with the test.
func installedStaging(t *testing.T) (*actor.ActorSystem, *actor.PID, *staging) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	pid := actor.NewPID(system.Address(), "global-test")
	st := newStaging(system, pid, quiet)
	if !st.install() {
		t.Fatal("install")
	}
	return system, pid, st
}

// What a term's end leaves in the stand-in (a stop or a poison pill meant
// for the actor that is gone, come back as dead letters) must not end the
// next term; ordinary messages wait for it. No ZooKeeper needed.
func TestStagingKeepsMessagesButNotStops(t *testing.T) {
	system, pid, st := installedStaging(t)
	st.SendUserMessage(pid, "before")
	st.SendUserMessage(pid, &actor.PoisonPill{})
	st.SendSystemMessage(pid, &actor.Stop{})
	st.SendUserMessage(pid, "after")

	got := make(chan string, 10)
	stopped := make(chan struct{})
	p, err := st.start(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case string:
			got <- m
		case *actor.Stopping:
			close(stopped)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"before", "after"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-stopped:
			t.Fatal("the next term's actor was stopped by a leftover stop or poison pill")
		case <-time.After(5 * time.Second):
			t.Fatalf("%q never arrived", want)
		}
	}
	// Once running, a poison pill sent to the global does stop it.
	system.Root.Send(p, &actor.PoisonPill{})
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("a poison pill sent to the running global did not stop it")
	}
	st.remove()
}

// At a term's end the stand-in takes the PID back before the actor stops:
// what senders send while the actor drains waits for the next term, and a
// poison pill that comes back as a dead letter (wrapped by the rescue) does
// not end it.
func TestStagingAtTheEndOfATerm(t *testing.T) {
	system, pid, st := installedStaging(t)
	release := make(chan struct{})
	firstStopped := make(chan struct{})
	p, err := st.start(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case string:
			<-release // a handler at work when the term ends
		case *actor.Stopped:
			close(firstStopped)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	system.Root.Send(p, "slow")
	proc := st.detach()
	if proc == nil {
		t.Fatal("detach found no running actor")
	}
	proc.SendUserMessage(p, &actor.PoisonPill{})
	for i := range 10 { // senders that look the PID up afresh, as remote ones do
		system.Root.Send(actor.NewPID(pid.Address, pid.Id), i)
	}
	close(release)
	<-firstStopped
	system.Root.Poison(actor.NewPID(pid.Address, pid.Id)) // a late pill, perhaps a dead letter
	st.reinstall()

	got := make(chan int, 20)
	stopping := make(chan struct{})
	if _, err := st.start(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case int:
			got <- m
		case *actor.Stopping:
			close(stopping)
		}
	})); err != nil {
		t.Fatal(err)
	}
	for want := range 10 {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %d, want %d", m, want)
			}
		case <-stopping:
			t.Fatal("a leftover poison pill ended the next term")
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d was lost", want)
		}
	}
	st.remove()
}
