package compiler

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/internal/identity"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// world is the first document of a test case: the cluster the policies
// are compiled against.
type world struct {
	Mode         Mode                         `json:"mode"`
	HostFirewall bool                         `json:"hostFirewall"`
	Pods         map[string]map[string]string `json:"pods"`
	Nodes        map[string]map[string]string `json:"nodes"`
	CIDRGroups   map[string]struct {
		Labels map[string]string `json:"labels"`
		CIDRs  []string          `json:"cidrs"`
	} `json:"cidrGroups"`
	Services map[string]struct {
		Labels    map[string]string `json:"labels"`
		Selector  map[string]string `json:"selector"`
		Addresses []string          `json:"addresses"`
	} `json:"services"`
	// NamedPorts are per identity "name/PROTOCOL": port.
	NamedPorts map[string]map[string]uint16 `json:"namedPorts"`
}

// loadCase reads testdata/<name>.yaml: the world, then the policies.
func loadCase(t *testing.T, path string) Input {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var w world
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("world: %v", err)
	}
	in := Input{Mode: w.Mode, HostFirewall: w.HostFirewall, Nodes: w.Nodes, Pods: map[identity.Number]identity.Labels{},
		CIDRGroups: map[string]CIDRGroup{}, Services: map[types.NamespacedName]Service{}}
	if in.Mode == "" {
		in.Mode = ModeDefault
	}
	for id, l := range w.Pods {
		n, err := identity.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		in.Pods[n] = l
	}
	in.NamedPorts = map[identity.Number][]NamedPort{}
	for id, ports := range w.NamedPorts {
		n, err := identity.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		for key, port := range ports {
			name, proto, _ := strings.Cut(key, "/")
			in.NamedPorts[n] = append(in.NamedPorts[n], NamedPort{Name: name, Protocol: protocolNames[proto], Port: port})
		}
	}
	for name, g := range w.CIDRGroups {
		cg := CIDRGroup{Labels: g.Labels}
		for _, s := range g.CIDRs {
			cg.CIDRs = append(cg.CIDRs, netip.MustParsePrefix(s))
		}
		in.CIDRGroups[name] = cg
	}
	for key, s := range w.Services {
		ns, name, _ := strings.Cut(key, "/")
		svc := Service{Labels: s.Labels, Selector: s.Selector}
		for _, a := range s.Addresses {
			svc.Addresses = append(svc.Addresses, netip.MustParseAddr(a))
		}
		in.Services[types.NamespacedName{Namespace: ns, Name: name}] = svc
	}
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		addPolicy(t, &in, doc)
	}
	return in
}

func addPolicy(t *testing.T, in *Input, doc json.RawMessage) {
	t.Helper()
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		t.Fatal(err)
	}
	strict := func(v any) {
		d := json.NewDecoder(bytes.NewReader(doc))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			t.Fatalf("%s: %v", head.Kind, err)
		}
	}
	switch head.Kind {
	case KindCNP:
		var p ciliumv2.CiliumNetworkPolicy
		strict(&p)
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		in.CiliumPolicies = append(in.CiliumPolicies, p)
	case KindCCNP:
		var p ciliumv2.CiliumClusterwideNetworkPolicy
		strict(&p)
		in.ClusterwidePolicies = append(in.ClusterwidePolicies, p)
	case KindNetworkPolicy:
		var p networkingv1.NetworkPolicy
		strict(&p)
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		in.NetworkPolicies = append(in.NetworkPolicies, p)
	case "":
	default:
		t.Fatalf("unknown kind %q", head.Kind)
	}
}

// Each testdata/<case>.yaml compiles to testdata/<case>.golden. Run
// with -update to rewrite them, then read the diff.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			in := loadCase(t, path)
			got := Compile(in).Render(in.Pods)
			if again := Compile(in).Render(in.Pods); again != got {
				t.Fatalf("two compilations differ:\n%s\n---\n%s", got, again)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("compiled output differs from %s (run with -update and read the diff):\n%s", golden, got)
			}
		})
	}
}
