package l7proxy

import (
	"strings"
	"testing"

	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
)

func ref(name string) nodesv1alpha1.EnvoyConfigRef {
	return nodesv1alpha1.EnvoyConfigRef{Kind: "CiliumEnvoyConfig", Namespace: "ns", Name: name}
}

// A config that cannot be served is left out whole, says why, and never
// takes the others with it (L7-02, L7-03, L7-20).
func TestTM2_TM3_TM20_BadConfigsAreLeftOutAlone(t *testing.T) {
	good := Config{Ref: ref("good"), Generation: 3, Resources: app(t, "good", 10001)}
	clash := Config{Ref: ref("clash"), Generation: 1, Resources: raw(t, testCluster("good-cluster"), testEndpoints("good-cluster"))}
	unknownType := Config{Ref: ref("unknown-type"), Generation: 1, Resources: append(app(t, "u", 10002),
		rawJSON(t, map[string]any{"@type": "type.googleapis.com/envoy.config.bogus.v3.Thing", "name": "x"}))}
	unknownExtension := Config{Ref: ref("unknown-extension"), Generation: 1, Resources: []runtime.RawExtension{rawJSON(t, map[string]any{
		"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "ext",
		"filterChains": []any{map[string]any{"filters": []any{map[string]any{"name": "lua",
			"typedConfig": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.golang.v3alpha.Config"}}}}},
	})}}
	invalid := Config{Ref: ref("invalid"), Generation: 1, Resources: raw(t, testRoute("", "c"))}
	dangling := Config{Ref: ref("dangling"), Generation: 1, Resources: raw(t, testListener(t, "d-listener", "no-such-route", 10003))}

	snap, errs := Build([]Config{good, clash, unknownType, unknownExtension, invalid, dangling}, []corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "cilium-secrets", Name: "ns-cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: []byte("c"), corev1.TLSPrivateKeyKey: []byte("k")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "cilium-secrets", Name: "opaque"}, Type: corev1.SecretTypeOpaque},
	})
	for name, want := range map[string]string{
		"clash":             `Cluster "good-cluster" is already defined by CiliumEnvoyConfig ns/good`,
		"unknown-type":      "envoy.config.bogus.v3.Thing is not served",
		"unknown-extension": "envoy.extensions.filters.http.golang.v3alpha.Config",
		"invalid":           "RouteConfiguration",
		"dangling":          `references what no config defines: RouteConfiguration "no-such-route"`,
	} {
		if got := errs[ref(name)]; !strings.Contains(got, want) {
			t.Errorf("%s: error %q, want it to contain %q", name, got, want)
		}
	}
	if _, bad := errs[ref("good")]; bad || snap.Generations[ref("good")] != 3 || len(snap.Generations) != 1 {
		t.Errorf("good config: error %q, generations %v", errs[ref("good")], snap.Generations)
	}
	for typ, want := range map[string]int{resource.ListenerType: 1, resource.RouteType: 1, resource.ClusterType: 1, resource.EndpointType: 1, resource.SecretType: 1} {
		if got := len(snap.Resources[typ]); got != want {
			t.Errorf("%d resources of %s, want %d", got, typ, want)
		}
	}
	if got := cache.GetResourceName(snap.Resources[resource.SecretType][0]); got != "cilium-secrets/ns-cert" {
		t.Errorf("secret served as %v", got)
	}

	// The same content is the same version; a change is a new one.
	again, _ := Build([]Config{good}, nil)
	other, _ := Build([]Config{{Ref: ref("good"), Generation: 4, Resources: app(t, "good", 10009)}}, nil)
	withoutSecret, _ := Build([]Config{good}, nil)
	if again.Version != withoutSecret.Version || again.Version == other.Version || again.Version == snap.Version {
		t.Errorf("versions: %s %s %s %s", again.Version, withoutSecret.Version, other.Version, snap.Version)
	}
}

// A Builder builds what Build builds, and decodes again only what
// changed: the resources of an unchanged config are the very objects of
// the previous snapshot, a changed config's are new, and a bad config is
// refused again with the same reason.
func TestBuilderDecodesOnlyWhatChanged(t *testing.T) {
	a := Config{Ref: ref("a"), Generation: 1, Resources: app(t, "a", 10001)}
	b := Config{Ref: ref("b"), Generation: 1, Resources: app(t, "b", 10002)}
	bad := Config{Ref: ref("bad"), Generation: 1, Resources: append(app(t, "x", 10003),
		rawJSON(t, map[string]any{"@type": "type.googleapis.com/envoy.config.bogus.v3.Thing", "name": "x"}))}
	var builder Builder
	first, errs1 := builder.Build([]Config{a, b, bad}, nil)
	if want, _ := Build([]Config{a, b, bad}, nil); first.Version != want.Version || len(errs1) != 1 {
		t.Fatalf("the builder's first snapshot %s (errors %v) differs from Build's %s", first.Version, errs1, want.Version)
	}
	b2 := Config{Ref: ref("b"), Generation: 2, Resources: app(t, "b", 10012)}
	second, errs2 := builder.Build([]Config{a, b2, bad}, nil)
	if want, _ := Build([]Config{a, b2, bad}, nil); second.Version != want.Version || errs2[ref("bad")] != errs1[ref("bad")] {
		t.Fatalf("the builder's second snapshot %s (errors %v) differs from Build's %s", second.Version, errs2, want.Version)
	}
	listener := func(s Snapshot, name string) any {
		for _, r := range s.Resources[resource.ListenerType] {
			if cache.GetResourceName(r) == name {
				return r
			}
		}
		t.Fatalf("no listener %s", name)
		return nil
	}
	if listener(first, "a-listener") != listener(second, "a-listener") {
		t.Error("a's listener was decoded again though a did not change")
	}
	if listener(first, "b-listener") == listener(second, "b-listener") {
		t.Error("b's listener is the old object though b changed")
	}
}
