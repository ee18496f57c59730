# Ronda — see README.md. Every target works on a fresh machine with Go,
# the Go module proxy, Debian's packages and npm.

GO        ?= go
BIN       := bin/ronda
TOOLS     := $(CURDIR)/.tools/bin
BUF_VER   := v1.61.0
PGG_VER   := v1.36.12
PGGG_VER  := v1.5.1
# Packages whose tests run under the race detector (all of ours).
PKGS      := ./...

.PHONY: all build demo test unit e2e vet fmt-check proto proto-check deps tools bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ronda

## demo: build and start a whole local federation (3 hub members, 3 nodes, 6 cameras).
demo: build
	./$(BIN) demo --dir ronda-demo $(DEMO_ARGS)

## test: install what the tests need, then check generated code, vet, unit tests (-race) and end to end.
test: deps proto-check fmt-check vet unit e2e

unit:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	@$(GO) test -count=1 -run TestAuthorisationMatrix -v ./api | grep -E '^(authorisation matrix|--- FAIL|FAIL)' ; \
	  $(GO) test -count=1 -run TestAuthorisationMatrix ./api >/dev/null

e2e: build
	RONDA_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -tags e2e -v ./system_test/

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags e2e ./system_test/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## deps: ffmpeg and Chromium from Debian, playwright-core from npm (no browser download).
deps:
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null || { \
		echo "installing ffmpeg and chromium (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg chromium >/dev/null; }
	@cd test/browser && { [ -d node_modules/playwright-core ] && [ -d node_modules/axe-core ] || npm ci --no-audit --no-fund --loglevel=error; }

tools:
	@mkdir -p $(TOOLS)
	@[ -x $(TOOLS)/buf ] || GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VER)
	@[ -x $(TOOLS)/protoc-gen-go ] || GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PGG_VER)
	@[ -x $(TOOLS)/protoc-gen-go-grpc ] || GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PGGG_VER)

## proto: regenerate the Go code in proto/ from the .proto files.
proto: tools
	PATH=$(TOOLS):$$PATH buf lint
	PATH=$(TOOLS):$$PATH buf generate

## proto-check: fail if the committed generated code is not what buf generates.
proto-check: tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PATH=$(TOOLS):$$PATH buf lint && \
	PATH=$(TOOLS):$$PATH buf generate -o $$tmp && \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
		cmp -s $$tmp/$$f $$f || { echo "generated code is stale: $$f (run 'make proto' and commit)"; exit 1; }; \
	done; \
	n=$$(find proto -name '*.pb.go' | wc -l); m=$$(cd $$tmp && find . -name '*.pb.go' | wc -l); \
	[ "$$n" = "$$m" ] || { echo "proto/ has $$n generated files, buf makes $$m (run 'make proto')"; exit 1; }; \
	echo "generated code is current"

## bench: measurements printed side by side with their baselines (minutes; not part of make test).
##   recordbench: ingest + record N camera streams at 4 Mbit/s by a real ronda node vs ffmpeg -c copy -f segment.
##   crashbench: kill -9 a recording node 20 times; footage lost per kill, every file under ffmpeg -xerror.
##   diskfullbench: a node recording onto a 512 MiB loop filesystem: retention, holds, alarm, ENOSPC (needs root).
##   BenchmarkPlaybackSeek: time to first byte into 30 days x 110 cameras of index.
##   BenchmarkCatalogQuery: hub search p50/p99 at 30,000 cameras x 90 days of coverage.
##   BenchmarkSpanIngest: coverage spans/s committed by a 3-member hub from 267 nodes x 110 cameras.
##   BenchmarkLeaderFailover: leader killed -> next committed write, default raft timeouts, 10 kills.
##   BenchmarkSnapshotRestore: snapshot and restore of the 30,000-camera x 90-day FSM vs copying its files.
##   BenchmarkAuditLog: 100,000 audit events into the Merkle log, inclusion proofs, a full 'ronda audit verify'.
##   overview-bench: the UI's city overview with a synthetic city (267 nodes, 30,000 cameras) in Chromium,
##     against a table with one row per camera.
##   replbench: 267 simulated nodes x 110 cameras vs 3 hub members: steady-state lag, reconnect storm of 1-hour backlogs.
##   livebench: live view in Chromium: time to first frame (GOP cache vs none, at the node and through the hub),
##     glass-to-glass latency (vs ffmpeg decoding the camera directly), fan-out to 50 and 200 WebRTC viewers.
##   seek: playback time-to-first-byte, random 1-minute ranges out of 30 days x 110 cameras of index (warm and cold cache).
bench: build deps
	$(GO) run ./bench/recordbench -ronda $(BIN) -streams 10,50,110 -duration 60s -warmup 10s
	$(GO) run ./bench/crashbench -ronda $(BIN) -kills 20
	$(GO) run ./bench/diskfullbench -ronda $(BIN)
	$(GO) run ./bench/replbench -ronda $(BIN)
	$(GO) run ./bench/livebench -ronda $(BIN)
	$(GO) test ./node/record -run '^$$' -bench BenchmarkPlaybackSeek -benchtime 300x -timeout 60m -v
	$(GO) test ./hub/store -run '^$$' -bench BenchmarkCatalogQuery -benchtime 200x -timeout 30m -v
	$(GO) test ./hub/store -run '^$$' -bench BenchmarkSpanIngest -benchtime 1x -timeout 10m -v
	$(GO) test ./hub/store -run '^$$' -bench BenchmarkLeaderFailover -benchtime 1x -timeout 10m -v
	$(GO) test ./hub/store -run '^$$' -bench BenchmarkSnapshotRestore -benchtime 1x -timeout 30m -v
	$(GO) test ./hub/store -run '^$$' -bench BenchmarkAuditLog -benchtime 1x -timeout 10m -v
	$(GO) test ./hub/pull -run '^$$' -bench 'BenchmarkPullRate|BenchmarkPullOverA10MbitLink' -benchtime 2x -timeout 10m -v
	$(GO) test ./internal/faultproxy -run '^$$' -bench BenchmarkCappedLink -benchtime 2x -timeout 5m -v
	cd test/browser && node overview-bench.mjs --cameras 30000 --runs 5

## fuzz: run each fuzz target for FUZZTIME (default 3m); new inputs land in the Go cache,
## copy interesting ones into the package's testdata/fuzz to keep them as regression seeds.
FUZZTIME ?= 3m
fuzz:
	$(GO) test -run XXX -fuzz FuzzDepacketize -fuzztime $(FUZZTIME) ./node/ingest
	$(GO) test -run XXX -fuzz FuzzScanFragments -fuzztime $(FUZZTIME) ./node/record

clean:
	rm -rf bin ronda-demo .tools
