package demo

import (
	"context"
	"fmt"
	"io"
	"time"
)

// checkRegistry shows the registry: each node's signed record reaches
// every other node; a service the last node listens on is found by name
// on the first and dialled by node ID alone, the address coming from the
// registry.
func checkRegistry(ctx context.Context, nodes []demoNode) Check {
	ch := Check{Name: "registry"}
	first, last := nodes[0], nodes[len(nodes)-1]
	const service = "demo-lookup"
	ln, err := last.node.Listen(service)
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		known := true
		for _, d := range nodes {
			if d.node.Stats().Known < len(nodes) {
				known = false
			}
		}
		ids := first.node.LookupService(service)
		if known && len(ids) == 1 && ids[0] == last.node.ID() {
			break
		}
		if time.Now().After(deadline) {
			ch.Detail = fmt.Sprintf("after 15 s: %s knows %d of %d records; lookup of %q found %v", first.name, first.node.Stats().Known, len(nodes), service, ids)
			return ch
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := first.node.Dial(ctx, last.node.ID(), service)
	if err != nil {
		ch.Detail = "dial by node ID: " + err.Error()
		return ch
	}
	defer c.Close()
	msg := []byte("found you")
	if _, err := c.Write(msg); err != nil {
		ch.Detail = err.Error()
		return ch
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		ch.Detail = fmt.Sprintf("echo over the dialled stream: %q, %v", got, err)
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("every node holds all %d records; %s found %q on %s by lookup and dialled it by ID", len(nodes), first.name, service, last.name)
	return ch
}
