package overlay

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/mycelium-net/mycelium/circuit"
)

// Scenario is one simulation run: a JSON file, or the flags of `mycelium
// sim`. Every JSON key is the flag's name with '-' written '_' (as
// `mycelium node --config` does), every key is optional (missing ones keep
// DefaultScenario's value) and unknown keys are refused. Durations are
// strings such as "1.5s" or "10m".
//
// The timeline: node i joins at i*JoinSpan/Nodes through a random node
// that joined before it (Join 0 means DefaultJoinGap per node). After the
// joins and Settle, WarmupBroadcasts broadcasts go out, one every
// Interval, to let the Plumtree settle; they are reported but not
// measured. At FailAt (by default one Interval after the last warm-up
// broadcast) a Fail fraction of the nodes crash at once, and Broadcasts
// measured broadcasts follow, the first at once, one every Interval. The
// run then drains for Drain, or runs until Duration if that is later.
// Churn runs from FailAt to the end; a partition from PartitionAt to
// HealAt.
//
// RegistryUpdates > 0 gives every node a registry.Machine (and a real
// Ed25519 key, whose public key is its node ID) and adds a registry phase
// after the drain of the last broadcast (and of the circuit phase, with
// CircuitDials): RegistryUpdates distinct random live nodes publish their
// record, one every RegistryInterval, and the run drains for Drain after
// the last (see registry.go).
//
// NATMix gives each node a NAT behaviour and adds to the Result what
// nat.CanPunch says of every pair (see nat_mix.go); it changes nothing in
// the run itself.
//
// CircuitDials > 0 adds a circuit phase after the last broadcast's drain
// (and before the registry phase, which then starts one Drain later):
// the nodes' records are taken, a RelayFail fraction of the Relays
// dedicated relays crash, and CircuitDials dials by node ID follow at
// that instant, each direct or over a circuit as the node would choose
// (see circuits.go). The run drains for Drain after it.
type Scenario struct {
	Nodes            int      `json:"nodes"`
	Seed             uint64   `json:"seed"`
	Fail             float64  `json:"fail"`
	Broadcasts       int      `json:"broadcasts"`
	WarmupBroadcasts int      `json:"warmup_broadcasts"`
	Interval         Duration `json:"interval"`
	Join             Duration `json:"join"`
	Settle           Duration `json:"settle"`
	FailAt           Duration `json:"fail_at"`
	Drain            Duration `json:"drain"`
	Duration         Duration `json:"duration"`
	Sender           string   `json:"sender"`
	Payload          int      `json:"payload"`
	Loss             float64  `json:"loss"`
	Latency          Duration `json:"latency"`
	LatencySpread    Duration `json:"latency_spread"`
	Jitter           Duration `json:"jitter"`
	Detect           Duration `json:"detect"`
	ConnectTimeout   Duration `json:"connect_timeout"`
	Churn            float64  `json:"churn"`
	Partition        float64  `json:"partition"`
	PartitionAt      Duration `json:"partition_at"`
	HealAt           Duration `json:"heal_at"`
	CheckEvery       Duration `json:"check_every"`
	RegistryUpdates  int      `json:"registry_updates"`
	RegistryInterval Duration `json:"registry_interval"`
	NATMix           string   `json:"nat_mix"`
	CircuitDials     int      `json:"circuit_dials"`
	Relays           int      `json:"relays"`
	RelayFail        float64  `json:"relay_fail"`
	CircuitRelays    int      `json:"circuit_relays"`
}

// fields lists each field with its flag name and help, in the order
// `mycelium sim --help` shows them. The JSON key is the name with '-'
// written '_'; a test holds the two spellings together.
func (s *Scenario) fields() []field {
	return []field{
		{"nodes", intValue{&s.Nodes}, "`number` of simulated nodes"},
		{"seed", uint64Value{&s.Seed}, "`seed` of every random choice: the same seed gives the same run"},
		{"fail", floatValue{&s.Fail}, "`fraction` of the nodes that crash at once at fail-at (0 to <1)"},
		{"broadcasts", intValue{&s.Broadcasts}, "`number` of measured broadcasts, from fail-at on, one every interval"},
		{"warmup-broadcasts", intValue{&s.WarmupBroadcasts}, "`number` of broadcasts before fail-at that let the tree settle (not measured)"},
		{"interval", &s.Interval, "`time` between broadcasts"},
		{"join", &s.Join, "nodes join one after another over this `time` (0: 12 ms per node)"},
		{"settle", &s.Settle, "quiet `time` after the last join, before the warm-up broadcasts"},
		{"fail-at", &s.FailAt, "`time` of the failure and the first measured broadcast (0: one interval after the warm-up)"},
		{"drain", &s.Drain, "`time` simulated after the last broadcast, and after the last record publication"},
		{"duration", &s.Duration, "total simulated `time`, if longer than the timeline needs"},
		{"sender", stringValue{&s.Sender}, "`who` broadcasts: fixed (one live node, as the Plumtree paper measures) or random"},
		{"payload", intValue{&s.Payload}, "payload `bytes` per broadcast (8 to 60000)"},
		{"loss", floatValue{&s.Loss}, "`probability` that a message is lost (0 to <1)"},
		{"latency", &s.Latency, "smallest one-way link `delay`"},
		{"latency-spread", &s.LatencySpread, "`range` of the fixed extra delay of each pair of nodes"},
		{"jitter", &s.Jitter, "`range` of the fresh extra delay of each message"},
		{"detect", &s.Detect, "`time` a node takes to notice that a linked peer died or was cut off"},
		{"connect-timeout", &s.ConnectTimeout, "`time` a connect to a dead or unreachable node takes to fail"},
		{"churn", floatValue{&s.Churn}, "`fraction` of the nodes replaced per minute (crash one, restart one) from fail-at on"},
		{"partition", floatValue{&s.Partition}, "`fraction` of the nodes cut off from the rest at partition-at (0: none)"},
		{"partition-at", &s.PartitionAt, "`time` the partition starts"},
		{"heal-at", &s.HealAt, "`time` the partition heals (0: never)"},
		{"check-every", &s.CheckEvery, "`interval` at which connectivity is measured after a failure or partition"},
		{"registry-updates", intValue{&s.RegistryUpdates}, "`number` of nodes that publish their signed record after the broadcasts' drain, one every registry-interval; every node runs the registry (0: no registry)"},
		{"registry-interval", &s.RegistryInterval, "`time` between two record publications"},
		{"nat-mix", stringValue{&s.NATMix}, "`mix` of NAT behaviours drawn for the nodes, such as public:0.2,eim-apdf:0.5,apdm-apdf:0.3 (public, or eim|adm|apdm-eif|adf|apdf); reports what nat.CanPunch says of every pair (theory, not a measured punch; empty: none)"},
		{"circuit-dials", intValue{&s.CircuitDials}, "`number` of dials by node ID after the broadcasts' drain, each from a random live node to another: direct where nat.CanPunch says a path opens, else over a circuit that the node's own path selection picks (0: none)"},
		{"relays", intValue{&s.Relays}, "`number` of dedicated relays, drawn among the public nodes (with circuit-dials)"},
		{"relay-fail", floatValue{&s.RelayFail}, "`fraction` of the dedicated relays that crash after the records are taken, just before the circuit dials (0 to 1)"},
		{"circuit-relays", intValue{&s.CircuitRelays}, fmt.Sprintf("fewest relays per circuit, as the node's --circuit-relays (`number`, 1 to %d)", circuit.MaxRelays)},
	}
}

type field struct {
	name string
	val  flag.Value
	help string
}

// DefaultScenario returns the scenario `mycelium sim` runs with no
// arguments: 1,000 nodes, no failure, 10 measured broadcasts.
func DefaultScenario() Scenario {
	return Scenario{
		Nodes:            1000,
		Seed:             1,
		Broadcasts:       10,
		WarmupBroadcasts: 5,
		Interval:         Duration(time.Second),
		Settle:           Duration(30 * time.Second),
		Drain:            Duration(30 * time.Second),
		Sender:           "fixed",
		Payload:          64,
		Latency:          Duration(10 * time.Millisecond),
		LatencySpread:    Duration(90 * time.Millisecond),
		Jitter:           Duration(5 * time.Millisecond),
		Detect:           Duration(2 * time.Second),
		ConnectTimeout:   Duration(2 * time.Second),
		CheckEvery:       Duration(time.Second),
		RegistryInterval: Duration(5 * time.Second),
		CircuitRelays:    circuit.DefaultRelays,
	}
}

// DefaultJoinGap is the time between two joins when Scenario.Join is 0:
// about 83 joins a second. Faster joins work too (Join 30s at 10,000
// nodes, 3 ms apart, ends connected for seeds 1 to 6); they used to leave
// islands, until membership.Config.StarveTicks (TestFastJoinsLeaveNoIsland).
// The gap stays so that the figures measured with it remain comparable.
const DefaultJoinGap = 12 * time.Millisecond

// JoinSpan is the time over which the nodes join.
func (s *Scenario) JoinSpan() time.Duration {
	if s.Join > 0 {
		return s.Join.D()
	}
	return time.Duration(s.Nodes) * DefaultJoinGap
}

// ErrScenario is returned for a scenario that cannot run.
var ErrScenario = errors.New("overlay: bad scenario")

// MaxNodes bounds Scenario.Nodes.
const MaxNodes = 1 << 20

// Validate reports the first field out of range.
func (s *Scenario) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrScenario, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Nodes < 2 || s.Nodes > MaxNodes:
		return bad("nodes %d, want 2..%d", s.Nodes, MaxNodes)
	case !(s.Fail >= 0 && s.Fail < 1):
		return bad("fail %v, want at least 0 and below 1", s.Fail)
	case s.Broadcasts < 0 || s.WarmupBroadcasts < 0:
		return bad("negative broadcasts")
	case s.Interval <= 0:
		return bad("interval %v must be positive", s.Interval)
	case s.Join < 0 || s.Settle < 0 || s.FailAt < 0 || s.Drain < 0 || s.Duration < 0 || s.PartitionAt < 0 || s.HealAt < 0:
		return bad("negative time")
	case s.Sender != "fixed" && s.Sender != "random":
		return bad("sender %q, want fixed or random", s.Sender)
	case s.Payload < 8 || s.Payload > 60000:
		return bad("payload %d, want 8..60000", s.Payload)
	case !(s.Loss >= 0 && s.Loss < 1):
		return bad("loss %v, want at least 0 and below 1", s.Loss)
	case s.Latency < 0 || s.LatencySpread < 0 || s.Jitter < 0:
		return bad("negative latency")
	case s.Detect < 0 || s.ConnectTimeout <= 0:
		return bad("detect must be at least 0 and connect-timeout positive")
	case !(s.Churn >= 0 && s.Churn <= 1):
		return bad("churn %v, want 0..1 per minute", s.Churn)
	case !(s.Partition >= 0 && s.Partition < 1):
		return bad("partition %v, want at least 0 and below 1", s.Partition)
	case s.Partition > 0 && s.HealAt != 0 && s.HealAt <= s.PartitionAt:
		return bad("heal-at %v must come after partition-at %v", s.HealAt, s.PartitionAt)
	case s.CheckEvery <= 0:
		return bad("check-every must be positive")
	case s.RegistryUpdates < 0 || s.RegistryUpdates > s.Nodes:
		return bad("registry-updates %d, want 0..nodes (%d)", s.RegistryUpdates, s.Nodes)
	case s.RegistryInterval <= 0:
		return bad("registry-interval must be positive")
	case s.CircuitDials < 0:
		return bad("circuit-dials %d, want at least 0", s.CircuitDials)
	case s.Relays < 0:
		return bad("relays %d, want at least 0", s.Relays)
	case !(s.RelayFail >= 0 && s.RelayFail <= 1):
		return bad("relay-fail %v, want 0..1", s.RelayFail)
	case s.CircuitRelays < 1 || s.CircuitRelays > circuit.MaxRelays:
		return bad("circuit-relays %d, want 1..%d", s.CircuitRelays, circuit.MaxRelays)
	}
	mix, err := ParseNATMix(s.NATMix)
	if err != nil {
		return bad("%v", err)
	}
	if s.Relays > 0 {
		if pub := publicNodes(drawNAT(s.Seed, s.Nodes, mix), mix); s.Relays > pub {
			return bad("relays %d, but only %d of the %d nodes are public (nat-mix %q, seed %d)", s.Relays, pub, s.Nodes, s.NATMix, s.Seed)
		}
	}
	return nil
}

// RegisterFlags defines one flag per scenario field on fs, bound to s.
func (s *Scenario) RegisterFlags(fs *flag.FlagSet) {
	for _, f := range s.fields() {
		fs.Var(f.val, f.name, f.help)
	}
}

// SetFlag sets the field whose flag is called name from its text form, as
// the flag would. It lets a flag given on the command line win over a file.
func (s *Scenario) SetFlag(name, value string) error {
	for _, f := range s.fields() {
		if f.name == name {
			return f.val.Set(value)
		}
	}
	return fmt.Errorf("%w: no field %q", ErrScenario, name)
}

// MaxScenarioFile bounds a scenario file.
const MaxScenarioFile = 1 << 20

// LoadScenario reads a JSON scenario on top of DefaultScenario, refusing
// unknown keys and trailing data, and validates it.
func LoadScenario(r io.Reader) (Scenario, error) {
	s := DefaultScenario()
	b, err := io.ReadAll(io.LimitReader(r, MaxScenarioFile+1))
	if err != nil {
		return s, err
	}
	if len(b) > MaxScenarioFile {
		return s, fmt.Errorf("%w: larger than %d bytes", ErrScenario, MaxScenarioFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, fmt.Errorf("%w: data after the JSON object", ErrScenario)
	}
	return s, s.Validate()
}

// Duration is a time.Duration written as "1.5s" in JSON and on flags.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses "1.5s", "10m" and the like.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

type intValue struct{ p *int }

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*v.p = n
	return nil
}

type uint64Value struct{ p *uint64 }

func (v uint64Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(*v.p, 10)
}
func (v uint64Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return errors.New("not an unsigned integer")
	}
	*v.p = n
	return nil
}

type floatValue struct{ p *float64 }

func (v floatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}
func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v.p = f
	return nil
}

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }
