package demo

import (
	"context"
	"fmt"
	"time"
)

// checkBroadcast shows the overlay: the demo nodes joined a HyParView
// overlay through n0 when they bootstrapped; a message one of them
// broadcasts with Plumtree reaches every node's subscription once.
func checkBroadcast(ctx context.Context, nodes []demoNode) Check {
	ch := Check{Name: "broadcast"}
	subs := make([]interface {
		Close()
	}, 0, len(nodes))
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	results := make(chan string, len(nodes))
	for _, d := range nodes {
		s, err := d.node.Subscribe("demo")
		if err != nil {
			ch.Detail = err.Error()
			return ch
		}
		subs = append(subs, s)
		go func() {
			for m := range s.C {
				results <- fmt.Sprintf("%s:%d", d.name, m.Hops)
			}
		}()
	}
	// The overlay forms as the joins' random walks end; wait until every
	// node has an active view, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for !allActive(nodes) {
		if time.Now().After(deadline) {
			ch.Detail = "the overlay did not form within 10 s"
			return ch
		}
		time.Sleep(10 * time.Millisecond)
	}
	from := nodes[len(nodes)-1]
	if err := from.node.Broadcast(ctx, "demo", []byte("hello, overlay")); err != nil {
		ch.Detail = err.Error()
		return ch
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(nodes) {
		select {
		case r := <-results:
			got = append(got, r)
		case <-timeout:
			ch.Detail = fmt.Sprintf("only %d of %d nodes delivered: %v", len(got), len(nodes), got)
			return ch
		}
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("%s broadcast on topic \"demo\"; delivered once at each node (name:hops) %v", from.name, got)
	return ch
}

func allActive(nodes []demoNode) bool {
	for _, d := range nodes {
		if len(d.node.Stats().Active) == 0 {
			return false
		}
	}
	return true
}
