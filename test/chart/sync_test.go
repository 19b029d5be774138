package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/peermesh/peermesh/internal/testenv"
)

// copies are the chart's files that must equal a file of config/: the CRDs
// (Helm installs crds/; `make manifests` writes config/crd/bases) and the
// operator's rules (`make manifests` writes config/rbac/role.yaml from the
// +kubebuilder:rbac markers).
func copies(t *testing.T) map[string]string {
	t.Helper()
	root := testenv.RepoRoot()
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bases) == 0 {
		t.Fatal("config/crd/bases holds no CRD")
	}
	m := map[string]string{ // chart file -> source
		filepath.Join(chartDir, "rbac", "role.yaml"): filepath.Join(root, "config", "rbac", "role.yaml"),
	}
	for _, b := range bases {
		m[filepath.Join(chartDir, "crds", filepath.Base(b))] = b
	}
	return m
}

// TestChartInSync fails when the chart's copies drift from config/ (-update
// copies them), and when the chart's crds/ holds a CRD config/crd/bases
// does not.
func TestChartInSync(t *testing.T) {
	want := copies(t)
	chartCRDs, err := filepath.Glob(filepath.Join(chartDir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range chartCRDs {
		if _, ok := want[f]; !ok {
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s is not in config/crd/bases (go test ./test/chart -run TestChartInSync -update removes it)", f)
		}
	}
	for dst, src := range want {
		srcData, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, srcData, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		dstData, err := os.ReadFile(dst)
		if err != nil {
			t.Errorf("%v (go test ./test/chart -run TestChartInSync -update copies %s)", err, src)
			continue
		}
		if !bytes.Equal(srcData, dstData) {
			t.Errorf("%s differs from %s (after `make manifests`, run go test ./test/chart -run TestChartInSync -update)", dst, src)
		}
	}
}

// ruleTriple is one permission: API group, resource and verb (with the
// resource names, if any).
type ruleTriple struct{ group, resource, verb, names string }

func triples(rules []rbacv1.PolicyRule) []ruleTriple {
	var out []ruleTriple
	for _, r := range rules {
		names := ""
		if len(r.ResourceNames) > 0 {
			n := slices.Clone(r.ResourceNames)
			sort.Strings(n)
			names = strings.Join(n, ",")
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, ruleTriple{g, res, v, names})
				}
			}
		}
	}
	slices.SortFunc(out, compareTriples)
	return slices.Compact(out)
}

func managerRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return role
}

func rulesOf(t *testing.T, o object) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole // same rules field as Role
	if err := yaml.Unmarshal([]byte(o.raw), &role); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return role.Rules
}

// TestOperatorRulesMatchRole checks the rendered operator RBAC against
// config/rbac/role.yaml: the same rules in cluster-wide mode; in
// namespace-scoped mode, the same permissions split between a Role in each
// watched namespace and a ClusterRole for the cluster-scoped Namespaces.
func TestOperatorRulesMatchRole(t *testing.T) {
	role := managerRole(t)
	t.Run("cluster-wide", func(t *testing.T) {
		var found bool
		for _, o := range splitObjects(t, render(t, filepath.Join("testdata", "values", "default.yaml"))) {
			if o.kind == "ClusterRole" {
				found = true
				if got := rulesOf(t, o); !reflect.DeepEqual(got, role.Rules) {
					t.Errorf("%s rules differ from config/rbac/role.yaml:\n got %+v\nwant %+v", o, got, role.Rules)
				}
			}
			if o.kind == "Role" && o.name != releaseName+"-operator-leader-election" {
				t.Errorf("cluster-wide mode renders %s", o)
			}
		}
		if !found {
			t.Error("no ClusterRole rendered")
		}
	})
	t.Run("namespace-scoped", func(t *testing.T) {
		watched := []string{releaseNamespace, "team-green"} // testdata/values/namespaced.yaml
		want := triples(role.Rules)
		byNS := map[string][]ruleTriple{}
		var cluster []ruleTriple
		for _, o := range splitObjects(t, render(t, filepath.Join("testdata", "values", "namespaced.yaml"))) {
			switch {
			case o.kind == "ClusterRole":
				cluster = append(cluster, triples(rulesOf(t, o))...)
			case o.kind == "Role" && o.name == releaseName+"-operator":
				byNS[o.ns] = triples(rulesOf(t, o))
			}
		}
		for _, tr := range cluster {
			if tr.resource != "namespaces" {
				t.Errorf("the ClusterRole of namespace-scoped mode grants %+v: only Namespaces, which are cluster-scoped, belong there", tr)
			}
		}
		for _, ns := range watched {
			got, ok := byNS[ns]
			if !ok {
				t.Errorf("no operator Role in watched namespace %s", ns)
				continue
			}
			union := triples(nil)
			union = append(union, got...)
			union = append(union, cluster...)
			slices.SortFunc(union, compareTriples)
			union = slices.Compact(union)
			if !reflect.DeepEqual(union, want) {
				t.Errorf("Role in %s + ClusterRole grant\n %+v\nconfig/rbac/role.yaml grants\n %+v", ns, union, want)
			}
		}
		if len(byNS) != len(watched) {
			t.Errorf("operator Roles in %d namespaces, want %d (%v)", len(byNS), len(watched), watched)
		}
	})
}

func compareTriples(a, b ruleTriple) int {
	for _, c := range [][2]string{{a.group, b.group}, {a.resource, b.resource}, {a.verb, b.verb}, {a.names, b.names}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}
