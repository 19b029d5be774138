// Package monitoring tests the chart's monitoring files against real tools:
// charts/peermesh/files/prometheus-rules.yaml (the alert rules),
// prometheus-rules_test.yaml (their promtool unit tests) and
// dashboards/peermesh.json (the Grafana dashboard).
//
//   - promtool checks the rules, runs their unit tests, and parses every
//     dashboard expression;
//   - the metric names of the rules and of the dashboard are exactly names
//     that the node (peernode/metrics), the operator (controllers) and
//     controller-runtime register;
//   - a real Prometheus scrapes a live mesh of peernode processes and the
//     operator (against the test control plane), and every expression of the
//     dashboard and of the rules returns data, while the alerts stay silent
//     where the mesh is healthy. The package runs in a network namespace of
//     its own (internal/netns) where each node has its own address, so the
//     operator finds the nodes as endpoints of their Service and counts them
//     in sync.
//
// Prometheus and promtool come from Debian's prometheus package; the tests
// fail, and never skip, without them.
package monitoring
