package leakcheck

import (
	"testing"
	"time"
)

// fakeT records errors instead of failing.
type fakeT struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) runCleanups() {
	for _, fn := range f.cleanups {
		fn()
	}
}

func TestCheckCatchesLeak(t *testing.T) {
	f := &fakeT{TB: t}
	check(f, 50*time.Millisecond)
	stop := make(chan struct{})
	go func() { <-stop }()
	f.runCleanups()
	close(stop)
	if !f.failed {
		t.Fatal("a goroutine left running was not reported")
	}
}

func TestCheckPassesClean(t *testing.T) {
	f := &fakeT{TB: t}
	Check(f)
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	f.runCleanups()
	if f.failed {
		t.Fatal("reported a leak where none was")
	}
}
