package reconciler

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/test/testenv"
)

// The API server itself refuses bad pools, with a message naming the field.
func TestPodIPPoolAdmission(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	v4 := func(mask int32, cidrs ...string) *ciliumv2alpha1.IPPoolFamily {
		return &ciliumv2alpha1.IPPoolFamily{CIDRs: cidrs, MaskSize: mask}
	}
	v6 := v4
	cases := []struct {
		name    string
		spec    ciliumv2alpha1.IPPoolSpec
		wantErr string // "" means admitted
	}{
		{"ok-v4", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.20.0.0/16", "10.30.0.0/16")}, ""},
		{"ok-dual", ciliumv2alpha1.IPPoolSpec{IPv4: v4(27, "10.40.0.0/16"), IPv6: v6(120, "fd00:40::/104")}, ""},
		{"empty", ciliumv2alpha1.IPPoolSpec{}, "a pool needs spec.ipv4 or spec.ipv6"},
		{"not-cidr", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.20.0.0")}, "spec.ipv4.cidrs: every entry must be an IPv4 CIDR"},
		{"v6-in-v4", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "fd00::/104")}, "spec.ipv4.cidrs: every entry must be an IPv4 CIDR"},
		{"host-bits", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.20.0.1/16")}, "spec.ipv4.cidrs: an entry has host bits set"},
		{"mask-too-small", ciliumv2alpha1.IPPoolSpec{IPv4: v4(8, "10.20.0.0/16")}, "spec.ipv4.maskSize must be at most 32 and at least"},
		{"mask-too-big", ciliumv2alpha1.IPPoolSpec{IPv4: v4(33, "10.20.0.0/16")}, "spec.ipv4.maskSize must be at most 32"},
		{"overlap", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.20.0.0/16", "10.20.5.0/24")}, "spec.ipv4.cidrs: entries overlap"},
		{"v6-bad", ciliumv2alpha1.IPPoolSpec{IPv6: v6(120, "10.0.0.0/8")}, "spec.ipv6.cidrs: every entry must be an IPv6 CIDR"},
		{"no-cidrs", ciliumv2alpha1.IPPoolSpec{IPv4: v4(24)}, "spec.ipv4.cidrs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: "adm-" + tc.name}, Spec: tc.spec}
			err := env.Client.Create(ctx, p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused a valid pool: %v", err)
				}
				t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
				return
			}
			if err == nil {
				_ = env.Client.Delete(ctx, p)
				t.Fatalf("admitted, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}

	// Cilium 1.20: allowFirstIP and allowLastIP are immutable, whether set,
	// cleared or added.
	t.Run("first-last-immutable", func(t *testing.T) {
		p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: "adm-first-last"},
			Spec: ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.52.0.0/16"), AllowFirstIP: true}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
		for field, mutate := range map[string]func(*ciliumv2alpha1.IPPoolSpec){
			"spec.allowFirstIP is immutable": func(s *ciliumv2alpha1.IPPoolSpec) { s.AllowFirstIP = false },
			"spec.allowLastIP is immutable":  func(s *ciliumv2alpha1.IPPoolSpec) { s.AllowLastIP = true },
		} {
			q := p.DeepCopy()
			mutate(&q.Spec)
			if err := env.Client.Update(ctx, q); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("%s: got %v", field, err)
			}
		}
		q := p.DeepCopy()
		q.Spec.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}
		if err := env.Client.Update(ctx, q); err != nil {
			t.Errorf("adding a podSelector was refused: %v", err)
		}
	})

	t.Run("mask-immutable", func(t *testing.T) {
		p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: "adm-immutable"},
			Spec: ciliumv2alpha1.IPPoolSpec{IPv4: v4(24, "10.50.0.0/16")}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
		p.Spec.IPv4.CIDRs = append(p.Spec.IPv4.CIDRs, "10.51.0.0/16") // growing is fine
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatalf("appending a CIDR was refused: %v", err)
		}
		p.Spec.IPv4.MaskSize = 26
		err := env.Client.Update(ctx, p)
		if err == nil || !strings.Contains(err.Error(), "spec.ipv4.maskSize is immutable") {
			t.Fatalf("changing maskSize: got %v", err)
		}
	})
}
