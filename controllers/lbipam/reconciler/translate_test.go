package reconciler

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/plexus-net/plexus/controllers/lbipam/allocator"
)

func TestResponsible(t *testing.T) {
	lb := func(class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class}}
	}
	deleting := lb(nil)
	deleting.DeletionTimestamp = &metav1.Time{}
	for _, tc := range []struct {
		name           string
		svc            *corev1.Service
		serveClassless bool
		want           bool
	}{
		{"class-less", lb(nil), true, true},
		{"class-less, class required", lb(nil), false, false},
		{"bgp class", lb(ptr.To(ClassBGP)), false, true},
		{"l2 class", lb(ptr.To(ClassL2)), true, true},
		{"node ipam class", lb(ptr.To("io.cilium/node")), true, false},
		{"foreign class", lb(ptr.To("example.com/lb")), true, false},
		{"ClusterIP", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}, true, false},
		{"being deleted (keeps what it holds until gone)", deleting, true, true},
	} {
		if got := responsible(tc.svc, tc.serveClassless); got != tc.want {
			t.Errorf("%s: responsible = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestToAllocatorServiceRequests(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Annotations: map[string]string{
			AnnotationIPs:               " 20.0.10.1 ,20.0.10.2,,bogus",
			AnnotationIPsLegacy:         "20.0.10.2, ::ffff:20.0.10.3",
			AnnotationSharingKeyLegacy:  "legacy-key",
			AnnotationCrossNamespaceOld: "a, b",
		}},
		Spec: corev1.ServiceSpec{
			LoadBalancerIP: "20.0.10.1",
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			IPFamilies:     []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			Ports:          []corev1.ServicePort{{Port: 80}, {Port: 443}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "20.0.10.9"}, {Hostname: "lb.example"}}}},
	}
	s := toAllocatorService(svc, nil, false)
	checks := map[string][2]string{
		"requested":  {fmt.Sprint(s.Requested), "[20.0.10.1 20.0.10.2 20.0.10.3]"},
		"errors":     {fmt.Sprint(s.RequestErrors), "[bogus]"},
		"key":        {s.SharingKey, "legacy-key"},
		"cross":      {fmt.Sprint(s.CrossNamespace), "[a b]"},
		"policy":     {string(s.FamilyPolicy), "PreferDualStack"},
		"families":   {fmt.Sprint(s.Families), "[IPv6 IPv4]"},
		"ports":      {fmt.Sprint(s.Ports), "[80 443]"},
		"held":       {fmt.Sprint(s.Held), "[20.0.10.9]"},
		"name label": {s.Labels["io.kubernetes.service.name"], "s"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %s, want %s", what, c[0], c[1])
		}
	}
	// Once LB-IPAM has decided, its decision counts, not the status.
	decided := []netip.Addr{netip.MustParseAddr("20.0.10.1")}
	if got := toAllocatorService(svc, decided, true).Held; fmt.Sprint(got) != "[20.0.10.1]" {
		t.Errorf("held after a decision = %v", got)
	}
	if got := toAllocatorService(&corev1.Service{}, nil, false).FamilyPolicy; got != allocator.SingleStack {
		t.Errorf("default family policy = %s", got)
	}
	// Where holdings come from decides who wins a contested address.
	if got := s.HeldFrom; got != allocator.HeldImported {
		t.Errorf("status without LB-IPAM's condition: HeldFrom = %v, want imported", got)
	}
	svc.Status.Conditions = []metav1.Condition{{Type: ServiceConditionType, Status: metav1.ConditionTrue, Reason: "satisfied"}}
	if got := toAllocatorService(svc, nil, false).HeldFrom; got != allocator.HeldRecorded {
		t.Errorf("status with LB-IPAM's condition: HeldFrom = %v, want recorded", got)
	}
	// A zone makes no load-balancer address.
	zoned := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationIPs: "2004::5%eth0"}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "2004::6%eth0"}}}}}
	if z := toAllocatorService(zoned, nil, false); len(z.Requested) != 0 || fmt.Sprint(z.RequestErrors) != "[2004::5%eth0]" || len(z.Held) != 0 {
		t.Errorf("zoned addresses: requested %v, errors %v, held %v", z.Requested, z.RequestErrors, z.Held)
	}
}
