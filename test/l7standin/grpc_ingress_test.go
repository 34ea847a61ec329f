package l7standin_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/controllers/gateway/translate"
)

// grpcBackend serves gRPC over h2c and answers every call with an error
// naming itself, so a client learns which backend a call reached (and
// that it went over gRPC, trailers included).
func grpcBackend(t *testing.T, name string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		return status.Error(codes.FailedPrecondition, "answered by "+name)
	}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port
}

// The seed's gRPC Ingress: paths named after gRPC services send each
// service's calls to its backend, over HTTP/2 to ports whose appProtocol
// says h2c (IN-28).
func TestIN28_GRPCIngressThroughTheStandIn(t *testing.T) {
	in := translate.Input{}
	for _, name := range []string{"productcatalogservice", "currencyservice"} {
		port := grpcBackend(t, name)
		in.Services = append(in.Services, service(name, port, "kubernetes.io/h2c"))
		in.EndpointSlices = append(in.EndpointSlices, slice(name, port))
	}
	in.Ingresses = []networkingv1.Ingress{ingress("grpc-ingress", nil, networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
			ingressPath("/hipstershop.ProductCatalogService", networkingv1.PathTypePrefix, "productcatalogservice"),
			ingressPath("/hipstershop.CurrencyService", networkingv1.PathTypePrefix, "currencyservice"),
		}}},
	}}})}
	in.IngressClasses = []networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "cilium"}, Spec: networkingv1.IngressClassSpec{Controller: translate.IngressController}}}
	st := serveIngresses(t, in, translate.IngressOptions{DefaultMode: translate.Shared,
		SharedService: types.NamespacedName{Namespace: "kube-system", Name: "cilium-ingress"}})
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", st.ports[80]), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for method, want := range map[string]string{
		"/hipstershop.ProductCatalogService/ListProducts": "answered by productcatalogservice",
		"/hipstershop.CurrencyService/Convert":            "answered by currencyservice",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		cancel()
		if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != want {
			t.Errorf("%s: %v, want %q", method, err, want)
		}
	}
}
