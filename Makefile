# Omnipick. Two commands on a fresh machine: `make run` and `make test`.
GO        ?= go
ADDR      ?= 127.0.0.1:7070
DATA      ?= ./data
BIN       := bin/omnipick
PKGS      := ./...
SHARED_DATA ?= ../shared/data
# make eval SPLIT=validation [FOLD=2|3] to decide, dev (default) to confirm: docs/ranking.md
SPLIT     ?= dev
FOLD      ?= 1

.PHONY: run cluster build test test-short lint bench bench-scale eval clean

## run: serve the demo world on $(ADDR), state in $(DATA)
run: build
	$(BIN) serve -addr $(ADDR) -data $(DATA) -demo

## cluster: three clustered nodes on this machine (HTTP on 127.0.0.1:7071-7073,
## state in $(DATA)-cluster; docs/cluster.md), the demo world loaded
cluster: build
	$(BIN) cluster -nodes 3 -addr 127.0.0.1:7071 -data $(DATA)-cluster -demo

## build: compile the omnipick binary into bin/
build:
	@echo "building bin/omnipick (a first build on a cold cache downloads and compiles the modules: about 5 minutes on 2 cores)"
	$(GO) build -o $(BIN) ./cmd/omnipick

## test: lint, then every test with the race detector (among them the
## OpenAPI contract: api/openapi.yaml linted by kin-openapi, every request
## and answer of the api tests validated against it), then the
## allocation proofs and the real-data evaluation check (both need a
## build without -race: one counts allocations, the other would take
## minutes under it). Every allocation test has "Alloc" in its name
## (TestXxxAllocs, TestXxxAllocateNothing): ALLOC_TESTS selects them all,
## and cmd/omnipick's TestMakeTestRunsEveryAllocationTest keeps it so.
ALLOC_TESTS := Alloc
test: lint
	$(GO) test -race -count=1 $(PKGS)
	$(GO) test -count=1 -run '$(ALLOC_TESTS)' $(PKGS)
	$(GO) test -count=1 -run 'RealData' -v ./bench/eval

## test-short: the tests without the race detector, for a quick loop
test-short:
	$(GO) test -count=1 $(PKGS)

## lint: go vet and a gofmt check
lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## eval: offline evaluation of the engine against baselines on the three
## real data sets in ../shared/data (SPLIT: dev or validation, FOLD: 1, or
## 2 or 3 with validation; a few minutes)
eval: build
	$(BIN) eval -set all -data $(SHARED_DATA) -k 12 -split $(SPLIT) -fold $(FOLD)

## bench: the in-process benchmarks, metrics cost included, then a 50k-
## product world measured in-process and over HTTP (picks against the
## bare-handler ceiling, event ingest in batches); see bench/README.md
bench: build
	$(GO) test -run XXX -bench . -benchmem ./index/... ./engine/... ./api/...
	$(BIN) bench scale -products 50000 -customers 100000 -queries 50000 -restart=false -http 10s

## bench-scale: build the issue-4 world (1M products, 10M customers, 200
## locations; SCALE_FLAGS to resize, e.g. '-customers 1000000') in memory
## and measure build rate, memory, picks latency in-process and over
## HTTP, event ingest over HTTP, snapshot and restart
## (about half an hour and ~10 GiB on the 2-core machine)
SCALE_FLAGS ?=
bench-scale: build
	$(BIN) bench scale $(SCALE_FLAGS)

clean:
	rm -rf bin
