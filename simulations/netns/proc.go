//go:build linux

package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// waitDelay is how long Wait waits, after a process has exited or its
// context has ended, for output pipes that something it left behind still
// holds open.
const waitDelay = 2 * time.Second

// command is exec.CommandContext for every process the testbed starts, in
// a namespace or not (NS.Command, NS.Run, its own ip, nft, iptables and
// conntrack runs):
//
//   - Setpgid: the process leads its own process group, so killing the
//     group (at cleanup, or when ctx ends) takes what it started with it;
//   - Pdeathsig SIGKILL: the kernel kills it should the test process die
//     without running its cleanup (the panic of -timeout, a SIGKILL);
//   - when ctx ends, SIGKILL goes to the whole group, not only its leader,
//     and WaitDelay keeps Wait from hanging on a pipe a leftover holds.
//
// `ip netns exec` execs the program, and the parent-death signal survives
// execve, so the program itself carries it. Strictly the signal follows the
// OS thread that started the process; Go ends a thread only when a goroutine
// exits locked to it, which in this package happens only if NS.Do cannot
// return a thread to its own namespace.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// killGroup sends SIGKILL to the process group that pid leads.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if err == syscall.ESRCH {
		return os.ErrProcessDone
	}
	return err
}

// Proc is a process the testbed started in a namespace and will kill at
// cleanup. It keeps its combined stdout and stderr for WaitFor and for the
// failure log.
type Proc struct {
	// Name labels the process in logs: "program@role".
	Name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
	err  error         // Wait's result; set before done is closed

	mu      sync.Mutex
	out     []byte
	changed chan struct{} // closed and replaced on every write to out
}

// Start starts cmd (made by Command, on this namespace) and tracks it.
// cmd.Stdout and cmd.Stderr must be unset: the Proc keeps both. The process
// gets its own process group, and SIGKILL should the test process die
// without cleaning up (Command sets both; Start makes sure).
func (n *NS) Start(cmd *exec.Cmd) *Proc {
	n.tb.t.Helper()
	p, err := n.start(cmd)
	if err != nil {
		n.tb.t.Fatalf("netns: %v", err)
	}
	return p
}

func (n *NS) start(cmd *exec.Cmd) (*Proc, error) {
	name := filepath.Base(cmd.Path)
	if len(cmd.Args) > 4 { // ip netns exec NS PROGRAM …
		name = filepath.Base(cmd.Args[4])
	}
	p := &Proc{Name: name + "@" + n.Role, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, fmt.Errorf("start %s: Stdout and Stderr must be unset", p.Name)
	}
	cmd.Stdout, cmd.Stderr = p, p
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	n.tb.mu.Lock()
	n.tb.procs = append(n.tb.procs, p)
	n.tb.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Write appends to the output and wakes WaitFor.
func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

// Output is everything the process has written so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// WaitFor waits until the output so far matches re and returns the match
// and its submatches. It fails when ctx ends or the process exits first;
// the error carries the output.
func (p *Proc) WaitFor(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	for {
		p.mu.Lock()
		out, changed := p.out, p.changed
		p.mu.Unlock()
		if m := re.FindSubmatch(out); m != nil {
			s := make([]string, len(m))
			for i := range m {
				s[i] = string(m[i])
			}
			return s, nil
		}
		select {
		case <-changed:
		case <-p.done:
			// Wait has copied all output by now; look once more.
			if m := re.FindStringSubmatch(p.Output()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.Name, p.err, re, p.Output())
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w waiting for %q; output:\n%s", p.Name, ctx.Err(), re, p.Output())
		}
	}
}

// Pid is the process's ID (the program's own: `ip netns exec` execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns how it did (nil for exit
// status 0), or ctx's error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w waiting for exit", p.Name, ctx.Err())
	}
}

// kill ends the process group, if the process still runs, and reaps it.
func (p *Proc) kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	killGroup(p.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := p.Wait(ctx); ctx.Err() != nil {
		return err
	}
	return nil
}
