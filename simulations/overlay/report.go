package overlay

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// WriteReport writes r into dir (created if missing) as sim.json and
// index.html: a summary table and three inline SVG plots (delivery over
// time, RMR per broadcast, active-view degree histogram). The page needs
// no script and no network.
func WriteReport(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sim.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.html"), []byte(reportHTML(r)), 0o644)
}

func reportHTML(r *Result) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mycelium sim</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child{text-align:left}
svg{display:block;margin:1em 0 2em}
svg text{font:12px system-ui,sans-serif;fill:#333}
.ok{color:#070}.bad{color:#b00}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>mycelium sim: %d nodes, seed %d</h1>\n", r.Nodes, r.Seed)
	b.WriteString("<p>HyParView membership and Plumtree broadcast (the real machines) under the discrete-event simulator.</p>\n")
	b.WriteString(summaryTable(r))
	b.WriteString("<h2>Delivery over time</h2>\n<p>Share of the live nodes that delivered each broadcast, by time since it was sent. Grey: warm-up broadcasts; colour: measured ones (from the failure on).</p>\n")
	b.WriteString(deliveryPlot(r))
	b.WriteString("<h2>RMR per broadcast</h2>\n<p>Relative message redundancy m/(n&minus;1)&minus;1 (0 is a perfect tree). Grey: warm-up; blue: measured.</p>\n")
	b.WriteString(rmrPlot(r))
	b.WriteString("<h2>Active-view degree</h2>\n<p>Live nodes by the size of their active view at the end of the run.</p>\n")
	b.WriteString(degreePlot(r))
	b.WriteString("<h2>Per broadcast</h2>\n")
	b.WriteString(perBroadcastTable(r))
	if r.Registry != nil {
		b.WriteString("<h2>Registry updates</h2>\n<p>Each a record published by another random node after the broadcasts. Reached: nodes alive from its publication to the end of the run that took it (Changed, with the new sequence number).</p>\n")
		b.WriteString(registryTable(r.Registry))
	}
	if r.NAT != nil {
		b.WriteString("<h2>NAT mix: hole-punching theory</h2>\n<p>What nat.CanPunch (the node's decision function) says from each class (row) to each other (column), for the nodes drawn from the mix: the theory's verdict, what the protocol would attempt, not a measured punch.</p>\n")
		b.WriteString(natTable(r.NAT))
	}
	if r.Circuits != nil {
		b.WriteString("<h2>Circuit dials</h2>\n<p>Dials by node ID after the broadcasts, each direct where nat.CanPunch says a path opens, else over a circuit chosen by the node's path selection, up to circuit.PathAttempts paths.</p>\n")
		b.WriteString(circuitTable(r.Circuits))
	}
	fmt.Fprintf(&b, "<p>Trace SHA-256: <code>%s</code></p>\n</body></html>\n", r.TraceSHA256)
	return b.String()
}

// SummaryRows are the summary's label and value pairs, shared by the HTML
// report and the command line's table.
func SummaryRows(r *Result) [][2]string {
	opt := func(p *float64) string {
		if p == nil {
			return "never"
		}
		return fmt.Sprintf("%.1f s", *p)
	}
	rows := [][2]string{
		{"nodes", fmt.Sprint(r.Nodes)},
		{"seed", fmt.Sprint(r.Seed)},
		{"failed at once", fmt.Sprint(r.Failed)},
		{"live at end", fmt.Sprint(r.Live)},
		{"connected", fmt.Sprintf("%v (%d component(s))", r.Connected, r.Components)},
		{"reliability (mean)", fmt.Sprintf("%.4f", r.Reliability)},
		{"reliability, first after failure", fmt.Sprintf("%.4f", r.ReliabilityFirst)},
		{"reliability, later", fmt.Sprintf("%.4f", r.ReliabilityLater)},
		{"RMR (mean)", fmt.Sprintf("%.3f", r.RMR)},
		{"LDH (max)", fmt.Sprint(r.LDH)},
	}
	if r.Failed > 0 {
		rows = append(rows,
			[2]string{"connected again after", opt(r.ConnectedAfterSeconds)},
			[2]string{"full delivery after", opt(r.FullDeliveryAfterSeconds)},
			[2]string{"heal time", opt(r.HealSeconds)})
	}
	if g := r.Registry; g != nil {
		rows = append(rows, registryRows(g)...)
	}
	if g := r.NAT; g != nil {
		rows = append(rows, natRows(g)...)
	}
	if g := r.Circuits; g != nil {
		rows = append(rows, circuitRows(g)...)
	}
	inv := "ok"
	if !r.Invariants.OK {
		j, _ := json.Marshal(r.Invariants)
		inv = "VIOLATED " + string(j)
	}
	rows = append(rows,
		[2]string{"invariants", inv},
		[2]string{"events", fmt.Sprint(r.Engine.Events)},
		[2]string{"messages sent", fmt.Sprint(r.Engine.Sent)},
		[2]string{"simulated time", fmt.Sprintf("%.1f s", r.SimSeconds)},
		[2]string{"wall time", fmt.Sprintf("%.2f s", r.WallSeconds)},
		[2]string{"heap per node", fmt.Sprintf("%.1f KiB", r.HeapBytesPerNode/1024)},
	)
	return rows
}

// registryRows are the registry phase's summary rows.
func registryRows(g *RegistryResult) [][2]string {
	reach := func(mean, hi *float64) string {
		if mean == nil {
			return "never"
		}
		if hi == nil {
			return fmt.Sprintf("mean %.2f s, max never", *mean)
		}
		return fmt.Sprintf("mean %.2f s, max %.2f s", *mean, *hi)
	}
	per := func(p PerRefresh) string {
		return fmt.Sprintf("%s/s at 1 min, %s/s at 5 min, %s/s at 15 min", fmtBytes(p.M1), fmtBytes(p.M5), fmtBytes(p.M15))
	}
	return [][2]string{
		{"registry updates", fmt.Sprintf("%d of %.0f-byte records, %d reached every node", g.Updates, g.RecordBytes, g.ReachedAll)},
		{"registry: 99% of nodes after", reach(g.Reach99Mean, g.Reach99Max)},
		{"registry: 100% of nodes after", reach(g.Reach100Mean, g.Reach100Max)},
		{"registry: delivered", fmt.Sprintf("%.4f (least %.4f)", g.DeliveredFraction, g.DeliveredFractionMin)},
		{"registry: bytes per update (C)", fmtBytes(g.BytesPerUpdate) + " network-wide"},
		{"registry: C/R per node (derived)", per(g.Bandwidth)},
		{"registry: anti-entropy per node (derived)", fmt.Sprintf("%s/s = %.3g NeighborUps/node/s x %s full digest + %s/s records pushed",
			fmtBytes(g.AntiEntropy), g.NeighborUpsPerNodePerSecond, fmtBytes(float64(g.DigestBytes)), fmtBytes(g.AntiEntropyRecords))},
		{"registry: total per node (derived)", per(g.Total)},
		{"registry: memory per node", fmt.Sprintf("%s for %d records (%.0f B per record)", fmtBytes(g.Memory.HeapBytes), g.Memory.Records, g.Memory.HeapBytesPerRecord)},
	}
}

// fmtBytes writes a byte count with a binary unit.
func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func summaryTable(r *Result) string {
	var b strings.Builder
	b.WriteString("<table>\n")
	for _, row := range SummaryRows(r) {
		cls := ""
		if strings.HasPrefix(row[1], "VIOLATED") || row[1] == "never" {
			cls = ` class="bad"`
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td%s>%s</td></tr>\n", html.EscapeString(row[0]), cls, html.EscapeString(row[1]))
	}
	b.WriteString("</table>\n")
	return b.String()
}

func perBroadcastTable(r *Result) string {
	var b strings.Builder
	b.WriteString("<table><tr><th>k</th><th>sent at (s)</th><th>measured</th><th>sender</th><th>live</th><th>delivered</th><th>reliability</th><th>m</th><th>RMR</th><th>LDH</th><th>last (ms)</th></tr>\n")
	for _, p := range r.PerBcast {
		fmt.Fprintf(&b, "<tr><td>%d</td><td>%.1f</td><td>%v</td><td>%d</td><td>%d</td><td>%d</td><td>%.4f</td><td>%d</td><td>%.3f</td><td>%d</td><td>%.0f</td></tr>\n",
			p.K, p.AtSec, p.Measured, p.Sender, p.Live, p.Delivered, p.Reliability, p.PayloadMsgs, p.RMR, p.LDH, p.LastMs)
	}
	b.WriteString("</table>\n")
	return b.String()
}

func registryTable(g *RegistryResult) string {
	opt := func(p *float64) string {
		if p == nil {
			return "never"
		}
		return fmt.Sprintf("%.3f", *p)
	}
	var b strings.Builder
	b.WriteString("<table><tr><th>k</th><th>published at (s)</th><th>node</th><th>record bytes</th><th>live then</th><th>live then and at end</th><th>reached</th><th>99% after (s)</th><th>100% after (s)</th></tr>\n")
	for _, u := range g.PerUpdate {
		fmt.Fprintf(&b, "<tr><td>%d</td><td>%.1f</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
			u.K, u.AtSec, u.Node, u.Bytes, u.LiveAtPublication, u.Live, u.Reached, opt(u.Reach99), opt(u.Reach100))
	}
	b.WriteString("</table>\n")
	return b.String()
}

// plot is a 2-D chart area: data coordinates mapped onto an SVG box.
type plot struct {
	b              strings.Builder
	w, h           float64 // whole SVG
	left, bottom   float64 // margins
	x0, x1, y0, y1 float64 // data ranges
}

func newPlot(x0, x1, y0, y1 float64, xlabel, ylabel string) *plot {
	if x1 <= x0 {
		x1 = x0 + 1
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	p := &plot{w: 720, h: 300, left: 60, bottom: 40, x0: x0, x1: x1, y0: y0, y1: y1}
	fmt.Fprintf(&p.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n", p.w, p.h, p.w, p.h)
	// Axes, ticks and labels.
	fmt.Fprintf(&p.b, `<rect x="%.1f" y="10" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", p.left, p.w-p.left-10, p.h-p.bottom-10)
	for _, t := range ticks(x0, x1) {
		x := p.x(t)
		fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			x, 10.0, x, p.h-p.bottom, x, p.h-p.bottom+15, fmtTick(t))
	}
	for _, t := range ticks(y0, y1) {
		y := p.y(t)
		fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			p.left, y, p.w-10, y, p.left-5, y+4, fmtTick(t))
	}
	fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (p.left+p.w-10)/2, p.h-5, html.EscapeString(xlabel))
	fmt.Fprintf(&p.b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (p.h-p.bottom)/2, html.EscapeString(ylabel))
	return p
}

func (p *plot) x(v float64) float64 {
	return p.left + (v-p.x0)/(p.x1-p.x0)*(p.w-p.left-10)
}

func (p *plot) y(v float64) float64 {
	return p.h - p.bottom - (v-p.y0)/(p.y1-p.y0)*(p.h-p.bottom-10)
}

func (p *plot) polyline(xs, ys []float64, color string) {
	p.b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + color + `" points="`)
	for i := range xs {
		fmt.Fprintf(&p.b, "%.1f,%.1f ", p.x(xs[i]), p.y(ys[i]))
	}
	p.b.WriteString(`"/>` + "\n")
}

func (p *plot) bar(x, width, v float64, color, title string) {
	x0, x1 := p.x(x-width/2), p.x(x+width/2)
	y := p.y(v)
	fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
		x0, y, math.Max(x1-x0, 1), p.y(p.y0)-y, color, html.EscapeString(title))
}

func (p *plot) done() string {
	p.b.WriteString("</svg>\n")
	return p.b.String()
}

// ticks returns about five round values spanning [lo, hi].
func ticks(lo, hi float64) []float64 {
	span := hi - lo
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 6 {
			step *= m
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func fmtTick(v float64) string {
	if math.Abs(v) < 1e-9 {
		return "0" // not "-0"
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

func deliveryPlot(r *Result) string {
	xmax := 1.0
	for _, b := range r.PerBcast {
		xmax = math.Max(xmax, b.LastMs)
	}
	p := newPlot(0, xmax, 0, 1, "time since sent (ms)", "share of live nodes delivered")
	c := 0
	for _, b := range r.PerBcast {
		if len(b.delays) == 0 || b.Live == 0 {
			continue
		}
		// Step curve through at most ~200 points.
		stride := max(len(b.delays)/200, 1)
		var xs, ys []float64
		for i := 0; i < len(b.delays); i += stride {
			xs = append(xs, float64(b.delays[i])/1000)
			ys = append(ys, float64(i+1)/float64(b.Live))
		}
		xs = append(xs, float64(b.delays[len(b.delays)-1])/1000, xmax)
		last := float64(len(b.delays)) / float64(b.Live)
		ys = append(ys, last, last)
		color := "#bbb"
		if b.Measured {
			color = palette[c%len(palette)]
			c++
		}
		p.polyline(xs, ys, color)
	}
	return p.done()
}

func rmrPlot(r *Result) string {
	ymax := 0.5
	for _, b := range r.PerBcast {
		ymax = math.Max(ymax, b.RMR)
	}
	p := newPlot(-0.5, float64(len(r.PerBcast))-0.5, 0, ymax*1.05, "broadcast", "RMR")
	for i, b := range r.PerBcast {
		color := "#bbb"
		if b.Measured {
			color = palette[0]
		}
		p.bar(float64(i), 0.8, b.RMR, color, fmt.Sprintf("broadcast %d: RMR %.3f, LDH %d, reliability %.4f", b.K, b.RMR, b.LDH, b.Reliability))
	}
	return p.done()
}

func degreePlot(r *Result) string {
	d := r.Overlay.Degree
	ymax := 1
	for _, v := range d {
		ymax = max(ymax, v)
	}
	p := newPlot(-0.5, float64(max(len(d), 1))-0.5, 0, float64(ymax)*1.05, "active-view size", "live nodes")
	for k, v := range d {
		p.bar(float64(k), 0.8, float64(v), palette[2], fmt.Sprintf("%d nodes with %d active peers", v, k))
	}
	return p.done()
}
