package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// TestServerDryRun applies every rendered object of every case with
// `kubectl apply --dry-run=server`: the API server validates each against
// its schema (built-in kinds, the chart's CRDs and prometheus-operator's)
// and runs admission, without storing anything. Any warning fails the test.
func TestServerDryRun(t *testing.T) {
	c := testCluster(t)
	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			manifest := render(t, tc.values)
			if len(splitObjects(t, manifest)) == 0 {
				t.Fatal("nothing rendered")
			}
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			out, stderr, err := c.runStreams("apply", "--dry-run=server", "-f", path)
			if err != nil {
				t.Fatal(err)
			}
			// Warnings name deprecated APIs, unknown fields and Pod
			// Security violations: a chart must render none.
			if strings.TrimSpace(stderr) != "" {
				t.Errorf("kubectl apply --dry-run=server warns:\n%s", stderr)
			}
			for _, o := range splitObjects(t, manifest) {
				if !strings.Contains(out, "/"+o.name+" ") {
					t.Errorf("kubectl apply --dry-run=server did not report %s:\n%s", o, out)
				}
			}
		})
	}
}

// TestPodSecurityRestricted creates every pod template of every case as a
// dry-run Pod in its namespace, which enforces the restricted Pod Security
// Standard: kube-apiserver's PodSecurity admission refuses any template that
// breaks it. A privileged Pod is refused there first, proving the check is on.
func TestPodSecurityRestricted(t *testing.T) {
	c := testCluster(t)
	ctx := context.Background()
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	privileged := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: releaseNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "example.com/c", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
	if _, err := c.client.CoreV1().Pods(releaseNamespace).Create(ctx, privileged, dryRun); err == nil ||
		!strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
		t.Fatalf("a privileged Pod in %s: got %v, want a PodSecurity violation", releaseNamespace, err)
	}

	for _, tc := range testCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			objs := splitObjects(t, render(t, tc.values))
			// Admission refuses a Pod whose ServiceAccount does not exist:
			// create the case's ServiceAccounts first.
			for _, o := range objs {
				if o.kind == "ServiceAccount" {
					applyServerSide(t, c, o)
				}
			}
			pods := 0
			for _, o := range objs {
				var tmpl corev1.PodTemplateSpec
				switch o.kind {
				case "Deployment":
					var d appsv1.Deployment
					unmarshalStrict(t, o, &d)
					tmpl = d.Spec.Template
				case "StatefulSet":
					var s appsv1.StatefulSet
					unmarshalStrict(t, o, &s)
					tmpl = s.Spec.Template
				case "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod":
					t.Fatalf("%s: a workload kind this test does not check yet", o)
				default:
					continue
				}
				pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
				pod.Name, pod.Namespace = strings.ToLower(o.kind)+"-"+o.name, o.ns
				if _, err := c.client.CoreV1().Pods(o.ns).Create(ctx, pod, dryRun); err != nil {
					t.Errorf("the pod template of %s is not admitted under the restricted Pod Security Standard: %v", o, err)
				}
				pods++
			}
			if pods == 0 {
				t.Error("no pod template rendered")
			}
		})
	}
}

func unmarshalStrict(t *testing.T, o object, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(o.raw), into); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
}

// applyServerSide creates or updates one object for real.
func applyServerSide(t *testing.T, c *cluster, o object) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "object.yaml")
	if err := os.WriteFile(path, []byte(o.raw), 0o600); err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, "apply", "--server-side", "--field-manager=chart-test", "-f", path)
}

// TestHelmInstallUpgrade installs the chart into the API server with helm,
// upgrades it with changed values (more replicas, a new mesh, cluster-wide
// to namespace-scoped RBAC), and uninstalls it. No controller runs there,
// so nothing becomes ready: the test checks the objects and, with
// SubjectAccessReviews, what the operator's and the nodes' ServiceAccounts
// may do.
func TestHelmInstallUpgrade(t *testing.T) {
	c := testCluster(t)
	ctx := context.Background()
	const (
		ns      = "helm-install"
		greenNS = "helm-green"
		release = "peermesh"
	)
	for _, n := range []string{ns, greenNS} {
		if err := c.createRestrictedNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	operatorSA := "system:serviceaccount:" + ns + ":" + release + "-operator"

	installValues := writeValues(t, `
meshes:
  - name: blue
    sharedKeySecret: blue-key
    policy:
      enabled: true
      spec:
        mode: Audit
networkPolicy:
  enabled: true
monitoring:
  serviceMonitor: {enabled: true}
  podMonitor: {enabled: true}
  prometheusRule: {enabled: true}
  dashboard: {enabled: true}
`)
	out := helm(t, c.kubeconfig, "install", release, chartDir, "--namespace", ns, "-f", installValues)
	for _, want := range []string{"STATUS: deployed", "peermesh 0.1.0 is installed as release peermesh in namespace helm-install",
		"kubectl -n helm-install rollout status statefulset/peermesh-blue"} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install output does not say %q:\n%s", want, out)
		}
	}
	c.kubectl(t, "-n", ns, "get", "deployment/peermesh-operator", "statefulset/peermesh-blue", "service/peermesh-blue",
		"service/peermesh-operator-metrics", "poddisruptionbudget/peermesh-blue", "networkpolicy/peermesh-blue",
		"serviceaccount/peernode-blue", "role/peernode-blue", "rolebinding/peernode-blue",
		"role/peermesh-operator-leader-election", "peertrustpolicy/peermesh-blue",
		"servicemonitor/peermesh-operator", "podmonitor/peermesh-nodes", "prometheusrule/peermesh", "configmap/peermesh-dashboard")
	c.kubectl(t, "get", "clusterrole/peermesh-operator", "clusterrolebinding/peermesh-operator")
	if got := c.kubectl(t, "-n", ns, "get", "statefulset/peermesh-blue", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Errorf("statefulset/peermesh-blue has %s replicas, want 3", got)
	}

	// Cluster-wide mode: the operator may do everything config/rbac/role.yaml
	// grants, in any namespace; the nodes only what config/peernode/role.yaml says.
	role := managerRole(t)
	checkAccess(t, c, operatorSA, role.Rules, []string{ns, greenNS, "default"}, nil)
	nodeSA := "system:serviceaccount:" + ns + ":peernode-blue"
	checkNodeAccess(t, c, nodeSA, ns, "peermesh-blue", "blue-key")

	upgradeValues := writeValues(t, `
operator:
  watchNamespaces: [helm-install, helm-green]
meshes:
  - name: blue
    replicas: 5
  - name: green
    namespace: helm-green
    failClosed: true
`)
	// The upgrade procedure of docs/operations.md: CRDs first (Helm never
	// upgrades them), then the release.
	c.kubectl(t, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(chartDir, "crds"))
	out = helm(t, c.kubeconfig, "upgrade", release, chartDir, "--namespace", ns, "-f", upgradeValues)
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "REVISION: 2") {
		t.Errorf("helm upgrade output:\n%s", out)
	}
	if got := c.kubectl(t, "-n", ns, "get", "statefulset/peermesh-blue", "-o", "jsonpath={.spec.replicas}"); got != "5" {
		t.Errorf("after the upgrade statefulset/peermesh-blue has %s replicas, want 5", got)
	}
	if got := c.kubectl(t, "-n", ns, "get", "deployment/peermesh-operator", "-o", "jsonpath={.spec.template.spec.containers[0].args}"); !strings.Contains(got, "--watch-namespaces=helm-install,helm-green") {
		t.Errorf("after the upgrade the operator's args are %s, want --watch-namespaces=helm-install,helm-green", got)
	}
	c.kubectl(t, "-n", greenNS, "get", "statefulset/peermesh-green", "service/peermesh-green", "role/peermesh-operator", "rolebinding/peermesh-operator")
	c.kubectl(t, "get", "clusterrole/peermesh-operator-namespaces")
	// Turned off by the upgrade: gone.
	for _, obj := range []string{"clusterrole/peermesh-operator", "-n " + ns + " servicemonitor/peermesh-operator",
		"-n " + ns + " peertrustpolicy/peermesh-blue", "-n " + ns + " networkpolicy/peermesh-blue"} {
		args := append(strings.Fields(obj), "--ignore-not-found", "-o", "name")
		if got := c.kubectl(t, append([]string{"get"}, args...)...); got != "" {
			t.Errorf("after the upgrade %s still exists", got)
		}
	}
	// Namespace-scoped mode: the same permissions in the watched namespaces
	// only, and Namespaces cluster-wide; the nodes lost the Secret.
	checkAccess(t, c, operatorSA, role.Rules, []string{ns, greenNS}, []string{"default"})
	checkNodeAccess(t, c, nodeSA, ns, "peermesh-blue", "")
	checkNodeAccess(t, c, "system:serviceaccount:"+greenNS+":peernode-green", greenNS, "peermesh-green", "")

	helm(t, c.kubeconfig, "uninstall", release, "--namespace", ns)
	for _, obj := range []string{"-n " + ns + " deployment/peermesh-operator", "-n " + greenNS + " statefulset/peermesh-green",
		"clusterrole/peermesh-operator-namespaces"} {
		args := append(strings.Fields(obj), "--ignore-not-found", "-o", "name")
		if got := c.kubectl(t, append([]string{"get"}, args...)...); got != "" {
			t.Errorf("after helm uninstall %s still exists", got)
		}
	}
	// Helm never deletes the CRDs of crds/ (docs/operations.md, "Uninstall").
	c.kubectl(t, "get", "crd/peertrustpolicies.p2p.peermesh.io", "crd/peerallowlists.p2p.peermesh.io")
}

func writeValues(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// access is one SubjectAccessReview question.
type access struct {
	namespace, group, resource, verb, name string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.name != "" {
		s += "/" + a.name
	}
	if a.namespace != "" {
		s += " in " + a.namespace
	} else {
		s += " cluster-wide"
	}
	return s
}

// allowed asks the API server's authorizer whether user may do a.
func allowed(ctx context.Context, c *cluster, user string, a access) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + strings.Split(user, ":")[2], "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Group: a.group, Resource: a.resource, Verb: a.verb, Name: a.name,
		},
	}}
	res, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return res.Status.Allowed, nil
}

// expectAccess waits until the authorizer answers want for every question:
// the RBAC authorizer sees new bindings through an informer, a few
// milliseconds after they are written.
func expectAccess(t *testing.T, c *cluster, user string, want bool, questions []access) {
	t.Helper()
	ctx := context.Background()
	err := eventually(10*time.Second, func() error {
		var wrong []string
		for _, q := range questions {
			got, err := allowed(ctx, c, user, q)
			if err != nil {
				return err
			}
			if got != want {
				wrong = append(wrong, q.String())
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%s: allowed=%v, want %v, for: %s", user, !want, want, strings.Join(wrong, "; "))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// checkAccess checks that user may do everything rules grant in each of
// allowedNS (and may list and watch Namespaces), and nothing they grant on
// namespaced resources in deniedNS.
func checkAccess(t *testing.T, c *cluster, user string, rules []rbacv1.PolicyRule, allowedNS, deniedNS []string) {
	t.Helper()
	var yes, no []access
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if res == "namespaces" {
						yes = append(yes, access{group: g, resource: res, verb: v})
						continue
					}
					for _, ns := range allowedNS {
						yes = append(yes, access{namespace: ns, group: g, resource: res, verb: v})
					}
					for _, ns := range deniedNS {
						no = append(no, access{namespace: ns, group: g, resource: res, verb: v})
					}
				}
			}
		}
	}
	expectAccess(t, c, user, true, yes)
	expectAccess(t, c, user, false, no)
}

// checkNodeAccess checks a node's least privilege: get, list and watch on
// its mesh's ConfigMap only, get on the SharedKey Secret only when secret is
// set, nothing else.
func checkNodeAccess(t *testing.T, c *cluster, user, ns, configMap, secret string) {
	t.Helper()
	yes := []access{
		{namespace: ns, resource: "configmaps", verb: "get", name: configMap},
		{namespace: ns, resource: "configmaps", verb: "list", name: configMap},
		{namespace: ns, resource: "configmaps", verb: "watch", name: configMap},
	}
	no := []access{
		{namespace: ns, resource: "configmaps", verb: "get", name: "peermesh-other"},
		{namespace: ns, resource: "configmaps", verb: "list"},
		{namespace: ns, resource: "configmaps", verb: "update", name: configMap},
		{namespace: ns, resource: "secrets", verb: "list"},
		{namespace: ns, resource: "secrets", verb: "get", name: "other-key"},
		{namespace: ns, resource: "pods", verb: "list"},
		{namespace: "default", resource: "configmaps", verb: "get", name: configMap},
	}
	if secret != "" {
		yes = append(yes, access{namespace: ns, resource: "secrets", verb: "get", name: secret})
		no = append(no, access{namespace: ns, resource: "secrets", verb: "watch", name: secret})
	} else {
		no = append(no, access{namespace: ns, resource: "secrets", verb: "get", name: "blue-key"})
	}
	expectAccess(t, c, user, true, yes)
	expectAccess(t, c, user, false, no)
}
