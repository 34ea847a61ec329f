package reconciler

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
)

// ParseAutoCreatePool parses one --auto-create-pool value, in the seed
// system's format: name=ipv4-cidrs:A,B;ipv4-mask-size:N;ipv6-cidrs:C;ipv6-mask-size:M.
func ParseAutoCreatePool(s string) (*ciliumv2alpha1.CiliumPodIPPool, error) {
	name, body, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("auto-create pool %q: want name=ipv4-cidrs:CIDR[,CIDR];ipv4-mask-size:N[;ipv6-cidrs:...;ipv6-mask-size:N]", s)
	}
	p := &ciliumv2alpha1.CiliumPodIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	fam := func(v6 bool) *ciliumv2alpha1.IPPoolFamily {
		f := &p.Spec.IPv4
		if v6 {
			f = &p.Spec.IPv6
		}
		if *f == nil {
			*f = &ciliumv2alpha1.IPPoolFamily{}
		}
		return *f
	}
	for _, kv := range strings.Split(body, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), ":")
		switch k {
		case "ipv4-cidrs", "ipv6-cidrs":
			fam(k == "ipv6-cidrs").CIDRs = strings.Split(v, ",")
		case "ipv4-mask-size", "ipv6-mask-size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("auto-create pool %s: %s %q is not a number", name, k, v)
			}
			fam(k == "ipv6-mask-size").MaskSize = int32(n)
		default:
			return nil, fmt.Errorf("auto-create pool %s: unknown key %q (want ipv4-cidrs, ipv4-mask-size, ipv6-cidrs, ipv6-mask-size)", name, k)
		}
	}
	return p, nil
}

// EnsurePools creates the pools that do not exist yet. Existing ones are
// left as they are: once created, a pool belongs to its users (and GitOps).
// The API server validates them; a refusal names the field.
func EnsurePools(ctx context.Context, c client.Client, pools []*ciliumv2alpha1.CiliumPodIPPool) error {
	for _, p := range pools {
		if err := c.Create(ctx, p); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("auto-creating CiliumPodIPPool %s: %w", p.Name, err)
		}
	}
	return nil
}
