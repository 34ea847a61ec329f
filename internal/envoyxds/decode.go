package envoyxds

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	// The Envoy extensions a config may name in a typed_config: those the
	// gateway controller emits and the common ones of users' configs. A
	// type not linked here is refused by name (the seed refuses what its
	// Envoy build does not have).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Types are the xDS resource types a config may hold, in the order a proxy
// needs them (clusters and their endpoints before the listeners and routes
// that use them).
var Types = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType, resource.SecretType}

// Decode reads one resource of a CiliumEnvoyConfig: protobuf JSON of an Any
// ({"@type": ..., fields}). It returns the resource's type URL and the
// resource, checked against Envoy's proto constraints.
func Decode(raw []byte) (string, types.Resource, error) {
	var head struct {
		Type string `json:"@type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.Type == "" {
		return "", nil, fmt.Errorf("not an Envoy v3 resource: an object with an \"@type\" is expected")
	}
	if !slices.Contains(Types, head.Type) {
		return "", nil, fmt.Errorf("type %s is not served (only Listener, RouteConfiguration, Cluster, ClusterLoadAssignment and Secret are)", head.Type)
	}
	var a anypb.Any
	if err := protojson.Unmarshal(raw, &a); err != nil {
		return "", nil, fmt.Errorf("%s: %w", head.Type, err)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", a.TypeUrl, err)
	}
	r, ok := m.(types.Resource)
	if !ok {
		return "", nil, fmt.Errorf("%s is not an xDS resource", a.TypeUrl)
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", a.TypeUrl, cache.GetResourceName(r), err)
		}
	}
	return a.TypeUrl, r, nil
}
