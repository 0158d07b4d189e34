# Developer entry points. `make test` is the one CI runs (.ci/run).
.PHONY: zk zk-stop test bench provider-bench proto demo grains-demo chaos fuzz

# A local ZooKeeper on 127.0.0.1:2181 for humans and the demo (state in .zk/).
zk:
	scripts/zookeeper.sh install
	scripts/zookeeper.sh start

zk-stop:
	scripts/zookeeper.sh stop

# Integration tests start their own servers through test/zktest; they only need ZooKeeper installed.
test:
	scripts/zookeeper.sh install
	go vet ./...
	go test -race -count=1 -timeout 20m ./...

# Benchmarks; go list skips the directories that do not exist yet.
BENCH_DIRS = cluster global recipes test
bench:
	go test -run '^$$' -bench . -benchmem $$(go list $(patsubst %,./%/...,$(wildcard $(BENCH_DIRS))))

# zkactor's protoactor-go cluster provider next to protoactor-go's own ZooKeeper provider (cmd/providerbench),
# against a ZooKeeper of its own: `make provider-bench PBENCH_ARGS="-n 3,5 -rounds 3"`.
PBENCH_ARGS ?=
provider-bench:
	scripts/provider-bench.sh $(PBENCH_ARGS)

proto:
	scripts/genproto.sh

# The randomized fault checker (test/chaos): every fault class CHAOS_TRIALS times, then the table.
# `make chaos CHAOS_SEED=7 CHAOS_CLASSES=pause,kill` replays those classes of seed 7's run.
CHAOS_TRIALS ?= 100
CHAOS_SEED ?= 1
CHAOS_CLASSES ?= all
chaos:
	scripts/zookeeper.sh install
	go test -race -count=1 -timeout 8h -run '^TestChaos$$' -v ./test/chaos/ \
		-seed=$(CHAOS_SEED) -trials=$(CHAOS_TRIALS) -classes=$(CHAOS_CLASSES) -stop-each-class

# Every fuzz target for FUZZTIME each. `go test -fuzz` runs one target of one package at a time,
# hence the loop; list a target as package:FuzzName. Seed corpora live in each package's testdata/fuzz.
FUZZTIME ?= 30s
FUZZ_TARGETS = ./cluster:FuzzValidateName \
	./internal/records:FuzzRegistration ./internal/records:FuzzNode ./internal/records:FuzzCandidate \
	./cmd/boss:FuzzJobInput ./cmd/boss:FuzzDecodeJob ./recipes/config:FuzzDecode
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# The boss example as a story: its own ZooKeeper on a free port, a boss, two workers, a failover.
demo:
	scripts/demo.sh

# protoactor-go grains on zkactor (cmd/grains) as a story: three members, counters, a kill -9.
grains-demo:
	scripts/grains-demo.sh
