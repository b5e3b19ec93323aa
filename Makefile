# kafkaup: `make test` installs test dependencies and runs every test (what
# CI runs); `make demo` runs the main job end to end on a local cloud.
GO ?= go
BIN := bin/kafkaup
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# End-to-end tests boot VMs under software emulation: give them time.
TEST_TIMEOUT ?= 60m

.PHONY: build test test-deps unit e2e test-headstart test-harness bench bench-headstart demo clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/kafkaup

test-deps:
	./test/deps.sh

# The longest test packages, named first so that go test starts them first
# (two at a time with -p 2) and the short ones fill in beside the last.
LONG_TESTS = ./test/e2e/nshost ./test/e2e/cloud ./test/e2e/vm

# Everything: unit tests, the harness's own tests, and end to end against a
# real Kafka runtime, a namespace host, a Debian VM under qemu and moto.
test: test-deps
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -p 2 -timeout $(TEST_TIMEOUT) $(LONG_TESTS) ./...

# Fast tests only: no network, no VMs.
unit:
	$(GO) test -short ./...

e2e: test-deps
	$(GO) test -count=1 -p 2 -timeout $(TEST_TIMEOUT) -v ./test/e2e/...

# The test harness's own VM self-tests (boot, reboot, forwarding, console;
# the local cloud's VM instances), one package at a time: one VM at once.
# The head start on a VM behind the local cloud (one more VM boot; kept out
# of make test for now).
test-headstart: test-deps
	KAFKAUP_HEADSTART_VM=1 $(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) ./test/e2e/headstartvm/

test-harness: test-deps
	KAFKAUP_VM_SELFTEST=1 $(GO) test -p 1 -v -timeout $(TEST_TIMEOUT) ./internal/testenv/...

# Provisioning against the manual sequence; the cluster (3 nodes vs 1, and
# a rolling restart as the no-loss checker sees it); then create with and without
# the head start (bench-headstart alone; BENCH_FLAGS=-rate 0.4 models a
# mirror throttled to a few Mbit/s).
bench: test-deps
	$(GO) run ./test/bench
	$(GO) run ./test/bench/cluster
	$(GO) run ./test/bench/headstart $(BENCH_FLAGS)

bench-headstart: test-deps
	$(GO) run ./test/bench/headstart $(BENCH_FLAGS)

demo: test-deps
	$(GO) run ./test/demo

clean:
	rm -rf bin
