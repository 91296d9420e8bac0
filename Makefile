# deploybot: the two set-up commands are `make demo` and `make test`.
GO ?= go

.PHONY: demo console test bench build terraform fmt vet fuzz crash-matrix

# The whole runbook, automated, with no account and no network: GitHub,
# Airflow and Sentry are test servers inside the process, Terraform is real.
# By default it clicks through by itself (as two people: four-eyes is real)
# and ends with a summary, so the main command always completes on its own;
# `make demo DEMO_ARGS=` lets you click; DEMO_ARGS='--auto --scenario
# failed-apply' shows a failed production apply and its rollback.
DEMO_ARGS ?= --auto
demo: terraform
	$(GO) run ./cmd/deploybot demo $(DEMO_ARGS)

# Runs the bot's main job with no account: the console against examples/.
console: terraform
	./scripts/example-infra.sh
	$(GO) run ./cmd/deploybot console --config examples/console.yaml --as U0ALICE

# The whole test suite, exactly as CI runs it (.ci/run calls this).
test: terraform
	test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (gofmt -l . ; echo 'gofmt: files above need formatting'; exit 1)
	$(GO) vet ./...
	DEPLOYBOT_TERRAFORM=$(CURDIR)/bin/terraform $(GO) test -race -count=1 -timeout 40m ./...

# Every benchmark, one package at a time (-p 1: two packages measuring at
# once would slow each other), then the table of the README's figures, each
# beside its peer from this run (written to bin/bench by the benchmarks).
bench: terraform
	rm -rf bin/bench
	DEPLOYBOT_TERRAFORM=$(CURDIR)/bin/terraform DEPLOYBOT_BENCH_OUT=$(CURDIR)/bin/bench $(GO) test -p 1 -run '^$$' -bench . -benchmem -timeout 30m ./...
	@echo
	@$(GO) run ./internal/benchfig/table bin/bench

build:
	$(GO) build -o bin/deploybot ./cmd/deploybot

# Terraform 1.5.7 (the last MPL release), built from the Go module proxy into ./bin.
terraform:
	./scripts/install-terraform.sh

# Every fuzz target for FUZZTIME each (default 30s); new interesting inputs
# join the committed seed corpora that `make test` replays.
fuzz:
	./scripts/fuzz.sh

# The whole crash matrix: every store write of a deploy, a rollback and a
# failed apply is a crash point (the binary built with -tags crashtest kills
# itself there); prints the points covered and the effects, duplicates and
# losses counted. `make test` runs a sample of the points.
crash-matrix: terraform
	DEPLOYBOT_CRASH_ALL=1 DEPLOYBOT_TERRAFORM=$(CURDIR)/bin/terraform $(GO) test -count=1 -timeout 150m -run '^TestCrashMatrix' -v ./cmd/deploybot > bin/crash-matrix.log 2>&1; s=$$?; \
	grep -E '^crash matrix|crash_test.go:[0-9]+: (N=[0-9]+|no crash) .*\[|^(--- FAIL|ok|FAIL)' bin/crash-matrix.log; echo "full log: bin/crash-matrix.log"; exit $$s
