// Package leakcheck fails a test that leaves goroutines behind.
//
// Call Check(t) at the top of a test that starts nodes. At cleanup it
// compares the goroutines then running with those at the start. Goroutines
// still winding down after Close (quic-go's connection loops end a moment
// after the transport closes) are given until Grace to exit: the check polls,
// it never sleeps a fixed time to synchronise.
package leakcheck

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Grace is how long leftover goroutines get to exit.
const Grace = 10 * time.Second

// Check registers a cleanup that fails t if goroutines started during the
// test are still running Grace after it ends. Register it before the
// cleanups that close nodes, so it runs after them.
func Check(t testing.TB) {
	t.Helper()
	check(t, Grace)
}

func check(t testing.TB, grace time.Duration) {
	before := ids(stacks())
	t.Cleanup(func() {
		var leaked []string
		deadline := time.Now().Add(grace)
		for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
			leaked = leaked[:0]
			for _, g := range stacks() {
				if !before[goid(g)] && !ignored(g) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(wait) // polling for exit, bounded by Grace
		}
		if len(leaked) > 0 {
			t.Errorf("leakcheck: %d goroutines still running %v after the test:\n\n%s", len(leaked), grace, strings.Join(leaked, "\n\n"))
		}
	})
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := strings.Split(string(buf), "\n\n")
	return slices.DeleteFunc(gs, func(g string) bool { return strings.TrimSpace(g) == "" })
}

func goid(g string) string {
	// "goroutine 42 [running]:"
	f := strings.Fields(g)
	if len(f) < 2 {
		return g
	}
	return f[1]
}

func ids(gs []string) map[string]bool {
	m := make(map[string]bool, len(gs))
	for _, g := range gs {
		m[goid(g)] = true
	}
	return m
}

// ignored lists goroutines that belong to the runtime or the test
// framework, not to the code under test.
func ignored(g string) bool {
	for _, s := range []string{
		"testing.tRunner(",      // a test's own goroutine, and the one running cleanups
		"testing.(*T).Run(",     // a parent test waiting for subtests
		"testing.(*M).",         // the test main
		"testing.runFuzzing(",   // the fuzz engine
		"os/signal.signal_recv", // signal.Notify's reader, process-wide
		"runtime.ensureSigM",
	} {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}
