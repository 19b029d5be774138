// Package chart holds the tests of the Helm chart charts/peermesh (`make
// helm-test`); it has no code of its own.
//
// The tests run the helm built by `make helm` (bin/helm, or $HELM) and the
// test control plane of `make kube-assets` (internal/testenv). They never
// skip: a missing binary fails them with the make target to run.
//
//   - TestLint: `helm lint` and `helm lint --strict`, for every values file
//     of testdata/values.
//   - TestPackage: the archive of `helm package` lints and renders every
//     case as the chart folder does.
//   - TestTemplateGolden: `helm template` of every values file compared with
//     testdata/<case>.golden; `go test ./test/chart -run TestTemplateGolden
//     -update` rewrites them.
//   - TestValuesSchemaRejects: bad values fail with the schema's message.
//   - TestChartInSync: crds/ and rbac/role.yaml are copies of
//     config/crd/bases and config/rbac/role.yaml (-update copies them), and
//     the rendered operator rules are those of config/rbac/role.yaml.
//   - TestServerDryRun: every rendered object of every case passes
//     `kubectl apply --dry-run=server`, with prometheus-operator's CRDs
//     installed from the example folder of its Go module.
//   - TestPodSecurityRestricted: every pod template is admitted as a dry-run
//     Pod in a namespace that enforces the restricted Pod Security Standard.
//   - TestHelmInstallUpgrade: `helm install`, `helm upgrade` with changed
//     values (cluster-wide to namespace-scoped RBAC) and `helm uninstall`
//     against the API server, checking the objects and, with
//     SubjectAccessReviews, the permissions of the operator and the nodes.
//
// `kubectl apply -k config/default --dry-run=server` is tested by
// TestInstallBundle in cmd/manager, which also runs the operator under the
// bundle's RBAC.
package chart
