# peermesh Makefile. Every tool is built from the Go module proxy into bin/ at
# a pinned version; nothing is downloaded with curl. `make help` lists targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Versions of the tools and of the test control plane.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
K8S_VERSION ?= 1.37.2

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBE_ASSETS ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS ?= $(KUBE_ASSETS)

IMG ?= ghcr.io/peermesh/peermesh:dev
GO_TEST_FLAGS ?= -race -count=1
TEST_TIMEOUT ?= 30m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Run gofmt on the code (rewrites files).
	gofmt -s -w $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v '^hack/tools/')

.PHONY: fmt-check
fmt-check: ## Fail when gofmt would change a file.
	@out=$$(gofmt -s -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (pinned, built into bin/).
	$(GOLANGCI_LINT) run ./...

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generate/manifests leave a diff.
	@if [ -n "$$(git status --porcelain -- api config)" ]; then \
		echo "make generate manifests changed files; run them and commit:"; git status --porcelain -- api config; git diff -- api config | head -50; exit 1; fi

##@ Build

.PHONY: build
build: ## Build bin/manager and bin/peernode.
	hack/build.sh $(LOCALBIN)

.PHONY: run
run: manifests generate ## Run the operator against the cluster in KUBECONFIG.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Test

.PHONY: kube-assets
kube-assets: ## Build kube-apiserver, kubectl and etcd into bin/k8s/$(K8S_VERSION).
	KUBE_ASSETS_OUT=$(KUBE_ASSETS) hack/kube-assets.sh

.PHONY: test
test: kube-assets helm ## Run all unit, loopback, envtest and chart tests with -race.
	go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-e2e
test-e2e: kube-assets build ## Run the end-to-end suite (real control plane, operator, nodes).
	go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) -tags e2e ./test/e2e/...

.PHONY: ci
ci: fmt-check vet verify-generated test ## Everything CI checks.

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
$(CONTROLLER_GEN):
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/.
$(GOLANGCI_LINT):
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool installs a Go program at a pinned version as bin/<name>-<version>
# and links bin/<name> to it, so a version bump rebuilds.
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Installing $${package} into $(LOCALBIN)" ;\
mkdir -p $(LOCALBIN); \
rm -f "$$(echo "$(1)" | sed "s/-$(3)$$//")"; \
GOBIN=$(LOCALBIN) go install $${package} ;\
mv "$$(echo "$(1)" | sed "s/-$(3)$$//")" $(1) ;\
} ;\
ln -sf "$$(basename $(1))" "$$(echo "$(1)" | sed "s/-$(3)$$//")"
endef

##@ Demo and benchmarks

.PHONY: demo
demo: build kube-assets ## The whole story: 5 nodes on loopback (discovery, trust, messages, file transfer), then control plane, operator and kubectl steps.
	go run ./hack/demo --peernode $(LOCALBIN)/peernode

.PHONY: bench
bench: kube-assets ## Run the benchmark programs (node figures beside raw TCP baselines of the same run; operator against the real API server).
	go run ./test/bench
	go run ./test/operatorbench
	go run ./test/enforcebench

.PHONY: soak
soak: ## Churn soak: nodes join and leave every second for 10 minutes; memory must stay flat.
	go run ./test/soak -duration 10m

##@ Helm chart

HELM ?= $(LOCALBIN)/helm

.PHONY: helm
helm: ## Build helm (HELM_VERSION, pinned by hack/tools/helm) into bin/; cached, a few minutes the first time.
	HELM_VERSION=$(HELM_VERSION) LOCALBIN=$(LOCALBIN) hack/helm.sh

.PHONY: helm-test
helm-test: helm kube-assets ## Chart tests: lint, golden templates, values schema, server dry-run, Pod Security, install and upgrade.
	HELM=$(HELM) go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./test/chart/...
