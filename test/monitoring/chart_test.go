package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/peermesh/peermesh/internal/testenv"
)

// The chart's monitoring files.
var (
	filesDir      = filepath.Join(testenv.RepoRoot(), "charts", "peermesh", "files")
	rulesFile     = filepath.Join(filesDir, "prometheus-rules.yaml")
	rulesTestFile = filepath.Join(filesDir, "prometheus-rules_test.yaml")
	dashboardFile = filepath.Join(filesDir, "dashboards", "peermesh.json")
)

// The alerts the chart ships; docs/operations.md has a section for each.
var wantAlerts = []string{
	"PeermeshNodeNoPeers",
	"PeermeshPolicyNotPropagated",
	"PeermeshDenialSurge",
	"PeermeshConfigReloadFailing",
	"PeermeshOperatorDown",
}

const runbookBase = "https://github.com/peermesh/peermesh/blob/main/docs/operations.md#"

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// loadRules returns the rules of the rule file, in order.
func loadRules(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return rules
}

// query is one PromQL expression of the dashboard: a panel target's or the
// selector of a template variable's query.
type query struct {
	Where string // panel title and refId, or variable name
	Expr  string // as written, with Grafana variables
}

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	UID           string
	Title         string
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type variable struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Query    json.RawMessage `json:"query"`
	AllowAll bool            `json:"includeAll"`
	AllValue string          `json:"allValue"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels returns the panels, those of collapsed rows included.
func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// labelValuesRE matches Grafana's Prometheus variable queries
// label_values(selector, label) and label_values(label).
var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// queries returns every PromQL expression of the dashboard: the targets of
// the panels, and the selectors of the query variables (label_values) and
// the expressions of query_result variables.
func (d *dashboard) queries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has no expr", p.Title, tg.RefID)
				continue
			}
			out = append(out, query{Where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), Expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := variableQuery(t, v)
		switch {
		case labelValuesRE.MatchString(q):
			m := labelValuesRE.FindStringSubmatch(q)
			if m[1] == "" {
				t.Errorf("variable %s: label_values(%s) without a metric selector scans every series: name a metric", v.Name, m[2])
				continue
			}
			out = append(out, query{Where: "variable " + v.Name, Expr: m[1]})
		case strings.HasPrefix(strings.TrimSpace(q), "query_result("):
			e := strings.TrimSpace(q)
			out = append(out, query{Where: "variable " + v.Name, Expr: e[len("query_result(") : len(e)-1]})
		default:
			t.Errorf("variable %s: query %q is not label_values(...) or query_result(...)", v.Name, q)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return out
}

// variableQuery returns the query of a query variable, written as a string
// or as {"query": ...}.
func variableQuery(t *testing.T, v variable) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		t.Fatalf("variable %s: query: %v", v.Name, err)
	}
	return o.Query
}

// Values the tests give Grafana's variables: every namespace and mesh, and
// a 5-minute rate window (Grafana's $__rate_interval is at least four
// scrape intervals; 5 minutes keeps the test's events in the window however
// slowly the machine runs).
var grafanaVars = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
	"namespace":       ".*",
	"mesh":            ".*",
}

var grafanaVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]`)

// substitute replaces the Grafana variables of expr with grafanaVars; an
// unknown variable is an error.
func substitute(expr string) (string, error) {
	var unknown []string
	out := grafanaVarRE.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVarRE.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		v, ok := grafanaVars[name]
		if !ok {
			unknown = append(unknown, m)
			return m
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %v in %q", unknown, expr)
	}
	return out, nil
}

// substituted returns the dashboard's queries with the variables replaced.
func substituted(t *testing.T, qs []query) []query {
	t.Helper()
	out := make([]query, 0, len(qs))
	for _, q := range qs {
		e, err := substitute(q.Expr)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		out = append(out, query{Where: q.Where, Expr: e})
	}
	return out
}

// TestRulesFile checks what promtool does not: the five alerts, each with a
// severity, a summary, a description and the runbook link to its section of
// docs/operations.md.
func TestRulesFile(t *testing.T) {
	var got []string
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		got = append(got, r.Alert)
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if strings.Contains(r.Expr, "job=") || strings.Contains(r.Expr, "job!") {
			t.Errorf("%s selects a job label, whose value depends on how the target is scraped: %s", r.Alert, r.Expr)
		}
	}
	if !sameSet(got, wantAlerts) {
		t.Errorf("alerts = %v, want %v", got, wantAlerts)
	}
	// Each runbook_url anchor exists: docs/operations.md has a heading
	// "### <alert>", which GitHub turns into #<alert in lower case>.
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range wantAlerts {
		if !strings.Contains(string(doc), "\n### "+a+"\n") {
			t.Errorf("docs/operations.md has no section \"### %s\" for the alert's runbook_url", a)
		}
	}
}

// TestDashboardFile checks the dashboard's structure: a datasource variable
// for Prometheus that every panel and target uses, unique panel ids, and
// namespace and mesh variables with an "All" that matches everything.
func TestDashboardFile(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a Grafana 9+ dashboard (about 39)", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("want a variable datasource of type datasource for prometheus, got %+v", v)
	}
	for _, name := range []string{"namespace", "mesh"} {
		if v, ok := vars[name]; !ok || v.Type != "query" || !v.AllowAll || v.AllValue != ".*" {
			t.Errorf("want a query variable %s with All = .*, got %+v", name, v)
		}
	}
	const ds = `{"type":"prometheus","uid":"${datasource}"}`
	compact := func(r json.RawMessage) string {
		var v any
		if json.Unmarshal(r, &v) != nil {
			return string(r)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if compact(p.Datasource) != ds {
			t.Errorf("panel %q: datasource %s, want %s", p.Title, p.Datasource, ds)
		}
		for _, tg := range p.Targets {
			if compact(tg.Datasource) != ds {
				t.Errorf("panel %q target %s: datasource %s, want %s", p.Title, tg.RefID, tg.Datasource, ds)
			}
		}
	}
	for _, q := range d.queries(t) {
		if _, err := substitute(q.Expr); err != nil {
			t.Errorf("%s: %v", q.Where, err)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
