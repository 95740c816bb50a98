// Command mycelium runs and controls mycelium nodes.
//
//	mycelium keygen [--out FILE]          write a new key, print its node ID
//	mycelium id [--key FILE]              print the node ID of a key
//	mycelium node [flags]                 run a node in the foreground
//	mycelium relay [flags]                run a node with the relay role
//	mycelium status [--json]              show a running node's state
//	mycelium dial NODEID[@HOST:PORT][/SERVICE]
//	                                      connect stdin/stdout to a remote service
//	mycelium expose SERVICE HOST:PORT     hand a service's streams to a local TCP address
//	mycelium forward LISTEN NODEID[@HOST:PORT]/SERVICE
//	                                      carry a local TCP port to a remote service
//	mycelium demo                         run an in-process network and show it working
//
// Every command takes --help. Exit status is 0 on success, 1 on failure
// (with a one-line reason on stderr) and 2 on bad usage (a one-line reason
// and a hint on stderr; `mycelium` alone prints the usage on stderr). A
// `dial` interrupted by SIGINT or SIGTERM (Ctrl-C) exits 130, like a shell
// job killed by SIGINT, with nothing on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// env is what a command may touch: its streams and the process's context.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"keygen", "write a new node key and print its node ID", runKeygen},
		{"id", "print the node ID of a key file", runID},
		{"node", "run a node in the foreground", runNode},
		{"relay", "run a node with the relay role on", runRelay},
		{"status", "show a running node's ID, addresses and peers", runStatus},
		{"dial", "connect stdin and stdout to a service on a node", runDial},
		{"lookup", "list the nodes that offer a service", runLookup},
		{"peers", "list the nodes the registry knows", runPeers},
		{"circuits", "list the circuits this node builds, carries or ends", runCircuits},
		{"expose", "hand a service's streams to a local TCP address", runExpose},
		{"forward", "carry connections on a local TCP port to a remote service", runForward},
		{"demo", "start an in-process network and show data crossing it", runDemo},
		{"sim", "simulate thousands of nodes' overlay and broadcast, seeded", runSim},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// usageError marks bad usage: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitCode ends a command with a status and no message.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// errInterrupted: the command was interrupted (SIGINT or SIGTERM).
const errInterrupted = exitCode(130)

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		printUsage(e.stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(e.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		}
		var code exitCode
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintf(e.stderr, "mycelium %s: %s\n", c.name, oneLine(err))
		var u *usageError
		if errors.As(err, &u) {
			fmt.Fprintf(e.stderr, "run 'mycelium %s --help' for usage\n", c.name)
			return 2
		}
		return 1
	}
	fmt.Fprintf(e.stderr, "mycelium: unknown command %q\n", args[0])
	printUsage(e.stderr)
	return 2
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "mycelium: reach any node by its public key, whatever NATs sit in between.")
	fmt.Fprintln(w, "\nUsage: mycelium COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mycelium COMMAND --help' for a command's flags.")
}

// flagSet is a command's flags and its usage text.
type flagSet struct {
	*flag.FlagSet
	usage func() // prints the usage to stdout
}

// newFlags returns a flagSet that prints nothing while parsing: parse
// prints the usage to e.stdout for --help, and a bad flag becomes a
// usageError that run reports on one line.
func newFlags(e *env, name, args, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, usage: func() {
		fmt.Fprintf(e.stdout, "Usage: mycelium %s %s\n\n%s\n", name, args, about)
		if hasFlags(fs) {
			fmt.Fprintln(e.stdout, "\nFlags:")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parse parses flags that may come before, between or after the positional
// arguments, and returns the positional ones.
func parse(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.usage()
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(pos []string, min, max int) error {
	switch {
	case len(pos) < min:
		return usagef("too few arguments (got %d, want at least %d)", len(pos), min)
	case len(pos) > max:
		return usagef("too many arguments (got %d, want at most %d): %q", len(pos), max, pos[max:])
	}
	return nil
}
