package translate

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// CACertificateKey is where a CA ConfigMap holds its PEM certificates.
const CACertificateKey = "ca.crt"

// tlsTarget is what a BackendTLSPolicy applies to: a Service's port of
// that name, or with section "" every port of the Service.
type tlsTarget struct {
	service types.NamespacedName
	section string
}

// backendTLSPolicy is a BackendTLSPolicy as validated.
type backendTLSPolicy struct {
	policy *gwv1.BackendTLSPolicy
	key    types.NamespacedName
	// tls is what the proxy does towards the targeted ports; nil when no
	// CA certificate is usable (the backends are then left unreachable
	// rather than spoken to unverified).
	tls      *ir.BackendTLS
	accepted metav1.Condition
	resolved metav1.Condition
	// ancestors are the Gateways whose routes use a port it targets.
	ancestors map[types.NamespacedName]bool
}

// validateBackendTLSPolicies validates every policy and decides, per
// target, which one applies: the oldest (then by namespace and name), as
// the Gateway API's conflict rule says; the others are Conflicted.
func (w *world) validateBackendTLSPolicies() {
	w.tlsPolicies = map[tlsTarget]*backendTLSPolicy{}
	var all []*backendTLSPolicy
	for i := range w.in.BackendTLSPolicies {
		all = append(all, w.validateBackendTLS(&w.in.BackendTLSPolicies[i]))
	}
	slices.SortFunc(all, func(a, b *backendTLSPolicy) int {
		return cmp.Or(a.policy.CreationTimestamp.Compare(b.policy.CreationTimestamp.Time), cmp.Compare(a.key.String(), b.key.String()))
	})
	w.allTLSPolicies = all
	w.tlsTargets = map[tlsTarget][]*backendTLSPolicy{}
	for _, p := range all {
		for _, t := range p.policy.Spec.TargetRefs {
			if t.Group != "" || t.Kind != "Service" {
				// Only Services are served. Such a target has no Gateway
				// to report under (status is per ancestor), so it shows
				// nowhere: docs/gateway.md says so.
				continue
			}
			target := tlsTarget{service: types.NamespacedName{Namespace: p.key.Namespace, Name: string(t.Name)}, section: string(ptr.Deref(t.SectionName, ""))}
			w.tlsTargets[target] = append(w.tlsTargets[target], p)
			if winner, taken := w.tlsPolicies[target]; taken {
				what := "Service " + target.service.String()
				if target.section != "" {
					what += " port " + target.section
				}
				p.accepted = cond(gwv1.PolicyConditionAccepted, false, gwv1.PolicyReasonConflicted, p.policy.Generation,
					"BackendTLSPolicy %s, older, already applies to %s", winner.key, what)
				continue
			}
			w.tlsPolicies[target] = p
		}
	}
}

// validateBackendTLS checks one policy's CA certificates.
func (w *world) validateBackendTLS(p *gwv1.BackendTLSPolicy) *backendTLSPolicy {
	gen := p.Generation
	v := p.Spec.Validation
	s := &backendTLSPolicy{policy: p, key: keyOf(p), ancestors: map[types.NamespacedName]bool{},
		resolved: cond(gwv1.BackendTLSPolicyConditionResolvedRefs, true, gwv1.BackendTLSPolicyReasonResolvedRefs, gen, "All references resolved"),
	}
	tlsCfg := &ir.BackendTLS{SNI: string(v.Hostname), System: ptr.Deref(v.WellKnownCACertificates, "") == gwv1.WellKnownCACertificatesSystem}
	var pems []string
	for i, ref := range v.CACertificateRefs {
		field := fmt.Sprintf("spec.validation.caCertificateRefs[%d]", i)
		bad := func(reason gwv1.PolicyConditionReason, format string, args ...any) {
			if s.resolved.Status == metav1.ConditionTrue { // the first problem is the one reported
				s.resolved = cond(gwv1.BackendTLSPolicyConditionResolvedRefs, false, reason, gen, "%s: %s", field, fmt.Sprintf(format, args...))
			}
		}
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			bad(gwv1.BackendTLSPolicyReasonInvalidKind, "kind %s is not supported; only core ConfigMaps are", strings.TrimSuffix(string(ref.Kind)+"."+string(ref.Group), "."))
			continue
		}
		key := types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)}
		pem, err := w.caCertificates(key)
		if err != nil {
			bad(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef, "%v", err)
			continue
		}
		pems = append(pems, pem)
	}
	tlsCfg.CACertificates = strings.Join(pems, "\n")
	if len(pems) > 0 || tlsCfg.System {
		s.tls = tlsCfg
	}
	// Without names to check, a proxy checks none: the hostname is the
	// name the certificate must carry, unless subjectAltNames say others.
	for _, san := range v.SubjectAltNames {
		switch san.Type {
		case gwv1.URISubjectAltNameType:
			tlsCfg.SubjectAltNames = append(tlsCfg.SubjectAltNames, ir.SubjectAltName{URI: true, Value: string(san.URI)})
		default:
			tlsCfg.SubjectAltNames = append(tlsCfg.SubjectAltNames, ir.SubjectAltName{Value: string(san.Hostname)})
		}
	}
	if len(tlsCfg.SubjectAltNames) == 0 {
		tlsCfg.SubjectAltNames = []ir.SubjectAltName{{Value: tlsCfg.SNI}}
	}
	switch {
	case s.tls == nil:
		s.accepted = cond(gwv1.PolicyConditionAccepted, false, gwv1.BackendTLSPolicyReasonNoValidCACertificate, gen,
			"No CA certificate is usable (see ResolvedRefs): requests to the targeted backends fail rather than reach them unverified")
	case len(p.Spec.Options) > 0:
		s.accepted = cond(gwv1.PolicyConditionAccepted, true, gwv1.PolicyReasonAccepted, gen,
			"Accepted; options %s are not supported and ignored", optionNames(p.Spec.Options))
	default:
		s.accepted = cond(gwv1.PolicyConditionAccepted, true, gwv1.PolicyReasonAccepted, gen, "Accepted")
	}
	return s
}

// optionNames lists a policy's option keys, sorted.
func optionNames(options map[gwv1.AnnotationKey]gwv1.AnnotationValue) string {
	var names []string
	for k := range options {
		names = append(names, string(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// checkCertificates says why data is not a PEM bundle of certificates.
// caCertificates returns the PEM CA certificates of ConfigMap key (under
// ca.crt), or why there are none to use.
func (w *world) caCertificates(key types.NamespacedName) (string, error) {
	cm, ok := w.configMaps[key]
	if !ok {
		return "", fmt.Errorf("ConfigMap %s not found", key)
	}
	data := cm.Data[CACertificateKey]
	if err := checkCertificates(data); err != nil {
		return "", fmt.Errorf("ConfigMap %s: %s: %w", key, CACertificateKey, err)
	}
	return strings.TrimSpace(data), nil
}

func checkCertificates(data string) error {
	rest := []byte(data)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("a PEM block of type %s, want CERTIFICATE", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate")
	}
	return nil
}

// backendTLSFor returns the policy that applies to a Service port: one
// naming the port wins over one for the whole Service.
func (w *world) backendTLSFor(svc types.NamespacedName, port string) *backendTLSPolicy {
	if p := w.tlsPolicies[tlsTarget{svc, port}]; p != nil && port != "" {
		return p
	}
	return w.tlsPolicies[tlsTarget{service: svc}]
}

// backendTLSStatus is each policy's status.ancestors entries of this
// controller: one per Gateway whose routes use a port it targets (applied
// or not: a Conflicted policy reports on the same Gateways).
func (w *world) backendTLSStatus(routes []*routeObject) map[types.NamespacedName][]gwv1.PolicyAncestorStatus {
	for _, r := range routes {
		for _, t := range r.backendPorts {
			on := append(slices.Clone(w.tlsTargets[t]), w.tlsTargets[tlsTarget{service: t.service}]...)
			for _, p := range on {
				for _, a := range r.attachments {
					p.ancestors[a.gateway.key] = true
				}
			}
		}
	}
	out := map[types.NamespacedName][]gwv1.PolicyAncestorStatus{}
	for _, p := range w.allTLSPolicies {
		st := []gwv1.PolicyAncestorStatus{}
		for _, gw := range slices.SortedFunc(maps.Keys(p.ancestors), func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) }) {
			st = append(st, gwv1.PolicyAncestorStatus{
				AncestorRef: gwv1.ParentReference{
					Group: ptr.To(gwv1.Group(gwv1.GroupName)), Kind: ptr.To(gwv1.Kind("Gateway")),
					Namespace: ptr.To(gwv1.Namespace(gw.Namespace)), Name: gwv1.ObjectName(gw.Name),
				},
				ControllerName: ControllerName,
				Conditions:     []metav1.Condition{p.accepted, p.resolved},
			})
		}
		out[p.key] = st // the reconciler keeps the API's limit
	}
	return out
}

// applyBackendTLS gives a cluster its policy's TLS; a policy without a
// usable CA leaves the cluster without endpoints, so requests fail (503)
// instead of reaching a backend that cannot be verified.
func applyBackendTLS(c *ir.Cluster, p *backendTLSPolicy) {
	if p == nil {
		return
	}
	if p.tls == nil {
		c.Endpoints = nil
		return
	}
	c.TLS = p.tls
}
