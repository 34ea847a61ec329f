// Package conformance runs the upstream Gateway API conformance suite (the
// gateway-api module's conformance package, at the module's version) on a
// lab running Plexus's gateway controller and, on every node, the l7proxy
// plugin feeding the stand-in proxy. The suite's echo-basic backends run in
// the lab's pods (lab-image runs echo-basic built from the same module).
// `make conformance` runs it and writes the suite's own report to
// docs/conformance/; it takes a lab and about 5 minutes, so `make test`
// leaves it out.
package conformance_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/yaml"

	ciliumv2alpha1 "github.com/plexus-net/plexus/apis/cilium/v2alpha1"
	"github.com/plexus-net/plexus/controllers/gateway/translate"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

func TestGatewayAPIConformance(t *testing.T) {
	report := os.Getenv("PLEXUS_CONFORMANCE_REPORT")
	if report == "" {
		t.Skip("the conformance suite runs with `make conformance` (it sets PLEXUS_CONFORMANCE_REPORT); it needs a lab and about 5 minutes")
	}
	ctrllog.SetLogger(logr.Discard())
	l := labtest.Start(t, lab.Options{Nodes: 2, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus", Gateway: true})
	ctx := context.Background()
	// Gateway addresses answer on the lab's segment, which this host is on
	// (the bridge), so the suite's own clients reach them as they are.
	if err := l.Cilium.Create(ctx, &ciliumv2alpha1.CiliumL2AnnouncementPolicy{ObjectMeta: metav1.ObjectMeta{Name: "conformance"},
		Spec: ciliumv2alpha1.L2AnnouncementPolicySpec{Interfaces: []string{"^eth0$"}, LoadBalancerIPs: true}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Cilium.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "cilium"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "io.cilium/gateway-controller"}}); err != nil {
		t.Fatal(err)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", l.Layout.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha3.Install, v1alpha2.Install, xv1alpha1.Install, gwv1.Install, apiextensionsv1.AddToScheme} {
		if err := add(c.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseManifests()
	if err != nil {
		t.Fatal(err)
	}
	opts := suite.ConformanceOptions{
		Client: c, Clientset: cs, RestConfig: cfg, BaseManifests: "plexus/base-manifests.yaml",
		ManifestFS: []fs.FS{fstest.MapFS{"plexus/base-manifests.yaml": {Data: base}}, &conformance.Manifests},
	}
	opts.GatewayClassName = "cilium"
	opts.Mode = "default"
	opts.TimeoutConfig = config.DefaultTimeoutConfig()
	// The features claimed are those the controller publishes in the
	// GatewayClass's status (translate.Features).
	opts.SupportedFeatures = translate.Features
	opts.ConformanceProfiles = []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName, suite.GatewayGRPCConformanceProfileName, suite.GatewayTLSConformanceProfileName}
	opts.CleanupBaseResources, opts.CleanupTestResources = true, true
	opts.Implementation = confv1.Implementation{
		Organization: "plexus-net", Project: "plexus", URL: "https://github.com/plexus-net/plexus",
		Version: "main", Contact: []string{"https://github.com/plexus-net/plexus/issues"},
	}
	// Failing tests wait out these limits: shorter than the suite's
	// defaults so a run stays within a CI budget; still far above what a
	// passing test needs on the lab.
	opts.TimeoutConfig.GatewayMustHaveAddress = 60 * time.Second
	opts.TimeoutConfig.GatewayMustHaveCondition = 60 * time.Second
	opts.TimeoutConfig.GWCMustBeAccepted = 60 * time.Second
	if only := os.Getenv("PLEXUS_CONFORMANCE_RUN"); only != "" {
		opts.RunTest = only
	}

	cSuite, err := suite.NewConformanceTestSuite(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r, err := cSuite.Report()
		if err != nil {
			t.Errorf("the suite's report: %v", err)
			return
		}
		out, err := yaml.Marshal(r)
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.MkdirAll(filepath.Dir(report), 0o755); err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(report, out, 0o644); err != nil { //nolint:gosec // a report for docs/
			t.Error(err)
		}
		t.Logf("conformance report written to %s", report)
	})
	cSuite.Setup(t, tests.ConformanceTests)
	if err := cSuite.Run(t, tests.ConformanceTests); err != nil {
		t.Error(err)
	}
}

// baseManifests are the suite's base manifests without the CoreDNS server
// that only UDPRoute tests use: UDPRoute is not claimed, its image is not
// in the lab, and the suite waits for every base pod to be Ready.
func baseManifests() ([]byte, error) {
	data, err := fs.ReadFile(&conformance.Manifests, "base/manifests.yaml")
	if err != nil {
		return nil, err
	}
	var kept []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, err
		}
		if meta.Metadata.Name == "coredns" {
			continue
		}
		kept = append(kept, doc)
	}
	return []byte(strings.Join(kept, "\n---\n")), nil
}
