//go:build linux

package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// build holds the mycelium binary, built once per test process on first
// use and removed by TestMain.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// myceliumBinary builds cmd/mycelium once, with the race detector when this
// test binary has it.
func myceliumBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		// Named like a testbed's directory, so a later run reaps it
		// should this process be killed before TestMain removes it.
		build.dir, build.err = os.MkdirTemp("", ownedPrefix()+"bin")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "mycelium")
		args := []string{"build", "-o", build.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/mycelium-net/mycelium/cmd/mycelium")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go %v: %w\n%s", args, err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}
