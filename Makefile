# runahead — `make help` lists the targets.
# Everything runs on the Node.js pinned in package.json (the npm package node@24), which npm puts
# first on PATH for its scripts; the targets below do the same.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE_MODULES := node_modules/.package-lock.json
# glibc keeps freed buffers for reuse (worker/runtime/ort.ts, MALLOC_TUNING_ENV; the launcher sets
# the same for the ranks it spawns).
export MALLOC_MMAP_THRESHOLD_ := 4194304
export MALLOC_TRIM_THRESHOLD_ := 17179869184
export MALLOC_TOP_PAD_ := 1073741824
RUNAHEAD := node bin/runahead.js
# The embedded default: KV-Runahead with 2 ranks as local processes (the local launcher), a
# synthetic model, the CPU, each rank on half of the cores; the chain's timeline is drawn in out/.
RUN_THREADS := $(shell n=$$(nproc); echo $$(( n / 2 > 0 ? n / 2 : 1 )))
RUN_ARGS ?= run --ranks 2 --model synthetic:small --prompt-tokens 1024 --max-new-tokens 4 --threads $(RUN_THREADS) --plot out/timeline.svg

.DEFAULT_GOAL := help

##@ Start here
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)}' $(MAKEFILE_LIST)

.PHONY: run
run: $(NODE_MODULES) ## Set up and run the main job on the embedded default (override with RUN_ARGS=...)
	@mkdir -p out
	$(RUNAHEAD) $(RUN_ARGS)

# The serving default: 2 warm ranks of the small preset behind /v1/completions; prompts split where
# the committed CPU cost profile says the chain is faster.
SERVE_ARGS ?= serve --ranks 2 --model synthetic:small --threads $(RUN_THREADS) --profile bench/results/cpu-balanced-h100host/profile.json --port 8000
.PHONY: serve
serve: $(NODE_MODULES) ## Serve OpenAI-style completions from warm local ranks on :8000 (override with SERVE_ARGS=...)
	$(RUNAHEAD) $(SERVE_ARGS)

.PHONY: test
test: $(NODE_MODULES) verify native envtest tools chromium ## Set up everything and run all the tests (what CI runs)
	KUBEBUILDER_ASSETS="$$(scripts/setup-envtest.sh)" RUNAHEAD_TOOLS="$$(scripts/setup-tools.sh)" npm test

##@ Development
$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: setup
setup: $(NODE_MODULES) ## Install the pinned Node.js and the dependencies

.PHONY: generate
generate: $(NODE_MODULES) ## Regenerate code from proto/ and crds/ from core/api (never edit the generated files)
	buf generate --template proto/buf.gen.onnx.yaml
	buf generate --template proto/buf.gen.rank.yaml
	node scripts/generate-crd.ts
	$(MAKE) --no-print-directory chart-crds

.PHONY: verify
verify: $(NODE_MODULES) ## Lint, type-check, check formatting, no import cycles, and that generated code is current
	$(MAKE) --no-print-directory generate
	git diff --exit-code -- worker/onnx/gen core/gen crds charts/runahead-operator/crds || { echo "generated code is stale: run make generate and commit" >&2; exit 1; }
	tsc -p tsconfig.json --noEmit
	madge --circular --warning --extensions ts --ts-config tsconfig.json core worker operator cli test bench scripts
	eslint .
	prettier --check --log-level warn .

.PHONY: unit
unit: $(NODE_MODULES) ## Run the unit tests only (no control plane needed)
	npm run test:unit

.PHONY: envtest
envtest: ## Build (once, cached in .cache/) kube-apiserver, etcd, kube-controller-manager and kubectl
	scripts/setup-envtest.sh >/dev/null

.PHONY: chromium
chromium: ## Install Debian's chromium for the dashboard test (once; apt-get, needs root)
	scripts/setup-chromium.sh >/dev/null

.PHONY: tools
tools: ## Build (once, cached in .cache/) helm and dockerfile-check (BuildKit's Dockerfile checks)
	scripts/setup-tools.sh >/dev/null

.PHONY: native
native: $(NODE_MODULES) ## Build the ort_io addon (IO binding into reused host buffers; build/native/, gcc)
	scripts/build-native.sh >/dev/null

.PHONY: cuda
cuda: $(NODE_MODULES) ## Install onnxruntime's CUDA 13 provider into node_modules (for --ep cuda; not needed by the tests)
	scripts/setup-cuda-provider.sh

.PHONY: build
build: $(NODE_MODULES) ## Compile TypeScript to dist/ (container images and the device bundle use it)
	tsc -p tsconfig.build.json

.PHONY: format
format: $(NODE_MODULES) ## Format the tree
	prettier --write --log-level warn .

##@ Deployment (Helm chart, container images)
CHART := charts/runahead-operator

.PHONY: chart-crds
chart-crds: ## Copy the generated CRDs into the chart's crds/ (part of make generate)
	rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/

.PHONY: chart-lint
chart-lint: $(NODE_MODULES) envtest tools ## helm lint --strict, then the chart tests (templates, schema, RBAC, dashboard, dry-run apply)
	"$$(scripts/setup-tools.sh)/helm" lint --strict $(CHART)
	KUBEBUILDER_ASSETS="$$(scripts/setup-envtest.sh)" RUNAHEAD_TOOLS="$$(scripts/setup-tools.sh)" npm test -- test/chart

.PHONY: images-lint
images-lint: $(NODE_MODULES) tools ## Lint the Dockerfiles (BuildKit's build checks and the project's rules; no engine needed)
	"$$(scripts/setup-tools.sh)/dockerfile-check" images/*.Dockerfile
	RUNAHEAD_TOOLS="$$(scripts/setup-tools.sh)" npm test -- test/images

##@ Benchmarks
.PHONY: bench
bench: $(NODE_MODULES) ## Single-rank CPU TTFT of the small preset at 1k/2k/4k tokens
	$(RUNAHEAD) bench --model synthetic:small --contexts 1024,2048,4096 --repeats 3 --warmup 1 --threads 2 --out bench/results/local-cpu-single.md

.PHONY: gpu-check
gpu-check: $(NODE_MODULES) ## On a GPU (after make cuda): the CUDA engine against transformers, the CPU engine and itself
	node bench/gpu/check.ts

LINK_HOST ?= dev-vm
.PHONY: bench-link
bench-link: $(NODE_MODULES) ## K/V link: gRPC (TLS on/off) vs raw TCP vs memcpy, llama3-8b's K/V at 4096 tokens → bench/results/link-$(LINK_HOST).{md,json}
	$(RUNAHEAD) bench link --repeats 5 --out bench/results/link-$(LINK_HOST).md --json-out bench/results/link-$(LINK_HOST).json

SERVE_BENCH := bench/results/serve-cpu-devvm/tiny
.PHONY: bench-serve
bench-serve: $(NODE_MODULES) ## Serving: one rank vs always split vs length-aware routing, 70% short / 30% long prompts → bench/results/serve-cpu-devvm/tiny/serve.{md,json}
	$(RUNAHEAD) bench serve --model synthetic:tiny --ranks 2 --threads 1 --mix 70:16-512,30:4096-12288 --requests 100 --warmup 3 --profile $(SERVE_BENCH)/profile.json --out $(SERVE_BENCH)/serve.md --json-out $(SERVE_BENCH)/serve.json

.PHONY: bench-memory
bench-memory: $(NODE_MODULES) ## Peak RSS per rank against context length (1k–32k, 2 and 4 ranks, single) → bench/results/cpu-small-memory.{md,json,svg}
	node bench/memory-sweep.ts --single-contexts 1024,2048,4096,8192,16384,32768

.PHONY: projection
projection: $(NODE_MODULES) ## PROJECTION of TTFT on 2/4/8 H200s from the single-H200 measurements → bench/results/projection-h200.{md,json}
	node bench/projection/project.ts

.PHONY: gpu-bench
gpu-bench: $(NODE_MODULES) ## On a GPU (after make cuda, with PyTorch): runahead beside PyTorch → bench/results/h200-cuda.{md,json}
	bench/gpu/run.sh out/gpu-bench smoke bench anchor check profile
	node bench/gpu/report.ts out/gpu-bench bench/results/h200-cuda

# Pack Node.js, production node_modules and the Vulkan loader for the GPU machine. Not in `make help`:
# it runs ../shared/device/pack.sh, which is outside this repository (the development machines' device
# tooling), so it does nothing useful in a clone.
.PHONY: device-pack
device-pack: build
	../shared/device/pack.sh
