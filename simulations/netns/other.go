//go:build !linux

package netns

import (
	"runtime"
	"testing"
)

// Testbed is Linux-only; elsewhere New skips. Tests that use more of the
// package than New should carry a linux build tag.
type Testbed struct{}

// New skips t: network namespaces are a Linux feature.
func New(t testing.TB) *Testbed {
	t.Helper()
	t.Skipf("netns: network namespaces need Linux (this is %s)", runtime.GOOS)
	return nil
}
