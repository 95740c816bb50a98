package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/control"
)

func runLookup(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "lookup", "SERVICE [--json]", "Prints the IDs of the nodes whose registry records offer SERVICE, one per line.")
	ctl := controlFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (keys: service, nodes)")
	wait := fs.Duration("wait", 0, "wait up to this long (at most 1m) for a node offering SERVICE to become known")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, 1); err != nil {
		return err
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	if *wait < 0 || *wait > control.MaxWait {
		return usagef("--wait %v: want 0 to %v", *wait, control.MaxWait)
	}
	res, err := c.Lookup(ctx, pos[0], *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	for _, id := range res.Nodes {
		fmt.Fprintln(e.stdout, id)
	}
	if len(res.Nodes) == 0 {
		return fmt.Errorf("no known node offers %q", pos[0])
	}
	return nil
}

func runPeers(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "peers", "[--json]", "Lists the nodes the registry knows, this one included: role, NAT class, addresses, services and the age of their records.")
	ctl := controlFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (keys: peers[id, self, role, nat{mapping, filtering}, inbound, listen, reflexive, services, seq, age_seconds, expires_in_seconds])")
	min := fs.Int("min", 0, "with --wait: wait until the registry knows at least this many nodes")
	wait := fs.Duration("wait", 0, "wait up to this long (at most 1m) for --min nodes to become known")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	if *wait < 0 || *wait > control.MaxWait || *min < 0 {
		return usagef("--wait %v --min %d: want a wait of 0 to %v and a count", *wait, *min, control.MaxWait)
	}
	res, err := c.Peers(ctx, *min, *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tNAT (MAPPING/FILTERING)\tADDRESSES\tSERVICES\tAGE")
	for _, p := range res.Peers {
		id := p.ID.String()
		if p.Self {
			id += " (self)"
		}
		var addrs []string
		for _, a := range append(p.Listen, p.Reflexive...) {
			addrs = append(addrs, a.String())
		}
		age := (time.Duration(p.AgeSeconds) * time.Second).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\n", id, p.Role, p.NAT.Mapping, p.NAT.Filtering,
			orNone(strings.Join(addrs, ",")), orNone(strings.Join(p.Services, ",")), age)
	}
	return tw.Flush()
}

func runCircuits(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "circuits", "[--json]", "Lists the circuits this node built (initiator), carries for others (relay) or ends (terminal), with their hops, age and traffic.")
	ctl := controlFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (keys: circuits[role, prev, prev_cid, next, next_cid, age_seconds, idle_seconds, bytes_forward, bytes_backward, dropped_forward, dropped_backward])")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	res, err := c.Circuits(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tPREV\tNEXT\tAGE\tIDLE\tBYTES FWD/BWD\tDROPPED FWD/BWD")
	hop := func(id *mycelium.NodeID, cid uint32) string {
		if id == nil {
			return "-"
		}
		return fmt.Sprintf("%s#%d", id.Short(), cid)
	}
	for _, ci := range res.Circuits {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\n", ci.Role, hop(ci.Prev, ci.PrevCID), hop(ci.Next, ci.NextCID),
			(time.Duration(ci.AgeSeconds) * time.Second).Round(time.Second), (time.Duration(ci.IdleSeconds) * time.Second).Round(time.Second),
			ci.BytesForward, ci.BytesBackward, ci.DroppedForward, ci.DroppedBackward)
	}
	return tw.Flush()
}
