package translate

import (
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// Features are the Gateway API features this controller serves: the cores
// of the HTTP, gRPC and TLS profiles and the extended features built. They
// are published in each owned GatewayClass's status.supportedFeatures (how
// the conformance suite, and users, learn them).
var Features = []features.FeatureName{
	features.SupportGateway, features.SupportHTTPRoute, features.SupportReferenceGrant,
	features.SupportGRPCRoute, features.SupportTLSRoute,
	features.SupportGatewayPort8080, features.SupportGatewayHTTPListenerIsolation, features.SupportGatewayInfrastructure,
	features.SupportHTTPRouteQueryParamMatching, features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification, features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect, features.SupportHTTPRoutePathRedirect, features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite, features.SupportHTTPRouteRequestMirror, features.SupportHTTPRouteRequestMultipleMirrors,
	features.SupportHTTPRouteRequestPercentageMirror, features.SupportHTTPRouteRequestTimeout, features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteParentRefPort, features.SupportHTTPRouteBackendProtocolH2C, features.SupportHTTPRouteDestinationPortMatching,
	features.SupportHTTPRoute303RedirectStatusCode, features.SupportHTTPRoute307RedirectStatusCode, features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteNamedRouteRule, features.SupportGRPCRouteNamedRouteRule,
	features.SupportBackendTLSPolicy, features.SupportBackendTLSPolicySANValidation,
	features.SupportHTTPRouteCORS, features.SupportHTTPRouteBackendRequestHeaderModification,
	features.SupportGatewayFrontendClientCertificateValidation, features.SupportGatewayFrontendClientCertificateValidationInsecureFallback,
	features.SupportGatewayBackendClientCertificate, features.SupportGatewayHTTPSListenerDetectMisdirectedRequests,
	features.SupportHTTPRouteBackendProtocolWebSocket, features.SupportTLSRouteModeTerminate, features.SupportTLSRouteModeMixed,
}

// SupportedFeatures is Features as a GatewayClass status lists them
// (sorted, as the API asks).
func SupportedFeatures() []gwv1.SupportedFeature {
	out := make([]gwv1.SupportedFeature, 0, len(Features))
	for _, f := range Features {
		out = append(out, gwv1.SupportedFeature{Name: gwv1.FeatureName(f)})
	}
	slices.SortFunc(out, func(a, b gwv1.SupportedFeature) int { return strings.Compare(string(a.Name), string(b.Name)) })
	return out
}
