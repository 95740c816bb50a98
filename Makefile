# mycelium: make targets. `make test` is the test command CI runs.
GO        ?= go
FUZZTIME  ?= 10s
BENCHTIME ?= 200x
BENCHCOUNT ?= 5
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test bench fuzz lint demo clean

all: build

## build: compile the mycelium binary into bin/
build:
	$(GO) build -o bin/mycelium ./cmd/mycelium

## test: vet, then every test with the race detector, in shuffled order
test:
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -timeout 12m ./...

## bench: mycelium against raw quic-go on loopback, as ratios (direct, and
## through circuits of 1-3 relays); a stream's rate before and after its
## connection moves from a circuit to a direct path; stall times by cause
## over 20 netlab migration runs, and per step over 20 seeded random
## scenarios of each lab kind; a relay's memory per idle circuit; the
## circuit crypto; netlab's datagram rate; the simulator's speed (10k
## nodes: MYCELIUM_SIM_BENCH=1)
bench:
	$(GO) test -run '^$$' -bench VsQUIC -benchtime $(BENCHTIME) -count $(BENCHCOUNT) .
	$(GO) test -run '^$$' -bench CircuitThroughput -benchtime 10x -count 3 .
	$(GO) test -run '^$$' -bench UpgradeThroughput -benchtime 3x -count 3 .
	MYCELIUM_STALL_RUNS=20 $(GO) test -run TestSynctestStallDistribution -v .
	MYCELIUM_SCENARIO_RUNS=20 $(GO) test -run TestSynctestMigrationScenarios -v .
	$(GO) test -run '^$$' -bench Memory -benchtime 5x ./relay
	$(GO) test -run '^$$' -bench . -benchmem ./circuit
	$(GO) test -run '^$$' -bench . ./simulations/netlab ./simulations/des
	$(GO) test -run '^$$' -bench Sim1k -benchtime 1x ./simulations/overlay

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	./scripts/fuzz-all.sh $(FUZZTIME)

## lint: gofmt, vet and staticcheck
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## demo: start an in-process network and show it working
demo:
	$(GO) run ./cmd/mycelium demo

clean:
	rm -rf bin
