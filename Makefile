# Spot Runner. `make test` is the one command CI runs (.ci/run); `make demo` runs the main job on
# the local world. Everything that needs moto runs inside scripts/with-world.sh, which starts it on
# loopback and tears it down.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Fuzzing runs a number of inputs, not a duration: with a duration, Go's fuzzer can fail a run
# with "context deadline exceeded" when the time ends while a worker minimises a new input.
FUZZTIME ?= 150000x
# Every service with a main.go is a Lambda function.
FUNCTIONS := $(patsubst services/%/main.go,%,$(wildcard services/*/main.go))
# How a function is built for Lambda (provided.al2023, arm64): $(call gobuild,<service>,<output>)
gobuild = CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(2) ./services/$(1)

# The deployment tools live in their own venvs (their pins conflict: requirements-sam.txt,
# requirements-checkov.txt); scripts/deps.sh installs them when they are not on PATH.
SAM ?= $(if $(wildcard .venv-sam/bin/sam),.venv-sam/bin/sam,sam)
CHECKOV ?= $(if $(wildcard .venv-checkov/bin/checkov),.venv-checkov/bin/checkov,checkov)
# aws-sam-translator's python (scripts/sam-expand.py): the venv's when scripts/deps.sh made one.
SAM_PYTHON ?= $(if $(wildcard .venv-sam/bin/python),.venv-sam/bin/python,python3)
# Templates checkov checks; every skipped check is justified in place (Metadata.checkov.skip).
CHECKOV_TEMPLATES := template.yaml sam/image.yaml sam/foundation.yaml
# Offline and without credentials: no telemetry; validate --lint needs only a region.
export SAM_CLI_TELEMETRY := 0

.PHONY: all build cli deps generate test test-world unit e2e e2e-burst fuzz template validate lint bench demo clean

all: build

## build: every function as an arm64 Lambda `bootstrap` in build/<function>/
build:
	@for f in $(FUNCTIONS); do echo "build $$f"; $(call gobuild,$$f,build/$$f/bootstrap); done

## cli: the operator CLI for this machine, build/spotrunner
cli:
	$(GO) build -trimpath -o build/spotrunner ./cmd/spotrunner

# sam build (Metadata BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR set:
# build-IngestFunction builds services/ingest.
build-%Function:
	$(call gobuild,$(shell echo $* | tr A-Z a-z),$(ARTIFACTS_DIR)/bootstrap)

## generate: rewrite the generated regions of template.yaml and sam/image.yaml from presets.yaml
## and instance/ (internal/deploy TestGenerated fails while they are stale)
generate:
	$(GO) run ./internal/deploy/generate

## deps: install what the tests need (Go modules, npm fixtures, Python tools in .venv, shellcheck)
deps:
	scripts/deps.sh

## test: everything — lint, unit and local-world tests, short fuzz runs, template checks
test: deps
	scripts/with-world.sh $(MAKE) --no-print-directory test-world

# test-world runs inside the world (SPOTRUNNER_WORLD=1): a test that needs moto fails, never skips.
# The end-to-end suite runs alone (its scenarios wait in real time; sharing the 2 cores with other
# packages' tests slows their instances' boots), in a moto of its own (see e2e).
test-world: lint unit e2e fuzz validate

# Allocation-count tests skip under -race (its instrumentation allocates); they run here without it.
unit:
	$(GO) test -count=1 -race $$($(GO) list ./... | grep -v /internal/e2e)
	$(GO) test -count=1 -run 'Allocations$$' ./libs/labels/

## e2e: the end-to-end suite: the five real binaries under aws-lambda-rie on the local world, one
## stack per scenario (internal/e2e); three at a time and without -race: the scenarios wait in
## real time, and more stacks at once starve each other on 2 cores. Always in a world of its
## own, also inside make test: a moto that served every other test first holds their
## instances, tables and queues, and answers the suite's calls several times slower.
e2e:
	scripts/with-world.sh $(GO) test -count=1 -timeout 15m -parallel 3 ./internal/e2e/

## e2e-burst: the end-to-end burst at the issue's size, 200 jobs queued at once (minutes on 2 cores;
## not part of make test, whose suite runs 30)
e2e-burst:
	scripts/with-world.sh env SPOTRUNNER_BURST=200 $(GO) test -count=1 -timeout 30m -run '^TestBurst$$' -v ./internal/e2e/

## fuzz: each fuzz target for FUZZTIME inputs (default 150000x, a few seconds each); targets found by name, without building
## every package to list them
fuzz:
	@grep -l '^func Fuzz' $$(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go') | while read -r f; do \
	  for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
	    echo "fuzz ./$$(dirname "$$f") $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) "./$$(dirname "$$f")" || exit 1; \
	  done; \
	done

## template: cfn-lint on the app stack and the nested/foundation templates
template:
	@[ -d .venv/bin ] && export PATH="$$PWD/.venv/bin:$$PATH"; \
	cfn-lint template.yaml $$(ls sam/*.yaml 2>/dev/null || true)

## validate: the templates as they deploy: cfn-lint (template), sam validate --lint, sam build
## (the five arm64 functions into .aws-sam/build, offline, no credentials) and checkov. checkov
## fails on any finding not skipped in place (Metadata: checkov: skip: id + comment).
## --build-in-source: sam's makefile builder otherwise copies the whole checkout (venvs, npm
## fixtures: over 1 GB) to a scratch directory for each function first; there is no ignore file.
validate: template
	$(SAM) validate --lint --template template.yaml --region us-east-1
	@mkdir -p .aws-sam; echo "$(SAM) build --build-in-source --parallel (log: .aws-sam/sam-build.log)"; \
	$(SAM) build --build-in-source --parallel --template template.yaml --region us-east-1 >.aws-sam/sam-build.log 2>&1 || \
	  { cat .aws-sam/sam-build.log; exit 1; }
	$(SAM_PYTHON) scripts/sam-expand.py template.yaml -o .aws-sam/expanded.json
	SPOTRUNNER_EXPANDED_TEMPLATE=$(CURDIR)/.aws-sam/expanded.json $(GO) test -count=1 -run '^TestExpanded$$' ./internal/deploy/
	$(CHECKOV) --framework cloudformation --quiet --compact --skip-download $(addprefix -f ,$(CHECKOV_TEMPLATES))

## lint: go vet, staticcheck, gofmt and shellcheck of the project's scripts
lint:
	$(GO) vet ./...
	shellcheck scripts/*.sh .ci/run
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './testdata/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the benchmarks, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## demo: the story on the local world (presets built, three jobs, instances, /status), under 2 minutes
demo:
	scripts/deps.sh --world
	scripts/with-world.sh $(GO) run ./internal/e2e/demo

clean:
	rm -rf build .aws-sam .cache/lambdasim
