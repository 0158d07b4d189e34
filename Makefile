# Developer entry points. `make test` is the one CI runs (.ci/run).
.PHONY: zk zk-stop test bench proto demo

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
BENCH_DIRS = cluster global test
bench:
	go test -run '^$$' -bench . -benchmem $$(go list $(patsubst %,./%/...,$(wildcard $(BENCH_DIRS))))

proto:
	scripts/genproto.sh

# The boss example as a story: its own ZooKeeper on a free port, a boss, two workers, a failover.
demo:
	scripts/demo.sh
