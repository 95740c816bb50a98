package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/control"
)

func defaultKeyPath() string { return filepath.Join(control.Home(), "node.key") }

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "keygen", "[--out FILE]",
		"Writes a new Ed25519 node key (PKCS #8 PEM, mode 0600) and prints its node ID.\nRefuses to overwrite an existing file.")
	out := fs.String("out", defaultKeyPath(), "key file to write")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	k, err := mycelium.GenerateKey()
	if err != nil {
		return err
	}
	if err := mycelium.WriteKeyFile(*out, k); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.ID())
	return nil
}

func runID(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "id", "[--key FILE]", "Prints the node ID of a key file.")
	keyPath := fs.String("key", defaultKeyPath(), "key file")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	k, err := mycelium.LoadKeyFile(*keyPath)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.ID())
	return nil
}
