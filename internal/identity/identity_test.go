package identity

import (
	"maps"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
)

// The reserved identities have Cilium's numbers and entity names, so
// policies and flows name them the same way.
func TestNP14_ReservedIdentitiesHaveCiliumsNumbers(t *testing.T) {
	want := map[string]Number{
		"host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5, "remote-node": 6,
		"kube-apiserver": 7, "ingress": 8, "world-ipv4": 9, "world-ipv6": 10,
	}
	for name, n := range want {
		if got, ok := ReservedByName(name); !ok || got != n {
			t.Errorf("ReservedByName(%q) = %d, %v; want %d", name, got, ok, n)
		}
		if got := ReservedName(n); got != name {
			t.Errorf("ReservedName(%d) = %q, want %q", n, got, name)
		}
	}
	if len(reservedNames) != len(want) {
		t.Errorf("%d reserved identities, want %d", len(reservedNames), len(want))
	}
	if _, ok := ReservedByName("cluster"); ok {
		t.Error("cluster is an entity of several identities, not a reserved identity")
	}
}

func TestRangeLeavesRoomForClusterMesh(t *testing.T) {
	r0, err := RangeOf(0)
	if err != nil || r0.Min != 256 || r0.Max != 65535 || r0.Size() != 65280 {
		t.Errorf("cluster 0: %+v, %v", r0, err)
	}
	r7, err := RangeOf(7)
	if err != nil || r7.Min != 7<<16|256 || r7.Max != 7<<16|65535 || r7.Min.ClusterID() != 7 {
		t.Errorf("cluster 7: %+v, %v", r7, err)
	}
	if r0.Contains(r7.Min) || r0.Contains(Host) || !r0.Contains(256) {
		t.Error("ranges overlap, or hold reserved numbers")
	}
	if _, err := RangeOf(256); err == nil {
		t.Error("cluster ID 256 accepted")
	}
}

func TestParseTakesOnlyCanonicalNumbers(t *testing.T) {
	for name, ok := range map[string]bool{"256": true, "65535": true, "0": false, "0256": false, "-1": false, "abc": false, "": false, "4294967296": false} {
		if _, err := Parse(name); (err == nil) != ok {
			t.Errorf("Parse(%q): %v, want ok=%v", name, err, ok)
		}
	}
}

// A pod's identity labels: its own (those it may set), its namespace's
// labels, its namespace, ServiceAccount and cluster; labels Kubernetes adds
// per pod do not count, so replicas share one identity.
func TestNP27_SecurityLabelsOfAPod(t *testing.T) {
	f, err := NewFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{
		"app": "web", "app.kubernetes.io/name": "web", "pod-template-hash": "5d8f", "controller-revision-hash": "7c9",
		"statefulset.kubernetes.io/pod-name": "web-0", "apps.kubernetes.io/pod-index": "0",
		"batch.kubernetes.io/job-completion-index": "3", "topology.kubernetes.io/zone": "a", "k8s.io/x": "y",
		"io.cilium.k8s.policy.serviceaccount": "admin", // a pod cannot claim another ServiceAccount
		"io.cilium.k8s.namespace.labels.team": "red",   // nor another namespace's labels
	}
	got := f.Security(PodLabels(own, "shop", map[string]string{"team": "blue", "kubernetes.io/metadata.name": "shop"}, "web-sa", "default"))
	want := Labels{
		"k8s:app":                                 "web",
		"k8s:app.kubernetes.io/name":              "web",
		"k8s:io.kubernetes.pod.namespace":         "shop",
		"k8s:io.cilium.k8s.namespace.labels.team": "blue",
		"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "shop",
		"k8s:io.cilium.k8s.policy.serviceaccount":                        "web-sa",
		"k8s:io.cilium.k8s.policy.cluster":                               "default",
		// Cilium's rules match at the start of a key: only keys that begin
		// with kubernetes.io are dropped, not every key containing it.
		"k8s:topology.kubernetes.io/zone": "a",
	}
	if !maps.Equal(got, want) {
		t.Errorf("security labels\n got %v\nwant %v", got, want)
	}
	noSA := f.Security(PodLabels(nil, "shop", nil, "", "default"))
	if _, ok := noSA["k8s:"+LabelServiceAccount]; ok {
		t.Error("a pod without ServiceAccount got the label")
	}
}

// User rules follow Cilium's --labels: an including rule limits identity
// to what some including rule (user's or default) matches; an excluding
// rule drops labels; the longer match wins between the two.
func TestUserLabelRules(t *testing.T) {
	pod := PodLabels(map[string]string{"app": "web", "team": "red", "version": "v2", "appx": "1"}, "shop", nil, "sa", "default")
	cases := []struct {
		rules []string
		keep  []string // of app, team, version, appx, serviceaccount
	}{
		{nil, []string{"app", "team", "version", "appx", "sa"}},
		{[]string{"k8s:!version"}, []string{"app", "team", "appx", "sa"}},
		{[]string{"k8s:app$"}, []string{"app"}},              // only included ones; the namespace and cluster still count
		{[]string{"k8s:app"}, []string{"app", "appx"}},       // prefixes, as in Cilium
		{[]string{"k8s:!team", "k8s:team"}, nil},             // equal lengths: an include must match more than the exclude
		{[]string{"k8s:!tea", "k8s:team"}, []string{"team"}}, // a longer include beats a shorter exclude
		{[]string{"reserved:app"}, nil},                      // any including rule, of any source, limits identity to included labels
	}
	short := map[string]string{"app": "k8s:app", "team": "k8s:team", "version": "k8s:version", "appx": "k8s:appx", "sa": "k8s:" + LabelServiceAccount}
	for _, c := range cases {
		f, err := NewFilter(c.rules)
		if err != nil {
			t.Fatal(err)
		}
		got := f.Security(pod)
		for _, name := range []string{"app", "team", "version", "appx", "sa"} {
			_, has := got[short[name]]
			want := false
			for _, k := range c.keep {
				want = want || k == name
			}
			if has != want {
				t.Errorf("rules %q: %s counts = %v, want %v", c.rules, name, has, want)
			}
		}
		if got["k8s:"+LabelNamespace] != "shop" || got["k8s:"+LabelCluster] != "default" {
			t.Errorf("rules %q dropped the namespace or cluster: %v", c.rules, got)
		}
	}
	for _, bad := range []string{"k8s:", "k8s:!", "k8s:(", "!"} {
		if _, err := NewFilter([]string{bad}); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}

func TestKeyIsCanonical(t *testing.T) {
	a := Labels{"k8s:a": "1", "k8s:b": "2"}
	b := Labels{"k8s:b": "2", "k8s:a": "1"}
	if a.Key() != b.Key() {
		t.Error("equal sets, different keys")
	}
	if a.Key() == (Labels{"k8s:a": "1", "k8s:b": "3"}).Key() || a.Key() == (Labels{"k8s:a": "1"}).Key() {
		t.Error("different sets, equal keys")
	}
}

func TestObjectLabelsKeepOnlyValidKubernetesLabels(t *testing.T) {
	got := Labels{
		"k8s:app": "web", "k8s:io.kubernetes.pod.namespace": "shop",
		"k8s:note": "has spaces", "reserved:host": "", "k8s:" + string(make([]byte, 70)): "x",
	}.ObjectLabels()
	want := map[string]string{"app": "web", "io.kubernetes.pod.namespace": "shop"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestIndexPrefersTheLowestNumber(t *testing.T) {
	r, _ := RangeOf(0)
	cid := func(name string, l Labels) ciliumv2.CiliumIdentity {
		return ciliumv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: name}, SecurityLabels: l}
	}
	web := Labels{"k8s:app": "web"}
	db := Labels{"k8s:app": "db"}
	ix := NewIndex(r, []ciliumv2.CiliumIdentity{
		cid("900", web), cid("300", web), cid("400", db), cid("70000", db), cid("12", db), cid("x", db),
	})
	if n, ok := ix.Lookup(web.Key()); !ok || n != 300 {
		t.Errorf("web: %d %v, want 300", n, ok)
	}
	if n, ok := ix.Lookup(db.Key()); !ok || n != 400 {
		t.Errorf("db: %d %v, want 400 (70000 and 12 are outside the range)", n, ok)
	}
	if len(ix.Duplicates) != 1 || ix.Duplicates[0] != 900 {
		t.Errorf("duplicates %v, want [900]", ix.Duplicates)
	}
	if len(ix.Foreign) != 3 {
		t.Errorf("foreign %v, want 70000, 12 and x", ix.Foreign)
	}
	if l, ok := ix.Labels(900); !ok || !maps.Equal(l, web) {
		t.Error("a duplicate's labels are not indexed")
	}
}
