package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// tool returns the path of a program of Debian's prometheus package: from
// PATH, else /usr/bin. A missing program fails the test: CI installs the
// package (apt-get install prometheus), and so must a developer.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/bin", name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p
	}
	t.Fatalf("%s not found in PATH or /usr/bin: install Debian's prometheus package (apt-get install prometheus), which provides prometheus and promtool", name)
	return ""
}

func runTool(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPromtoolCheckRules: promtool reads the rule file as it is shipped.
func TestPromtoolCheckRules(t *testing.T) {
	out := runTool(t, filesDir, tool(t, "promtool"), "check", "rules", filepath.Base(rulesFile))
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(loadRules(t))); !strings.Contains(out, want) {
		t.Errorf("promtool check rules: want %q in\n%s", want, out)
	}
}

// TestPromtoolTestRules runs the rules' unit tests, and checks that they
// test every alert both firing and silent.
func TestPromtoolTestRules(t *testing.T) {
	out := runTool(t, filesDir, tool(t, "promtool"), "test", "rules", filepath.Base(rulesTestFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: no SUCCESS in\n%s", out)
	}

	data, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alert     string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert] = true
			} else {
				silent[c.Alert] = true
			}
		}
	}
	for _, a := range wantAlerts {
		if !fires[a] {
			t.Errorf("%s: no promtool test case where it fires", a)
		}
		if !silent[a] {
			t.Errorf("%s: no promtool test case where it stays silent", a)
		}
	}
}

// TestPromtoolParsesDashboard parses every dashboard expression with
// promtool, offline: each one, its variables substituted, becomes a
// recording rule of a temporary rule file that promtool checks.
func TestPromtoolParsesDashboard(t *testing.T) {
	qs := substituted(t, loadDashboard(t).queries(t))
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, q := range qs {
		fmt.Fprintf(&b, "  - record: dashboard:query_%d\n    expr: %q\n", i, q.Expr)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "dashboard-rules.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool(t, "promtool"), "check", "rules", path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Name the panel of each failing expression.
		msg := string(out)
		for i, q := range qs {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("dashboard:query_%d", i), q.Where)
		}
		t.Fatalf("promtool does not parse the dashboard's expressions: %v\n%s", err, msg)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(qs)); !strings.Contains(string(out), want) {
		t.Errorf("want %q in\n%s", want, out)
	}
}
