//go:build linux

package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes TestHelperProcess build a testbed, start a process in
// it with NS.Start and one with NS.Run, print what it made, and then panic
// ("panic") or wait to be killed ("block").
const helperEnv = "NETNS_TEST_HELPER"

var helperLine = regexp.MustCompile(`HELPER prefix=(\S+) pid=(\d+) runpid=(\d+)`)

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("runs only as a child of TestCleanupAfterPanic and TestReapAfterKill")
	}
	tb := New(t)
	r := tb.AddNAT("nat", Masquerade)
	h := r.AddHost("h")
	p := h.Start(h.Command(context.Background(), "sleep", "1000"))
	go h.Run(context.Background(), "sleep", "1001")
	// The Run process is the namespace's other one.
	runPid := 0
	for deadline := time.Now().Add(waitLimit); runPid == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the process of NS.Run did not appear in %s", h.Name)
		}
		out, err := ipNetns("pids", h.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(out) {
			if pid, _ := strconv.Atoi(f); pid != p.Pid() {
				runPid = pid
			}
		}
	}
	fmt.Printf("HELPER prefix=%s pid=%d runpid=%d\n", tb.prefix, p.Pid(), runPid)
	switch mode {
	case "panic":
		panic("deliberate panic with a testbed up")
	case "block":
		io.Copy(io.Discard, os.Stdin) // until killed
	}
}

// helper starts this test binary as TestHelperProcess in mode.
func helper(t *testing.T, mode string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	// command: should this test process die, the helper dies too.
	cmd := command(context.Background(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin, bufio.NewReader(stdout)
}

// readHelper reads the helper's output up to its HELPER line: the prefix of
// its testbed's names, and the processes it started with NS.Start (pid) and
// NS.Run (runPid).
func readHelper(t *testing.T, out *bufio.Reader) (prefix string, pid, runPid int, seen string) {
	t.Helper()
	var b strings.Builder
	for {
		line, err := out.ReadString('\n')
		b.WriteString(line)
		if m := helperLine.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[2])
			runPid, _ := strconv.Atoi(m[3])
			return m[1], pid, runPid, b.String()
		}
		if err != nil {
			t.Fatalf("helper ended (%v) without its HELPER line:\n%s", err, b.String())
		}
	}
}

// ours lists the namespaces whose names start with prefix.
func ours(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := ipNetns("list")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// waitGone waits, with a pidfd, until process pid has exited.
func waitGone(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("process %d still runs after %v", pid, timeout)
		}
		return nil
	}
}

// TestCleanupAfterPanic: a test that panics with a testbed up still loses
// every namespace and process the testbed made.
func TestCleanupAfterPanic(t *testing.T) {
	New(t) // only for its skip conditions
	cmd, _, out := helper(t, "panic")
	prefix, pid, runPid, seen := readHelper(t, out)
	rest, _ := io.ReadAll(out)
	err := cmd.Wait()
	if err == nil || !strings.Contains(string(rest), "deliberate panic") {
		t.Fatalf("helper: %v, want it to fail with the panic; output:\n%s%s", err, seen, rest)
	}
	if left := ours(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after the panic: %v\n%s%s", left, seen, rest)
	}
	if err := waitGone(pid, 0); err != nil {
		t.Errorf("the process started in the testbed survived the panic: %v", err)
	}
	if err := waitGone(runPid, waitLimit); err != nil {
		t.Errorf("the process run in the testbed survived the panic: %v", err)
	}
}

// TestReapAfterKill: a test process killed outright (as by a timeout) runs
// no cleanup. Its processes, started by NS.Start or NS.Run, die with it
// (Pdeathsig), and the next New removes the namespaces it left.
func TestReapAfterKill(t *testing.T) {
	New(t) // only for its skip conditions
	cmd, _, out := helper(t, "block")
	prefix, pid, runPid, seen := readHelper(t, out)
	cmd.Process.Kill()
	cmd.Wait()
	if err := waitGone(pid, waitLimit); err != nil {
		t.Errorf("the process started in the killed test's testbed: %v", err)
	}
	if err := waitGone(runPid, waitLimit); err != nil {
		t.Errorf("the process run in the killed test's testbed: %v", err)
	}
	left := ours(t, prefix)
	if len(left) == 0 {
		// Another test process's New may have reaped them first.
		t.Logf("the killed helper's namespaces were already reaped; output:\n%s", seen)
	}
	New(t)
	if left := ours(t, prefix); len(left) > 0 {
		t.Fatalf("New left the killed test's namespaces: %v", left)
	}
	if dirs, _ := filepathGlob(prefix); len(dirs) > 0 {
		t.Fatalf("New left the killed test's directories: %v", dirs)
	}
}

func filepathGlob(prefix string) ([]string, error) {
	entries, err := os.ReadDir(os.TempDir())
	var dirs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, err
}
