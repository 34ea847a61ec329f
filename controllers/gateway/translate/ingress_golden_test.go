package translate_test

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/controllers/gateway/translate"
)

// ingressGoldenOptions are the settings every Ingress golden case runs
// with: the seed's defaults plus a default certificate.
var ingressGoldenOptions = translate.IngressOptions{
	DefaultMode:        translate.Dedicated,
	EnforceHTTPS:       true,
	DefaultCertificate: types.NamespacedName{Namespace: "kube-system", Name: "default-cert"},
	SharedService:      types.NamespacedName{Namespace: "kube-system", Name: "cilium-ingress"},
	AnnotationPrefixes: []string{"service.beta.kubernetes.io", "service.kubernetes.io"},
}

type goldenFrontend struct {
	Service     string                    `json:"service"`
	EnvoyConfig string                    `json:"envoyConfig"`
	Owner       string                    `json:"owner,omitempty"`
	Ingresses   []string                  `json:"ingresses"`
	Settings    translate.ServiceSettings `json:"settings"`
	Annotations map[string]string         `json:"annotations,omitempty"`
	Error       string                    `json:"error,omitempty"`
	XDS         map[string][]any          `json:"xds,omitempty"`
}

// TestIngressGolden translates each testdata/ingress/<case>.in.yaml with
// ingressGoldenOptions and compares the load balancers, the problems
// reported per Ingress and the xDS with <case>.out.yaml (-update rewrites).
func TestIngressGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/ingress/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			out := translate.TranslateIngresses(readInput(t, f), ingressGoldenOptions)
			var g struct {
				Frontends  []goldenFrontend    `json:"frontends"`
				FrontendOf map[string]string   `json:"frontendOf"`
				Problems   map[string][]string `json:"problems,omitempty"`
			}
			g.FrontendOf, g.Problems = map[string]string{}, map[string][]string{}
			for k, v := range out.FrontendOf {
				g.FrontendOf[k.String()] = v.String()
			}
			for k, v := range out.Problems {
				g.Problems[k.String()] = v
			}
			for _, fe := range out.Frontends {
				gf := goldenFrontend{
					Service: fe.Service.String(), EnvoyConfig: fe.EnvoyConfig.String(), Ingresses: []string{},
					Settings: fe.Settings, Annotations: fe.Annotations,
				}
				if fe.Owner != nil {
					gf.Owner = fe.Owner.Namespace + "/" + fe.Owner.Name
				}
				for _, i := range fe.Ingresses {
					gf.Ingresses = append(gf.Ingresses, i.String())
				}
				gf.XDS, gf.Error = xdsOf(t, fe.Config)
				g.Frontends = append(g.Frontends, gf)
			}
			compareGolden(t, filepath.Join("testdata", "ingress", name+".out.yaml"), toYAML(t, g))
		})
	}
}
