package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mycelium-net/mycelium/simulations/overlay"
)

func runSim(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sim", "[SCENARIO.json] [flags]",
		"Runs the real HyParView and Plumtree machines on simulated nodes under a\n"+
			"discrete-event clock: nodes join, the broadcast tree settles, a fraction of\n"+
			"the nodes crash at once, and measured broadcasts follow. With\n"+
			"--registry-updates K every node also runs the real registry, and K nodes\n"+
			"then publish their signed record: how fast each reaches 99% and 100% of the\n"+
			"nodes, its bytes, the bandwidth at refresh periods of 1, 5 and 15 minutes\n"+
			"(derived from them) and the memory of a full registry. With --nat-mix each\n"+
			"node is also given a NAT behaviour, and the summary adds what nat.CanPunch\n"+
			"(the node's own decision) says of every pair: the theory's verdict, not a\n"+
			"measured punch. With --circuit-dials N, N dials by node ID follow the\n"+
			"broadcasts, each direct where nat.CanPunch says a path opens, else over a\n"+
			"circuit chosen by the node's own path selection, among --relays dedicated\n"+
			"relays of which a --relay-fail fraction crash after the records are taken.\n"+
			"Prints a summary\n"+
			"(or one JSON object with --json); --report DIR also writes sim.json and an\n"+
			"HTML page with plots. A scenario file holds the same settings as the flags,\n"+
			"as JSON keys with '_' for '-' (unknown keys refused); flags given on the\n"+
			"command line win over the file. The same seed gives the same run.")
	sc := overlay.DefaultScenario()
	sc.RegisterFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print one JSON object (keys: nodes, seed, connected, reliability, rmr, ldh, heal_seconds, wall_seconds, sim_seconds, broadcasts[...], overlay, invariants, registry{...}, nat{...}, circuits{...}, ...)")
	report := fs.String("report", "", "write sim.json and index.html (with SVG plots) into this `directory`")
	tracePath := fs.String("trace", "", "write the engine's event trace to this `file`, one line per event (slow and large)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 1); err != nil {
		return err
	}
	if len(pos) == 1 {
		fileSc, err := loadScenario(pos[0])
		if err != nil {
			return err
		}
		var setErr error
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "json" || f.Name == "report" || f.Name == "trace" || setErr != nil {
				return
			}
			setErr = fileSc.SetFlag(f.Name, f.Value.String())
		})
		if setErr != nil {
			return usagef("%v", setErr)
		}
		sc = fileSc
	}
	if err := sc.Validate(); err != nil {
		return usagef("%v", err)
	}
	var opt overlay.Options
	var trace *bufio.Writer
	if *tracePath != "" {
		f, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer f.Close()
		trace = bufio.NewWriterSize(f, 1<<20)
		opt.Trace = trace
	}
	bar := newProgressBar(e.stderr)
	if bar != nil {
		opt.Progress = bar.update
	}
	res, err := overlay.Run(ctx, sc, opt)
	bar.clear()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errInterrupted
		}
		return err
	}
	if trace != nil {
		if err := trace.Flush(); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
	}
	if *report != "" {
		if err := overlay.WriteReport(*report, res); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, row := range overlay.SummaryRows(res) {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if *report != "" {
		fmt.Fprintf(tw, "report\t%s\n", strings.TrimSuffix(*report, "/")+"/index.html")
	}
	return tw.Flush()
}

func loadScenario(path string) (overlay.Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return overlay.Scenario{}, err
	}
	defer f.Close()
	sc, err := overlay.LoadScenario(f)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// progressBar draws one line on a terminal, redrawn in place.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

// newProgressBar returns a bar on w if w is a terminal, else nil (a nil bar
// does nothing).
func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressBar{w: w, start: time.Now()}
}

func (p *progressBar) update(now, end time.Duration) {
	t := time.Now()
	if t.Sub(p.last) < 100*time.Millisecond && now < end {
		return
	}
	p.last = t
	frac := float64(now) / float64(max(end, 1))
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %.0f/%.0f s simulated, %.1f s wall",
		strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100, now.Seconds(), end.Seconds(), t.Sub(p.start).Seconds())
}

func (p *progressBar) clear() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
