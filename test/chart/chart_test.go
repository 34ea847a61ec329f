// Package chart_test renders the Helm chart charts/plexus with the helm binary
// named by $HELM (make test sets it) and checks the objects it produces.
package chart_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	release   = "plexus"
	namespace = "plexus-system"
	component = "lbipam"
	fullname  = "plexus-lbipam"
	crdName   = "ciliumloadbalancerippools.cilium.io"
)

var chartDir = filepath.Join("..", "..", "charts", "plexus")

// helm returns the helm binary to use, or skips the test without one.
func helm(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		t.Skip("HELM is not set: run `make test`, which builds helm and points HELM at it")
	}
	return bin
}

// render runs helm template on the chart with the given extra arguments
// (--set ..., --skip-schema-validation) and parses what it prints. The error
// holds helm's stderr.
func render(t *testing.T, args ...string) (objects, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", release, chartDir,
		"--namespace", namespace, "--include-crds"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(err.Error() + ": " + stderr.String())
	}
	return parse(t, stdout.Bytes()), nil
}

// parse splits a multi-document YAML stream into objects, skipping documents
// that hold only comments.
func parse(t *testing.T, data []byte) objects {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out objects
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading the rendered YAML: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			t.Fatalf("rendered document lacks apiVersion, kind or name:\n%s", doc)
		}
		out = append(out, u)
	}
}

type objects []*unstructured.Unstructured

// ids lists the objects as Kind/name, sorted.
func (o objects) ids() []string {
	var ids []string
	for _, u := range o {
		ids = append(ids, u.GetKind()+"/"+u.GetName())
	}
	slices.Sort(ids)
	return ids
}

// of returns the objects of a controller: its component label or its name.
func (o objects) of(name string) objects {
	var out objects
	for _, u := range o {
		if u.GetLabels()["app.kubernetes.io/component"] == name || u.GetName() == "plexus-"+name {
			out = append(out, u)
		}
	}
	return out
}

// get returns the object kind/name, failing the test when there is none.
func (o objects) get(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, o.ids())
	return nil
}

// typed converts u into a typed API object; unknown fields fail the test, so
// a misspelt field in a template is caught.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	out := new(T)
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s %s does not decode into %T: %v", u.GetKind(), u.GetName(), out, err)
	}
	return out
}

// get returns the object kind/name of o as a typed object.
func get[T any](t *testing.T, o objects, kind, name string) *T {
	t.Helper()
	return typed[T](t, o.get(t, kind, name))
}

// flags turns --name=value arguments into a map; a flag given twice fails.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Fatalf("argument %q is not --name=value", a)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("flag %s given twice in %v", name, args)
		}
		out[name] = value
	}
	return out
}

// defaultFlags are the controller's flags with the chart's default values.
func defaultFlags() map[string]string {
	return map[string]string{
		"--metrics-bind-address":           ":8080",
		"--health-probe-bind-address":      ":8081",
		"--leader-elect":                   "true",
		"--leader-election-namespace":      namespace,
		"--leader-election-id":             fullname,
		"--leader-election-lease-duration": "15s",
		"--leader-election-renew-deadline": "10s",
		"--leader-election-retry-period":   "2s",
		"--zap-log-level":                  "info",
		"--enable-ipv4":                    "true",
		"--enable-ipv6":                    "false",
		"--default-lb-service-ipam":        "lbipam",
		"--workers":                        "16",
		"--allocation-events":              "true",
	}
}

// withFlags returns the default flags changed by set and without drop.
func withFlags(set map[string]string, drop ...string) map[string]string {
	f := defaultFlags()
	maps.Copy(f, set)
	for _, d := range drop {
		delete(f, d)
	}
	return f
}

// rbacFileRules are the rules of the ClusterRole that controller-gen wrote
// into the chart, the one source of truth the chart must follow.
func rbacFileRules(t *testing.T, name string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "files", "rbac", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("files/rbac/%s.yaml has no rules", name)
	}
	return role.Rules
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func TestChart(t *testing.T) {
	helm(t)
	for _, tc := range []struct {
		name string
		args []string
		// wantErr, when set, is a part of the error message the render must fail with.
		wantErr string
		// check looks at the objects of a successful render.
		check func(t *testing.T, o objects)
	}{{
		name: "defaults",
		check: func(t *testing.T, o objects) {
			checkController(t, o, true)
			d := get[appsv1.Deployment](t, o, "Deployment", fullname)
			equal(t, "replicas", d.Spec.Replicas, new(int32(2)))
			equal(t, "flags", flags(t, container(t, d).Args), defaultFlags())
			equal(t, "image", container(t, d).Image, "ghcr.io/plexus-net/plexus:0.1.0")
		},
	}, {
		name: "lbipam disabled",
		args: []string{"--set", "lbipam.enabled=false"},
		check: func(t *testing.T, o objects) {
			o.get(t, "CustomResourceDefinition", crdName)
			for _, u := range o {
				if u.GetKind() != "CustomResourceDefinition" {
					t.Errorf("rendered %s/%s with every controller off", u.GetKind(), u.GetName())
				}
			}
		},
	}, {
		name: "IPv6 and no default IPAM",
		args: []string{"--set", "ipv6.enabled=true", "--set", "lbipam.defaultLBServiceIPAM=none"},
		check: func(t *testing.T, o objects) {
			checkController(t, o, true)
			d := get[appsv1.Deployment](t, o, "Deployment", fullname)
			equal(t, "flags", flags(t, container(t, d).Args), withFlags(map[string]string{
				"--enable-ipv6":             "true",
				"--default-lb-service-ipam": "none",
			}))
		},
	}, {
		name: "IPv6 only, tuned",
		args: []string{"--set", "ipv4.enabled=false", "--set", "ipv6.enabled=true",
			"--set", "lbipam.workers=4", "--set", "lbipam.logLevel=debug", "--set", "lbipam.allocationEvents=false",
			"--set", "lbipam.leaderElection.leaseDuration=1m30s"},
		check: func(t *testing.T, o objects) {
			d := get[appsv1.Deployment](t, o, "Deployment", fullname)
			equal(t, "flags", flags(t, container(t, d).Args), withFlags(map[string]string{
				"--enable-ipv4":                    "false",
				"--enable-ipv6":                    "true",
				"--workers":                        "4",
				"--allocation-events":              "false",
				"--zap-log-level":                  "debug",
				"--leader-election-lease-duration": "1m30s",
			}))
		},
	}, {
		name: "one replica without leader election",
		args: []string{"--set", "lbipam.leaderElection.enabled=false", "--set", "lbipam.replicas=1"},
		check: func(t *testing.T, o objects) {
			checkController(t, o, false)
			d := get[appsv1.Deployment](t, o, "Deployment", fullname)
			equal(t, "replicas", d.Spec.Replicas, new(int32(1)))
			equal(t, "flags", flags(t, container(t, d).Args), withFlags(
				map[string]string{"--leader-elect": "false"},
				"--leader-election-namespace", "--leader-election-id", "--leader-election-lease-duration",
				"--leader-election-renew-deadline", "--leader-election-retry-period"))
		},
	}, {
		name:    "two replicas without leader election",
		args:    []string{"--set", "lbipam.leaderElection.enabled=false"},
		wantErr: "lbipam.replicas is 2 but lbipam.leaderElection.enabled is false",
	}, {
		name:    "bogus default IPAM, caught by the schema",
		args:    []string{"--set", "lbipam.defaultLBServiceIPAM=bogus"},
		wantErr: "at '/lbipam/defaultLBServiceIPAM': value must be one of 'lbipam', 'nodeipam', 'none'",
	}, {
		name:    "bogus default IPAM, caught by the template",
		args:    []string{"--set", "lbipam.defaultLBServiceIPAM=bogus", "--skip-schema-validation"},
		wantErr: `lbipam.defaultLBServiceIPAM is "bogus": it must be "lbipam"`,
	}, {
		name:    "misspelt value",
		args:    []string{"--set", "lbipam.replica=1"},
		wantErr: "at '/lbipam/replica'",
	}, {
		name:    "bad duration",
		args:    []string{"--set", "lbipam.leaderElection.renewDeadline=10"},
		wantErr: "at '/lbipam/leaderElection/renewDeadline'",
	}, {
		name: "image and pod placement",
		args: []string{"--set", "image.tag=v9.9.9", "--set", "image.repository=registry.example/plexus",
			"--set", "image.pullPolicy=Always",
			"--set", "lbipam.nodeSelector.kubernetes\\.io/os=linux",
			"--set", "lbipam.tolerations[0].operator=Exists",
			"--set-string", "lbipam.podAnnotations.prometheus\\.io/scrape=false",
			"--set", "lbipam.podAnnotations.team=net"},
		check: func(t *testing.T, o objects) {
			d := get[appsv1.Deployment](t, o, "Deployment", fullname)
			c := container(t, d)
			equal(t, "image", c.Image, "registry.example/plexus:v9.9.9")
			equal(t, "pull policy", c.ImagePullPolicy, corev1.PullAlways)
			pod := d.Spec.Template.Spec
			equal(t, "node selector", pod.NodeSelector, map[string]string{"kubernetes.io/os": "linux"})
			equal(t, "tolerations", pod.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}})
			equal(t, "pod annotations", d.Spec.Template.Annotations, map[string]string{
				"prometheus.io/scrape": "false",
				"prometheus.io/port":   "8080",
				"prometheus.io/path":   "/metrics",
				"team":                 "net",
			})
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := render(t, tc.args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("render failed: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("render succeeded, want an error with %q; objects: %v", tc.wantErr, o.ids())
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("render failed with\n%v\nwant an error with %q", err, tc.wantErr)
			case tc.check != nil:
				tc.check(t, o)
			}
		})
	}
}

// TestLint runs helm lint --strict on the chart.
func TestLint(t *testing.T) {
	out, err := exec.Command(helm(t), "lint", "--strict", chartDir).CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

// container returns the only container of d, which must be named after the controller.
func container(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	name := d.Labels["app.kubernetes.io/component"]
	if len(cs) != 1 || cs[0].Name != name {
		t.Fatalf("want one container named %s, got %+v", name, cs)
	}
	return cs[0]
}

// checkController checks what every render of the LB-IPAM controller has, whatever
// the values: the CRD, the set of objects, labels, namespaces, RBAC, and the
// pod's probes, ports and security. leaderElection says whether the Role and
// RoleBinding for the Lease must be there.
func checkController(t *testing.T, o objects, leaderElection bool) {
	t.Helper()
	o.get(t, "CustomResourceDefinition", crdName)
	checkControllerOf(t, o, component, leaderElection)
}

// checkControllerOf checks the objects every controller gets, for the
// controller named component.
func checkControllerOf(t *testing.T, o objects, component string, leaderElection bool) {
	t.Helper()
	fullname := "plexus-" + component

	want := []string{"ClusterRole/", "ClusterRoleBinding/", "Deployment/", "ServiceAccount/"}
	if leaderElection {
		want = append(want, "Role/", "RoleBinding/")
	}
	for i := range want {
		want[i] += fullname
	}
	slices.Sort(want)
	mine := o.of(component)
	equal(t, "objects of "+component, mine.ids(), want)

	for _, u := range mine {
		labels := u.GetLabels()
		for k, v := range map[string]string{
			"app.kubernetes.io/name":       "plexus",
			"app.kubernetes.io/component":  component,
			"app.kubernetes.io/instance":   release,
			"app.kubernetes.io/managed-by": "Helm",
			"helm.sh/chart":                "plexus-0.1.0",
		} {
			if labels[k] != v {
				t.Errorf("%s %s: label %s is %q, want %q", u.GetKind(), u.GetName(), k, labels[k], v)
			}
		}
		wantNS := namespace
		if strings.HasPrefix(u.GetKind(), "Cluster") {
			wantNS = ""
		}
		if u.GetNamespace() != wantNS {
			t.Errorf("%s %s: namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), wantNS)
		}
	}

	sa := []rbacv1.Subject{{Kind: "ServiceAccount", Name: fullname, Namespace: namespace}}
	cr := get[rbacv1.ClusterRole](t, o, "ClusterRole", fullname)
	equal(t, "ClusterRole rules", cr.Rules, rbacFileRules(t, component))
	crb := get[rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding", fullname)
	equal(t, "ClusterRoleBinding roleRef", crb.RoleRef,
		rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: fullname})
	equal(t, "ClusterRoleBinding subjects", crb.Subjects, sa)
	if leaderElection {
		checkLeaseRole(t, get[rbacv1.Role](t, o, "Role", fullname))
		rb := get[rbacv1.RoleBinding](t, o, "RoleBinding", fullname)
		equal(t, "RoleBinding roleRef", rb.RoleRef,
			rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: fullname})
		equal(t, "RoleBinding subjects", rb.Subjects, sa)
	}

	d := get[appsv1.Deployment](t, o, "Deployment", fullname)
	pod := d.Spec.Template.Spec
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod's labels %v", k, v, d.Spec.Template.Labels)
		}
	}
	equal(t, "serviceAccountName", pod.ServiceAccountName, fullname)
	equal(t, "automountServiceAccountToken", pod.AutomountServiceAccountToken, new(true))
	if pod.SecurityContext == nil {
		t.Fatal("pod has no securityContext")
	}
	equal(t, "pod runAsNonRoot", pod.SecurityContext.RunAsNonRoot, new(true))
	equal(t, "pod seccompProfile", pod.SecurityContext.SeccompProfile,
		&corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault})

	c := container(t, d)
	equal(t, "command", c.Command, []string{"/usr/local/bin/plexus-" + component + "-controller"})
	equal(t, "ports", c.Ports, []corev1.ContainerPort{
		{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
	})
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz")
	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz")
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	equal(t, "runAsNonRoot", sc.RunAsNonRoot, new(true))
	equal(t, "readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem, new(true))
	equal(t, "allowPrivilegeEscalation", sc.AllowPrivilegeEscalation, new(false))
	equal(t, "capabilities", sc.Capabilities, &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}})
	equal(t, "seccompProfile", sc.SeccompProfile,
		&corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault})
	checkResources(t, "requests", c.Resources.Requests, map[string]string{"cpu": "50m", "memory": "64Mi"})
	checkResources(t, "limits", c.Resources.Limits, map[string]string{"memory": "256Mi"})
	equal(t, "prometheus.io/scrape", d.Spec.Template.Annotations["prometheus.io/scrape"], "true")
	equal(t, "prometheus.io/port", d.Spec.Template.Annotations["prometheus.io/port"], "8080")
}

// checkLeaseRole checks that the leader-election Role grants the Lease named
// after the controller, and leases beyond that only create, which
// resourceNames cannot restrict.
func checkLeaseRole(t *testing.T, role *rbacv1.Role) {
	t.Helper()
	var byName, create bool
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "leases") {
			continue
		}
		equal(t, "lease rule apiGroups", r.APIGroups, []string{"coordination.k8s.io"})
		switch {
		case reflect.DeepEqual(r.ResourceNames, []string{role.Name}):
			byName = true
			equal(t, "verbs on the Lease", r.Verbs, []string{"get", "list", "watch", "update", "patch", "delete"})
		case len(r.ResourceNames) == 0:
			create = true
			equal(t, "verbs on any Lease", r.Verbs, []string{"create"})
		default:
			t.Errorf("lease rule with resourceNames %v", r.ResourceNames)
		}
	}
	if !byName || !create {
		t.Errorf("Role lacks the Lease rule by name (%t) or the create rule (%t): %+v", byName, create, role.Rules)
	}
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want httpGet %s, got %+v", what, path, p)
		return
	}
	equal(t, what+" probe path", p.HTTPGet.Path, path)
	equal(t, what+" probe port", p.HTTPGet.Port.IntValue(), 8081)
}

// checkResources compares a resource list with quantities given as strings.
func checkResources(t *testing.T, what string, got corev1.ResourceList, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("resource %s: got %v, want %v", what, got, want)
	}
	for name, q := range want {
		g, ok := got[corev1.ResourceName(name)]
		if !ok || g.Cmp(resource.MustParse(q)) != 0 {
			t.Errorf("resource %s %s: got %v, want %s", what, name, got, q)
		}
	}
}

func TestChartIPAM(t *testing.T) {
	helm(t)
	o, err := render(t, "--set", "ipam.enabled=true", "--set", "ipam.mode=multi-pool",
		"--set", "ipam.operator.autoCreateCiliumPodIPPools.default.ipv4.cidrs={10.10.0.0/16,10.11.0.0/16}",
		"--set", "ipam.operator.autoCreateCiliumPodIPPools.default.ipv4.maskSize=27",
		"--set", "ipam.operator.autoCreateCiliumPodIPPools.mars.ipv6.cidrs={fd00:20::/104}",
		"--set", "ipam.operator.autoCreateCiliumPodIPPools.mars.ipv6.maskSize=120")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliumnodes.cilium.io", "ciliumpodippools.cilium.io"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	checkControllerOf(t, o, "ipam", true)
	d := get[appsv1.Deployment](t, o, "Deployment", "plexus-ipam")
	got := container(t, d).Args
	want := []string{
		"--ipam-mode=multi-pool", "--enable-ipv4=true", "--enable-ipv6=false",
		"--cluster-pool-ipv4-cidr=10.0.0.0/8", "--cluster-pool-ipv4-mask-size=24",
		"--cluster-pool-ipv6-cidr=fd00::/104", "--cluster-pool-ipv6-mask-size=120", "--workers=16",
		"--auto-create-pool=default=ipv4-cidrs:10.10.0.0/16,10.11.0.0/16;ipv4-mask-size:27",
		"--auto-create-pool=mars=ipv6-cidrs:fd00:20::/104;ipv6-mask-size:120",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("args lack %q: %v", w, got)
		}
	}

	if _, err := render(t, "--set", "ipam.enabled=true", "--set", "ipam.mode=eni"); err == nil || !strings.Contains(err.Error(), "/ipam/mode") {
		t.Errorf("mode eni: %v", err)
	}
	// crd mode reaches the controller and every node's agent.
	o, err = render(t, "--set", "ipam.enabled=true", "--set", "cni.enabled=true", "--set", "ipam.mode=crd")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-ipam")).Args, get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-cni-node").Spec.Template.Spec.Containers[0].Args} {
		if !slices.Contains(args, "--ipam-mode=crd") {
			t.Errorf("args lack --ipam-mode=crd: %v", args)
		}
	}
	if _, err := render(t, "--set", "ipam.enabled=true", "--set", "ipam.operator.clusterPoolIPv4MaskSize=31"); err == nil || !strings.Contains(err.Error(), "clusterPoolIPv4MaskSize") {
		t.Errorf("mask 31: %v", err)
	}
	if o, err := render(t); err != nil || len(o.of("ipam")) != 0 {
		t.Errorf("ipam is off by default: %v, %v", err, o.of("ipam").ids())
	}
}

func TestChartL2Announcer(t *testing.T) {
	helm(t)
	o, err := render(t, "--set", "l2announcer.enabled=true", "--set", "l2announcer.workers=4")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliuml2announcementpolicies.cilium.io", "l2announcements.nodes.plexus.dev"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	checkControllerOf(t, o, "l2announcer", true)
	d := get[appsv1.Deployment](t, o, "Deployment", "plexus-l2announcer")
	if args := container(t, d).Args; !slices.Contains(args, "--workers=4") {
		t.Errorf("args %v lack --workers=4", args)
	}
	node := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-l2announcer-node").Spec.Template.Spec
	equal(t, "l2 node rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-l2announcer-node").Rules, rbacFileRules(t, "l2announcer-node"))
	equal(t, "l2 node hostNetwork", node.HostNetwork, true)
	equal(t, "l2 node command", node.Containers[0].Command, []string{"/usr/local/bin/plexus-l2announcer-node"})
	equal(t, "l2 node capabilities", node.Containers[0].SecurityContext.Capabilities, &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW"}})
	if !slices.Contains(node.Containers[0].Args, "--dead-after=400ms") {
		t.Errorf("l2 node args %v", node.Containers[0].Args)
	}
	if _, err := render(t, "--set", "l2announcer.enabled=true", "--set", "l2announcer.worker=4"); err == nil || !strings.Contains(err.Error(), "/l2announcer") {
		t.Errorf("misspelt key: %v", err)
	}
}

func TestChartEgressGateway(t *testing.T) {
	helm(t)
	o, err := render(t, "--set", "egressgateway.enabled=true", "--set", "egressgateway.node.deadAfter=600ms")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliumegressgatewaypolicies.cilium.io", "egresses.nodes.plexus.dev"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	checkControllerOf(t, o, "egressgateway", true)
	node := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-egressgateway-node").Spec.Template.Spec
	equal(t, "egress node rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-egressgateway-node").Rules, rbacFileRules(t, "egressgateway-node"))
	equal(t, "egress node hostNetwork", node.HostNetwork, true)
	equal(t, "egress node command", node.Containers[0].Command, []string{"/usr/local/bin/plexus-egressgateway-node"})
	for _, want := range []string{"--dead-after=600ms", "--heartbeat-port=7948"} {
		if !slices.Contains(node.Containers[0].Args, want) {
			t.Errorf("egress node args %v lack %s", node.Containers[0].Args, want)
		}
	}
	if _, err := render(t, "--set", "egressgateway.enabled=true", "--set", "egressgateway.node.deadafter=1s"); err == nil || !strings.Contains(err.Error(), "/egressgateway") {
		t.Errorf("misspelt key: %v", err)
	}
}

// Identities: off by default; on, the controller with its flags, and the
// schema refusing a cluster ID Cluster Mesh cannot carry.
// Node IPAM: off by default (I38); on, its controller with its own RBAC;
// as the default for class-less Services, both LB-IPAM and Node IPAM are
// told, and choosing it without enabling Node IPAM is refused.
func TestI38_ChartNodeIPAM(t *testing.T) {
	helm(t)
	if o, err := render(t); err != nil || len(o.of("nodeipam")) != 0 {
		t.Errorf("Node IPAM is off by default: %v, %v", err, o.of("nodeipam").ids())
	}
	o, err := render(t, "--set", "nodeIPAM.enabled=true", "--set", "lbipam.defaultLBServiceIPAM=nodeipam")
	if err != nil {
		t.Fatal(err)
	}
	checkControllerOf(t, o, "nodeipam", true)
	for name, want := range map[string]string{"plexus-nodeipam": "--default-lb-service-ipam=nodeipam", "plexus-lbipam": "--default-lb-service-ipam=nodeipam"} {
		if args := container(t, get[appsv1.Deployment](t, o, "Deployment", name)).Args; !slices.Contains(args, want) {
			t.Errorf("%s args %v lack %s", name, args, want)
		}
	}
	if _, err := render(t, "--set", "lbipam.defaultLBServiceIPAM=nodeipam"); err == nil || !strings.Contains(err.Error(), "nodeIPAM.enabled is false") {
		t.Errorf("nodeipam default without Node IPAM: %v", err)
	}
}

func TestChartIdentity(t *testing.T) {
	helm(t)
	if o, err := render(t); err != nil || len(o.of("identity")) != 0 {
		t.Errorf("identity is off by default: %v, %v", err, o.of("identity").ids())
	}
	o, err := render(t, "--set", "identity.enabled=true", "--set", "identity.clusterID=7", "--set", "identity.labels=k8s:!team")
	if err != nil {
		t.Fatal(err)
	}
	o.get(t, "CustomResourceDefinition", "ciliumidentities.cilium.io")
	checkControllerOf(t, o, "identity", true)
	args := container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-identity")).Args
	for _, want := range []string{"--cluster-id=7", "--cluster-name=default", "--gc-grace=30m", "--labels=k8s:!team", "--workers=16"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if _, err := render(t, "--set", "identity.enabled=true", "--set", "identity.clusterID=256"); err == nil || !strings.Contains(err.Error(), "clusterID") {
		t.Errorf("cluster ID 256: %v", err)
	}
}

// BGP: off by default (B1); the controller, the node plugin with only
// NET_BIND_SERVICE, and a Role for Secrets in bgp.secretNamespace alone,
// bound to both (B21).
func TestB1_B21_ChartBGP(t *testing.T) {
	helm(t)
	// B1: off by default, and then nothing of it is deployed.
	off, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := off.of("bgp").ids(); len(got) > 0 {
		t.Errorf("bgp.enabled=false renders %v", got)
	}
	if got := off.of("bgp-node").ids(); len(got) > 0 {
		t.Errorf("bgp.enabled=false renders %v", got)
	}
	o, err := render(t, "--set", "bgp.enabled=true", "--set", "bgp.secretNamespace=bgp-secrets",
		"--set", "bgp.routerIDAllocation.mode=ip-pool", "--set", "bgp.routerIDAllocation.ipPool=10.0.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliumbgpclusterconfigs.cilium.io", "ciliumbgpnodeconfigs.cilium.io", "ciliumbgppeeringpolicies.cilium.io"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	checkControllerOf(t, o, "bgp", true)
	args := container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-bgp")).Args
	for _, want := range []string{"--secret-namespace=bgp-secrets", "--router-id-mode=ip-pool", "--router-id-pool=10.0.0.0/24"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	node := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-bgp-node").Spec.Template.Spec
	equal(t, "bgp node rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-bgp-node").Rules, rbacFileRules(t, "bgp-node"))
	equal(t, "bgp node hostNetwork", node.HostNetwork, true)
	equal(t, "bgp node command", node.Containers[0].Command, []string{"/usr/local/bin/plexus-bgp-node"})
	equal(t, "bgp node capabilities", node.Containers[0].SecurityContext.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"})
	for _, want := range []string{"--secret-namespace=bgp-secrets", "--ipam-mode=cluster-pool", "--device=eth0", "--status-report=true", "--status-route-limit=100"} {
		if !slices.Contains(node.Containers[0].Args, want) {
			t.Errorf("bgp node args %v lack %s", node.Containers[0].Args, want)
		}
	}
	for _, cr := range []string{"plexus-bgp", "plexus-bgp-node"} {
		for _, r := range get[rbacv1.ClusterRole](t, o, "ClusterRole", cr).Rules {
			if slices.Contains(r.Resources, "secrets") {
				t.Errorf("ClusterRole %s grants Secrets cluster-wide: %+v", cr, r)
			}
		}
	}
	role := get[rbacv1.Role](t, o, "Role", "plexus-bgp-secrets")
	equal(t, "secrets role namespace", role.Namespace, "bgp-secrets")
	equal(t, "secrets role rules", role.Rules, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}})
	binding := get[rbacv1.RoleBinding](t, o, "RoleBinding", "plexus-bgp-secrets")
	var subjects []string
	for _, s := range binding.Subjects {
		subjects = append(subjects, s.Name)
	}
	equal(t, "secrets role subjects", subjects, []string{"plexus-bgp", "plexus-bgp-node"})

	if _, err := render(t, "--set", "bgp.enabled=true", "--set", "bgp.routerIDAllocation.mode=ip-pool"); err == nil || !strings.Contains(err.Error(), "ipPool is empty") {
		t.Errorf("ip-pool without a pool: %v", err)
	}
	if _, err := render(t, "--set", "bgp.enabled=true", "--set", "bgp.secretnamespace=x"); err == nil || !strings.Contains(err.Error(), "/bgp") {
		t.Errorf("misspelt key: %v", err)
	}
}

// The node plugins: a DaemonSet on every node, host network, the generated
// RBAC, the privileges each needs and no more, and the CNI installed by an
// init container.
func TestChartNodePlugins(t *testing.T) {
	helm(t)
	o, err := render(t, "--set", "ipam.enabled=true", "--set", "cni.enabled=true", "--set", "datapath.enabled=true",
		"--set", "datapath.routingMode=native", "--set", "cni.mtu=1500")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name string }{{"cni-node"}, {"datapath-node"}} {
		full := "plexus-" + tc.name
		equal(t, tc.name+" objects", o.of(tc.name).ids(), []string{"ClusterRole/" + full, "ClusterRoleBinding/" + full, "DaemonSet/" + full, "ServiceAccount/" + full})
		equal(t, tc.name+" rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", full).Rules, rbacFileRules(t, tc.name))
		crb := get[rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding", full)
		equal(t, tc.name+" subjects", crb.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: full, Namespace: namespace}})
		ds := get[appsv1.DaemonSet](t, o, "DaemonSet", full)
		pod := ds.Spec.Template.Spec
		equal(t, tc.name+" hostNetwork", pod.HostNetwork, true)
		equal(t, tc.name+" serviceAccount", pod.ServiceAccountName, full)
		equal(t, tc.name+" tolerates everything", pod.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}})
		c := pod.Containers[0]
		equal(t, tc.name+" command", c.Command, []string{"/usr/local/bin/" + full})
		if !slices.Contains(c.Args, "--node-name=$(NODE_NAME)") || len(c.Env) != 1 || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("%s: node name not wired: args %v env %v", tc.name, c.Args, c.Env)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: no readiness probe", tc.name)
		}
	}
	agent := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-cni-node").Spec.Template.Spec
	equal(t, "agent security", agent.Containers[0].SecurityContext, &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}})
	if !slices.Contains(agent.Containers[0].Args, "--node-config-namespace=kube-system") {
		t.Errorf("agent args %v lack --node-config-namespace=kube-system", agent.Containers[0].Args)
	}
	if len(agent.InitContainers) != 1 || !slices.Contains(agent.InitContainers[0].Args, "--mtu=1500") || agent.InitContainers[0].Command[1] != "install" {
		t.Errorf("install-cni init container: %+v", agent.InitContainers)
	}
	dp := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-datapath-node").Spec.Template.Spec.Containers[0]
	if !slices.Contains(dp.Args, "--routing-mode=native") || dp.SecurityContext.Privileged == nil || !*dp.SecurityContext.Privileged {
		t.Errorf("datapath: args %v security %+v", dp.Args, dp.SecurityContext)
	}

	if _, err := render(t, "--set", "cni.enabled=true"); err == nil || !strings.Contains(err.Error(), "cni.enabled needs ipam.enabled") {
		t.Errorf("cni without ipam: %v", err)
	}
	if _, err := render(t, "--set", "ipam.enabled=true", "--set", "datapath.enabled=true", "--set", "datapath.routingMode=geneve"); err == nil || !strings.Contains(err.Error(), "/datapath/routingMode") {
		t.Errorf("geneve: %v", err)
	}
}

// Network policy: off by default; on, the controller with the identity
// settings it shares, the identity controller turned on with it, and the
// node plugin with exactly the capabilities eBPF enforcement needs, the
// host's BPF filesystem and the Hubble API on the node only by default.
func TestChartPolicy(t *testing.T) {
	helm(t)
	off, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(off.of("policy").ids(), off.of("policy-node").ids()...); len(got) > 0 {
		t.Errorf("policy.enabled=false renders %v", got)
	}
	o, err := render(t, "--set", "policy.enabled=true", "--set", "identity.clusterID=7", "--set", "policy.enforcementMode=always")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliumnetworkpolicies.cilium.io", "ciliumclusterwidenetworkpolicies.cilium.io", "nodepolicies.nodes.plexus.dev", "identityaddresses.nodes.plexus.dev"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	checkControllerOf(t, o, "policy", true)
	checkControllerOf(t, o, "identity", true)
	args := container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-policy")).Args
	for _, want := range []string{"--policy-enforcement-mode=always", "--host-firewall=false", "--cluster-id=7", "--cluster-name=default"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	equal(t, "policy node rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-policy-node").Rules, rbacFileRules(t, "policy-node"))
	node := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-policy-node").Spec.Template.Spec
	c := node.Containers[0]
	equal(t, "policy node hostNetwork", node.HostNetwork, true)
	equal(t, "policy node command", c.Command, []string{"/usr/local/bin/plexus-policy-node"})
	equal(t, "policy node security", c.SecurityContext, &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"}}})
	equal(t, "policy node mounts", c.VolumeMounts, []corev1.VolumeMount{{Name: "bpf", MountPath: "/sys/fs/bpf"}, {Name: "hubble-socket", MountPath: "/var/run/cilium"}})
	if len(node.Volumes) != 2 || node.Volumes[0].HostPath == nil || node.Volumes[0].HostPath.Path != "/sys/fs/bpf" || node.Volumes[1].EmptyDir == nil {
		t.Errorf("policy node volumes %+v, want the host's /sys/fs/bpf and an emptyDir for the Hubble socket", node.Volumes)
	}
	for _, want := range []string{"--node-name=$(NODE_NAME)", "--hubble-listen-address=127.0.0.1:4244", "--hubble-buffer-size=4095", "--bpf-policy-map-max=262144",
		"--hubble-socket-path=/var/run/cilium/hubble.sock", "--host-devices=auto", "--tunnel-port=8472"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("policy node args %v lack %s", c.Args, want)
		}
	}
	noHubble, err := render(t, "--set", "policy.enabled=true", "--set", "policy.node.hubble.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	noHubbleSpec := get[appsv1.DaemonSet](t, noHubble, "DaemonSet", "plexus-policy-node").Spec.Template.Spec
	if args := noHubbleSpec.Containers[0].Args; !slices.Contains(args, "--hubble-listen-address=") || !slices.Contains(args, "--hubble-socket-path=") {
		t.Errorf("hubble off: args %v lack an empty listen address and socket path", args)
	}
	if len(noHubbleSpec.Volumes) != 1 {
		t.Errorf("hubble off: volumes %+v, want only /sys/fs/bpf", noHubbleSpec.Volumes)
	}
	if _, err := render(t, "--set", "policy.enabled=true", "--set", "policy.enforcementMode=strict"); err == nil || !strings.Contains(err.Error(), "/policy/enforcementMode") {
		t.Errorf("an unknown enforcement mode: %v", err)
	}
}

// The Gateway API block: the controller, the l7proxy plugin with Envoy beside
// it and a valid Envoy bootstrap that reaches the plugin's socket, Secrets
// rights only in the secrets namespace, the CRDs, and GatewayClass cilium as
// gatewayClass.create says (GW4).
func TestGW4_ChartGateway(t *testing.T) {
	helm(t)
	off, err := render(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(off.of("gateway").ids(), off.of("l7proxy-node").ids()...); len(got) > 0 {
		t.Errorf("gatewayAPI.enabled=false renders %v", got)
	}
	o, err := render(t, "--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.gatewayClass.create=true", "--set", "gatewayAPI.secretsNamespace.name=tls-copies")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []string{"ciliumenvoyconfigs.cilium.io", "ciliumclusterwideenvoyconfigs.cilium.io", "l7proxies.nodes.plexus.dev"} {
		o.get(t, "CustomResourceDefinition", crd)
	}
	args := container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-gateway")).Args
	for _, want := range []string{"--secrets-namespace=tls-copies", "--proxy-ports=10000-10999", "--workers=16"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--host-network") }) {
		t.Errorf("host network mode on by default: %v", args)
	}
	hn, err := render(t, "--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.hostNetwork.enabled=true",
		"--set", "gatewayAPI.hostNetwork.nodes.matchLabels.zone=a", "--set", "gatewayAPI.hostNetwork.nodes.matchLabels.role=edge")
	if err != nil {
		t.Fatal(err)
	}
	hnArgs := container(t, get[appsv1.Deployment](t, hn, "Deployment", "plexus-gateway")).Args
	for _, want := range []string{"--host-network", "--host-network-node-labels=role=edge,zone=a"} {
		if !slices.Contains(hnArgs, want) {
			t.Errorf("host network mode: controller args %v lack %s", hnArgs, want)
		}
	}
	equal(t, "gateway rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-gateway").Rules, rbacFileRules(t, "gateway"))
	equal(t, "l7proxy node rules", get[rbacv1.ClusterRole](t, o, "ClusterRole", "plexus-l7proxy-node").Rules, rbacFileRules(t, "l7proxy-node"))
	// Secrets: the cluster roles never write them, the plugin's never
	// reads them; each namespaced Role is in the secrets namespace only.
	for _, name := range []string{"plexus-gateway", "plexus-l7proxy-node"} {
		for _, r := range get[rbacv1.ClusterRole](t, o, "ClusterRole", name).Rules {
			if slices.Contains(r.Resources, "secrets") && (name == "plexus-l7proxy-node" || slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })) {
				t.Errorf("ClusterRole %s grants %v on secrets cluster-wide", name, r.Verbs)
			}
		}
	}
	for name, verbs := range map[string][]string{"plexus-gateway-secrets": {"create", "delete", "patch", "update"}, "plexus-l7proxy-node-secrets": {"get", "list", "watch"}} {
		role := get[rbacv1.Role](t, o, "Role", name)
		equal(t, name+" namespace", role.Namespace, "tls-copies")
		equal(t, name+" rules", role.Rules, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbs}})
		binding := get[rbacv1.RoleBinding](t, o, "RoleBinding", name)
		equal(t, name+" binding", binding.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: strings.TrimSuffix(name, "-secrets"), Namespace: "plexus-system"}})
	}
	o.get(t, "Namespace", "tls-copies")
	class := o.get(t, "GatewayClass", "cilium")
	if got, _, _ := unstructured.NestedString(class.Object, "spec", "controllerName"); got != "io.cilium/gateway-controller" {
		t.Errorf("GatewayClass controllerName %q", got)
	}

	node := get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-l7proxy-node").Spec.Template.Spec
	if len(node.Containers) != 2 || node.Containers[0].Name != "l7proxy-node" || node.Containers[1].Name != "envoy" {
		t.Fatalf("l7proxy node containers %+v", node.Containers)
	}
	plugin, envoyC := node.Containers[0], node.Containers[1]
	equal(t, "l7proxy node hostNetwork", node.HostNetwork, true)
	// The plugin programs the nftables table that hands the Gateways'
	// addresses to the node's Envoy (NET_ADMIN); Envoy needs nothing.
	for c, caps := range map[string][]corev1.Capability{"l7proxy-node": {"NET_ADMIN"}, "envoy": nil} {
		i := slices.IndexFunc(node.Containers, func(x corev1.Container) bool { return x.Name == c })
		sc := node.Containers[i].SecurityContext
		if sc == nil || !slices.Equal(sc.Capabilities.Add, caps) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s security context %+v, want all capabilities dropped but %v, read-only root", c, sc, caps)
		}
	}
	socket := ""
	for _, a := range plugin.Args {
		if s, ok := strings.CutPrefix(a, "--xds-address=unix://"); ok {
			socket = s
		}
	}
	if socket == "" || !slices.Contains(plugin.Args, "--secrets-namespace=tls-copies") {
		t.Errorf("plugin args %v", plugin.Args)
	}
	if !slices.Contains(envoyC.Args, "$(NODE_NAME)") {
		t.Errorf("envoy args %v do not set the node id to the node's name", envoyC.Args)
	}

	// The bootstrap is a valid Envoy Bootstrap whose ADS cluster is the
	// plugin's socket.
	cm := get[corev1.ConfigMap](t, o, "ConfigMap", "plexus-l7proxy-node-envoy")
	js, err := yaml.YAMLToJSON([]byte(cm.Data["bootstrap.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Errorf("bootstrap: %v", err)
	}
	ads := b.GetStaticResources().GetClusters()[0]
	if got := ads.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetPipe().GetPath(); got != socket {
		t.Errorf("Envoy dials %q, the plugin listens on %q", got, socket)
	}
	if b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != ads.GetName() {
		t.Errorf("ADS does not use the static cluster %s", ads.GetName())
	}

	// auto: the class only where the Gateway API is installed.
	auto, err := render(t, "--set", "gatewayAPI.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range auto {
		if u.GetKind() == "GatewayClass" {
			t.Error("gatewayClass.create=auto renders a GatewayClass without the Gateway API installed")
		}
	}
	installed, err := render(t, "--set", "gatewayAPI.enabled=true", "--api-versions", "gateway.networking.k8s.io/v1/GatewayClass")
	if err != nil {
		t.Fatal(err)
	}
	installed.get(t, "GatewayClass", "cilium")
}

// The Ingress block: the same controller and node proxies with Ingress
// flags (Gateway API off when only Ingress is on), IngressClass cilium, the
// default-class annotation only with ingressController.default (IN3), and
// bad settings refused at render.
func TestIN3_ChartIngress(t *testing.T) {
	helm(t)
	o, err := render(t, "--set", "ingressController.enabled=true", "--set", "ingressController.loadbalancerMode=shared",
		"--set", "ingressController.defaultSecretNamespace=certs", "--set", "ingressController.defaultSecretName=wildcard")
	if err != nil {
		t.Fatal(err)
	}
	args := container(t, get[appsv1.Deployment](t, o, "Deployment", "plexus-gateway")).Args
	for _, want := range []string{"--gateway-api=false", "--ingress", "--ingress-default-mode=shared", "--ingress-enforce-https=true",
		"--ingress-shared-service=plexus-system/cilium-ingress", "--ingress-default-secret=certs/wildcard"} {
		if !slices.Contains(args, want) {
			t.Errorf("controller args %v lack %s", args, want)
		}
	}
	get[appsv1.DaemonSet](t, o, "DaemonSet", "plexus-l7proxy-node")
	class := get[networkingv1.IngressClass](t, o, "IngressClass", "cilium")
	equal(t, "IngressClass controller", class.Spec.Controller, "cilium.io/ingress-controller")
	equal(t, "default-class annotation", class.Annotations[networkingv1.AnnotationIsDefaultIngressClass], "")
	for _, u := range o {
		if u.GetKind() == "GatewayClass" {
			t.Error("Ingress alone renders a GatewayClass")
		}
	}
	def, err := render(t, "--set", "ingressController.enabled=true", "--set", "ingressController.default=true")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "default-class annotation", get[networkingv1.IngressClass](t, def, "IngressClass", "cilium").Annotations[networkingv1.AnnotationIsDefaultIngressClass], "true")
	if _, err := render(t, "--set", "ingressController.enabled=true", "--set", "ingressController.defaultSecretName=x"); err == nil || !strings.Contains(err.Error(), "defaultSecretNamespace") {
		t.Errorf("a default secret without its namespace: %v", err)
	}
	if _, err := render(t, "--set", "ingressController.enabled=true", "--set", "ingressController.loadbalancerMode=both"); err == nil || !strings.Contains(err.Error(), "/ingressController/loadbalancerMode") {
		t.Errorf("an unknown mode: %v", err)
	}
}
