package chart

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden, and the chart's copies of config/ (crds/, rbac/role.yaml)")

const (
	rulesFile     = "files/prometheus-rules.yaml"
	dashboardFile = "files/dashboards/peermesh.json"
	dashboardKey  = "peermesh.json"
)

// TestLint runs helm lint, plain and --strict, with the defaults and with
// every values file.
func TestLint(t *testing.T) {
	helm(t, "", "lint", chartDir)
	helm(t, "", "lint", "--strict", chartDir)
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := helm(t, "", "lint", "--strict", chartDir, "--namespace", releaseNamespace, "-f", tc.values)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint --strict:\n%s", out)
			}
		})
	}
}

// TestPackage packages the chart as `helm package` does for a release and
// checks that the archive renders every case exactly as the chart folder
// does: .helmignore keeps nothing out that the templates read.
func TestPackage(t *testing.T) {
	dir := t.TempDir()
	out := helm(t, "", "package", chartDir, "--destination", dir)
	archive := filepath.Join(dir, "peermesh-0.1.0.tgz")
	if !strings.Contains(out, archive) {
		t.Fatalf("helm package: %s, want %s", out, archive)
	}
	helm(t, "", "lint", "--strict", archive)
	for _, tc := range testCases(t) {
		got := helm(t, "", "template", releaseName, archive, "--namespace", releaseNamespace, "-f", tc.values)
		if want := render(t, tc.values); got != want {
			t.Errorf("%s: the packaged chart renders differently from charts/peermesh:\n%s", tc.name, lineDiff(want, got))
		}
	}
}

// TestTemplateGolden compares `helm template` of every values file with
// testdata/<case>.golden. The PrometheusRule's groups and the dashboard's
// JSON are checked against the chart's files and left out of the golden
// files (they change with the rules and the dashboard, not the templates).
func TestTemplateGolden(t *testing.T) {
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got := normalize(t, render(t, tc.values))
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./test/chart -run TestTemplateGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("helm template -f %s differs from %s (if the change is intended: go test ./test/chart -run TestTemplateGolden -update):\n%s",
					tc.values, golden, lineDiff(string(want), got))
			}
		})
	}
}

// normalize replaces the PrometheusRule's groups and the dashboard JSON by
// placeholders after checking them against the chart's files.
func normalize(t *testing.T, manifest string) string {
	t.Helper()
	objs := splitObjects(t, manifest)
	var b strings.Builder
	for _, o := range objs {
		doc := o.raw
		switch {
		case o.kind == "PrometheusRule":
			checkRules(t, o)
			spec := o.fields["spec"].(map[string]any)
			spec["groups"] = "<the groups of " + rulesFile + ">"
			doc = remarshal(t, o)
		case o.kind == "ConfigMap" && hasKey(o.fields, "data", dashboardKey):
			checkDashboard(t, o)
			o.fields["data"].(map[string]any)[dashboardKey] = "<" + dashboardFile + ">"
			doc = remarshal(t, o)
		}
		b.WriteString("---\n")
		b.WriteString(doc)
		b.WriteString("\n")
	}
	return b.String()
}

func hasKey(m map[string]any, keys ...string) bool {
	for i, k := range keys {
		v, ok := m[k]
		if !ok {
			return false
		}
		if i == len(keys)-1 {
			return true
		}
		if m, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}

// remarshal writes o's fields back as YAML under its source comment.
func remarshal(t *testing.T, o object) string {
	t.Helper()
	out, err := yaml.Marshal(o.fields)
	if err != nil {
		t.Fatal(err)
	}
	return "# Source: " + o.source + "\n" + strings.TrimSuffix(string(out), "\n")
}

// checkRules checks that a rendered PrometheusRule holds the groups of the
// chart's rule file, unchanged.
func checkRules(t *testing.T, o object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, rulesFile))
	if err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	got := o.fields["spec"].(map[string]any)["groups"]
	if got == nil || !reflect.DeepEqual(got, file["groups"]) {
		t.Errorf("%s: spec.groups differ from the groups of %s", o, rulesFile)
	}
}

// checkDashboard checks that a rendered dashboard ConfigMap holds the
// chart's dashboard JSON, unchanged and valid.
func checkDashboard(t *testing.T, o object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, dashboardFile))
	if err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	var want, got any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	text, _ := o.fields["data"].(map[string]any)[dashboardKey].(string)
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("%s: data[%s] is not valid JSON: %v", o, dashboardKey, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: data[%s] differs from %s", o, dashboardKey, dashboardFile)
	}
}

// lineDiff returns the first differing lines of want and got, with context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			from := max(0, i-3)
			var b strings.Builder
			for j := from; j < i; j++ {
				b.WriteString("  " + w[j] + "\n")
			}
			for j := i; j < min(i+5, len(w)); j++ {
				b.WriteString("- " + w[j] + "\n")
			}
			for j := i; j < min(i+5, len(g)); j++ {
				b.WriteString("+ " + g[j] + "\n")
			}
			return "first difference at line " + strconv.Itoa(i+1) + ":\n" + b.String()
		}
	}
	return "(no line differs)"
}

// TestValuesSchemaRejects checks that values.schema.json refuses bad values
// with a message that names the value and the rule, and that the template
// checks refuse what the schema cannot express.
func TestValuesSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want []string
	}{
		{"unknown top-level key", []string{"replicaCount=3"},
			[]string{"at ''", "additional properties 'replicaCount' not allowed"}},
		{"misspelt operator key", []string{"operator.watchNamespace[0]=a"},
			[]string{"at '/operator'", "additional properties 'watchNamespace' not allowed"}},
		{"no operator replica", []string{"operator.replicas=0"},
			[]string{"at '/operator/replicas'", "minimum: got 0, want 1"}},
		{"pull policy", []string{"image.pullPolicy=Sometimes"},
			[]string{"at '/image/pullPolicy'", "value must be one of 'Always', 'IfNotPresent', 'Never'"}},
		{"digest", []string{"image.digest=latest"},
			[]string{"at '/image/digest'", "does not match pattern"}},
		{"mesh name not a DNS label", []string{"meshes[0].name=Blue_1"},
			[]string{"at '/meshes/0/name'", "'Blue_1' does not match pattern"}},
		{"mesh name too long", []string{"meshes[0].name=" + strings.Repeat("a", 41)},
			[]string{"at '/meshes/0/name'", "maxLength: got 41, want 40"}},
		{"mesh without name", []string{"meshes[0].replicas=3"},
			[]string{"at '/meshes/0'", "missing property 'name'"}},
		{"port out of range", []string{"meshes[0].name=a", "meshes[0].peerPort=70000"},
			[]string{"at '/meshes/0/peerPort'", "maximum: got 70,000, want 65,535"}},
		{"negative replicas", []string{"meshDefaults.replicas=-1"},
			[]string{"at '/meshDefaults/replicas'", "minimum: got -1, want 0"}},
		{"anti-affinity", []string{"meshes[0].name=a", "meshes[0].podAntiAffinity=hard"},
			[]string{"at '/meshes/0/podAntiAffinity'", "value must be one of 'preferred', 'required', 'none'"}},
		{"bind address", []string{"meshDefaults.bindAddress=127.0.0.1"},
			[]string{"at '/meshDefaults/bindAddress'", "value must be one of '0.0.0.0', '::'"}},
		{"unknown mesh key", []string{"meshes[0].name=a", "meshes[0].replica=3"},
			[]string{"at '/meshes/0'", "additional properties 'replica' not allowed"}},
		{"watched namespace not a DNS label", []string{"operator.watchNamespaces[0]=Team_A"},
			[]string{"at '/operator/watchNamespaces/0'", "'Team_A' does not match pattern"}},
		{"policy mode", []string{"meshes[0].name=a", "meshes[0].policy.spec.mode=Permissive"},
			[]string{"at '/meshes/0/policy/spec/mode'", "value must be one of 'Enforce', 'Audit'"}},
		{"scrape interval", []string{"monitoring.podMonitor.interval=30 seconds"},
			[]string{"at '/monitoring/podMonitor/interval'", "does not match pattern"}},
		{"dashboard label value not a string", []string{"monitoring.dashboard.labelValue=1"},
			[]string{"at '/monitoring/dashboard/labelValue'", "got number, want string"}},
		{"operator log level", []string{"operator.logLevel=verbose"},
			[]string{"at '/operator/logLevel'", "value must be one of 'debug', 'info', 'error'"}},
		{"PDB of none", []string{"meshDefaults.podDisruptionBudget.maxUnavailable=0"},
			[]string{"at '/meshDefaults/podDisruptionBudget/maxUnavailable'", "minimum: got 0, want 1"}},
		// Rules across values, checked by the templates.
		{"duplicate mesh", []string{"meshes[0].name=a", "meshes[1].name=a"},
			[]string{`meshes[1]: mesh "a" is listed twice in namespace "peermesh-system"`}},
		{"mesh outside the watched namespaces", []string{"operator.watchNamespaces[0]=other", "meshes[0].name=a"},
			[]string{`meshes[0]: mesh "a" is in namespace "peermesh-system", which operator.watchNamespaces [other] does not list`}},
		{"replicas without leader election", []string{"operator.replicas=2", "operator.leaderElection=false"},
			[]string{"operator.replicas > 1 needs operator.leaderElection: true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", releaseName, chartDir, "--namespace", releaseNamespace}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, stderr, err := runHelm(t, "", args...)
			if err == nil {
				t.Fatalf("helm template --set %s: accepted, want an error\n%s", strings.Join(tc.set, " --set "), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("helm template --set %s: the error does not say %q:\n%s", strings.Join(tc.set, " --set "), w, stderr)
				}
			}
		})
	}
}
