package translate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/ir"
)

// ServiceSettings are the fields of a generated Service that users choose:
// for a Gateway through its class's CiliumGatewayClassConfig, for a
// dedicated Ingress through its annotations. Nil and empty fields leave
// the API server's defaults.
type ServiceSettings struct {
	Type                          corev1.ServiceType                  `json:"type"`
	LoadBalancerClass             *string                             `json:"loadBalancerClass,omitempty"`
	ExternalTrafficPolicy         corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
	IPFamilies                    []corev1.IPFamily                   `json:"ipFamilies,omitempty"`
	IPFamilyPolicy                *corev1.IPFamilyPolicy              `json:"ipFamilyPolicy,omitempty"`
	AllocateLoadBalancerNodePorts *bool                               `json:"allocateLoadBalancerNodePorts,omitempty"`
	LoadBalancerSourceRanges      []string                            `json:"loadBalancerSourceRanges,omitempty"`
	TrafficDistribution           *string                             `json:"trafficDistribution,omitempty"`
	// NodePorts asks for node ports by Service port.
	NodePorts map[int32]int32 `json:"nodePorts,omitempty"`
}

// defaultServiceSettings is a LoadBalancer Service with the seed's
// externalTrafficPolicy.
func defaultServiceSettings() ServiceSettings {
	return ServiceSettings{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster}
}

// classState is one of our GatewayClasses as validated: its conditions and
// what its parameters give its Gateways.
type classState struct {
	conds        []metav1.Condition
	service      ServiceSettings
	serverHeader ir.ServerHeader
}

func (s *classState) accepted() bool {
	return len(s.conds) > 0 && s.conds[0].Status == metav1.ConditionTrue
}

// validateClass resolves a class's parametersRef.
func (w *world) validateClass(c *gwv1.GatewayClass) *classState {
	s := &classState{service: defaultServiceSettings()}
	gen := c.Generation
	invalid := func(format string, args ...any) *classState {
		s.conds = []metav1.Condition{cond(gwv1.GatewayClassConditionStatusAccepted, false, gwv1.GatewayClassReasonInvalidParameters, gen, format, args...)}
		return s
	}
	if p := c.Spec.ParametersRef; p != nil {
		if string(p.Group) != ClassConfigGroup || string(p.Kind) != ClassConfigKind {
			return invalid("spec.parametersRef: kind %s.%s is not supported; only %s.%s is", p.Kind, p.Group, ClassConfigKind, ClassConfigGroup)
		}
		if p.Namespace == nil || *p.Namespace == "" {
			return invalid("spec.parametersRef.namespace: a %s is namespaced; name its namespace", ClassConfigKind)
		}
		key := types.NamespacedName{Namespace: string(*p.Namespace), Name: p.Name}
		cfg, ok := w.classConfigs[key]
		if !ok {
			return invalid("spec.parametersRef: %s %s not found", ClassConfigKind, key)
		}
		s.service, s.serverHeader = classConfigSettings(cfg)
	}
	s.conds = []metav1.Condition{cond(gwv1.GatewayClassConditionStatusAccepted, true, gwv1.GatewayClassReasonAccepted, gen,
		"Handled by %s", ControllerName)}
	return s
}

// classConfigSettings reads what a CiliumGatewayClassConfig sets.
func classConfigSettings(cfg *ciliumv2alpha1.CiliumGatewayClassConfig) (ServiceSettings, ir.ServerHeader) {
	s := defaultServiceSettings()
	if sc := cfg.Spec.Service; sc != nil {
		if sc.Type != "" {
			s.Type = sc.Type
		}
		if sc.ExternalTrafficPolicy != "" {
			s.ExternalTrafficPolicy = sc.ExternalTrafficPolicy
		}
		s.IPFamilies, s.IPFamilyPolicy, s.TrafficDistribution = slices.Clone(sc.IPFamilies), sc.IPFamilyPolicy, sc.TrafficDistribution
		// The API server allows these on LoadBalancer Services only.
		if s.Type == corev1.ServiceTypeLoadBalancer {
			s.LoadBalancerClass, s.AllocateLoadBalancerNodePorts = sc.LoadBalancerClass, sc.AllocateLoadBalancerNodePorts
			if sc.LoadBalancerSourceRangesPolicy != ciliumv2alpha1.SourceRangesDeny {
				s.LoadBalancerSourceRanges = slices.Clone(sc.LoadBalancerSourceRanges)
			}
		}
	}
	var sh ir.ServerHeader
	if e := cfg.Spec.Envoy; e != nil && e.ServerHeaderTransformation != nil {
		sh = ir.ServerHeader(*e.ServerHeaderTransformation)
	}
	return s, sh
}

// classConfigConditions are a CiliumGatewayClassConfig's conditions: it is
// always accepted (the schema refused what is malformed), and the message
// names what Plexus does not act on.
func classConfigConditions(cfg *ciliumv2alpha1.CiliumGatewayClassConfig) []metav1.Condition {
	var ignored []string
	if sc := cfg.Spec.Service; sc != nil && sc.Type == corev1.ServiceTypeNodePort {
		for field, set := range map[string]bool{
			"loadBalancerClass":             sc.LoadBalancerClass != nil,
			"allocateLoadBalancerNodePorts": sc.AllocateLoadBalancerNodePorts != nil,
			"loadBalancerSourceRanges":      len(sc.LoadBalancerSourceRanges) > 0,
		} {
			if set {
				ignored = append(ignored, fmt.Sprintf("service.%s (LoadBalancer Services only)", field))
			}
		}
	}
	if sc := cfg.Spec.Service; sc != nil && sc.LoadBalancerSourceRangesPolicy == ciliumv2alpha1.SourceRangesDeny && len(sc.LoadBalancerSourceRanges) > 0 {
		ignored = append(ignored, "service.loadBalancerSourceRanges with policy Deny (Service load-balancing here only admits listed ranges; the ranges are not applied)")
	}
	if h := cfg.Spec.HTTPOptions; h != nil && h.GRPCWebTranslation != nil && (h.GRPCWebTranslation.Enabled == nil || *h.GRPCWebTranslation.Enabled) {
		ignored = append(ignored, "httpOptions.grpcWebTranslation (gRPC-web is not translated)")
	}
	if t := cfg.Spec.Telemetry; t != nil && len(t.AccessLogs) > 0 {
		ignored = append(ignored, "telemetry.accessLogs (no access logs are written)")
	}
	slices.Sort(ignored)
	gen := cfg.Generation
	msg, reason := "Valid: every field set is applied to the Gateways of the classes that use it", "Accepted"
	if len(ignored) > 0 {
		msg, reason = "Valid; not applied: "+strings.Join(ignored, "; "), "PartiallyApplied"
	}
	return []metav1.Condition{
		cond("Accepted", true, reason, gen, "%s", msg),
		cond("Ready", true, reason, gen, "%s", msg),
	}
}
