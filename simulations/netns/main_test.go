//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binEnv names a prebuilt mycelium binary to use instead of building one:
// an absolute path, or one relative to this package's directory (where go
// test runs the test binary).
const binEnv = "MYCELIUM_BIN"

// buildTimeout bounds `go build` of cmd/mycelium.
const buildTimeout = 5 * time.Minute

// buildEnv keeps the build off the network: the module cache already holds
// cmd/mycelium's dependencies (they are this module's, which go test has
// just compiled the test binary against), so anything missing is a reason
// to skip, not to download. GOTOOLCHAIN=local keeps go from fetching a
// toolchain; -buildvcs=false keeps it from running git for a binary nobody
// ships.
var buildEnv = []string{"GOFLAGS=-mod=readonly -buildvcs=false", "GOPROXY=off", "GOTOOLCHAIN=local"}

// build holds the mycelium binary, built (or found through MYCELIUM_BIN)
// once per test process on first use; TestMain removes what was built.
var build struct {
	once sync.Once
	dir  string // temporary directory of a built binary
	bin  string
	skip string // why the tests that need the binary skip
	err  error  // MYCELIUM_BIN is unusable
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// myceliumBinary returns the mycelium binary: $MYCELIUM_BIN if set, else
// cmd/mycelium built once, offline (buildEnv), within buildTimeout, with the
// race detector when this test binary has it. When that build fails, t
// skips, quoting the first line of the build's error.
func myceliumBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv(binEnv); p != "" {
			build.bin, build.err = prebuilt(p)
			return
		}
		build.bin, build.skip = buildMycelium()
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	if build.skip != "" {
		t.Skip(build.skip)
	}
	return build.bin
}

// prebuilt checks that p, from MYCELIUM_BIN, is an executable file, and
// makes it absolute.
func prebuilt(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s=%s: %w", binEnv, p, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%s=%s: %w (a relative path is taken from the package directory, where go test runs)", binEnv, p, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s=%s: %s is not an executable file (mode %v)", binEnv, p, abs, fi.Mode())
	}
	return abs, nil
}

// buildMycelium builds cmd/mycelium into a temporary directory and returns
// the binary, or why it could not.
func buildMycelium() (bin, skip string) {
	// Named like a testbed's directory, so a later run reaps it should this
	// process be killed before TestMain removes it.
	dir, err := os.MkdirTemp("", ownedPrefix()+"bin")
	if err != nil {
		return "", fmt.Sprintf("netns: cannot build cmd/mycelium: %v", err)
	}
	build.dir = dir
	bin = filepath.Join(dir, "mycelium")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/mycelium-net/mycelium/cmd/mycelium")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := command(ctx, "go", args...)
	cmd.Env = append(os.Environ(), buildEnv...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return bin, ""
	}
	why := errorLine(string(out))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = fmt.Sprintf("not done within %v", buildTimeout)
	} else if why == "" {
		why = err.Error()
	}
	var env []string
	for _, kv := range buildEnv {
		if k, v, _ := strings.Cut(kv, "="); strings.Contains(v, " ") {
			kv = k + "=" + strconv.Quote(v)
		}
		env = append(env, kv)
	}
	return "", fmt.Sprintf("netns: cannot build cmd/mycelium offline (%s go %s): %s; set %s to a prebuilt binary to run this test",
		strings.Join(env, " "), strings.Join(args, " "), why, binEnv)
}

// errorLine is the first line of go's output s that says what went wrong:
// the first non-blank one that is not progress ("go: downloading …").
func errorLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "go: downloading ") && !strings.HasPrefix(l, "go: extracting ") && !strings.HasPrefix(l, "go: finding ") {
			return l
		}
	}
	return ""
}
