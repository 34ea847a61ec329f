// Command crdpatch finishes CRDs that controller-gen wrote, for what its
// markers cannot say:
//
//	crdpatch versions FILE VERSION...
//	    adds served versions, each a copy of the storage version's schema,
//	    deprecated (the API server warns whoever uses them) as in Cilium 1.20.
//	    Cilium serves some kinds at an older version too
//	    (CiliumLoadBalancerIPPool at v2alpha1 beside v2) with the very same
//	    schema; copying it keeps one Go type per kind instead of two
//	    identical packages, and the API server converts between identical
//	    schemas by itself.
//	crdpatch policy FILE...
//	    adds to the policy schemas Cilium's "exactly one of" / "at least
//	    one of" field groups, as OpenAPI oneOf/anyOf blocks of required
//	    fields (see presenceGroups), and the pattern of ICMP type names on
//	    the int-or-string ICMP type. CEL could say the former, but its cost
//	    grows with every enclosing list, and the policy schema nests lists
//	    deeply and without bounds.
package main

import (
	"fmt"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func main() {
	var err error
	switch {
	case len(os.Args) >= 4 && os.Args[1] == "versions":
		err = edit(os.Args[2], func(crd *apiextensionsv1.CustomResourceDefinition) error { return addVersions(crd, os.Args[3:]) })
	case len(os.Args) >= 3 && os.Args[1] == "policy":
		for _, f := range os.Args[2:] {
			if err = edit(f, patchPolicy); err != nil {
				break
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: crdpatch versions FILE VERSION... | crdpatch policy FILE...")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdpatch:", err)
		os.Exit(1)
	}
}

// edit reads the CRD at path, changes it and writes it back in the shape
// controller-gen writes.
func edit(path string, change func(*apiextensionsv1.CustomResourceDefinition) error) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := change(&crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out, err := yaml.Marshal(&crd)
	if err != nil {
		return err
	}
	// Keep the document shape controller-gen writes: no empty status block.
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return err
	}
	delete(doc, "status")
	if md, ok := doc["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	out, err = yaml.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

func addVersions(crd *apiextensionsv1.CustomResourceDefinition, versions []string) error {
	var storage *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Storage {
			storage = &crd.Spec.Versions[i]
		}
	}
	if storage == nil {
		return fmt.Errorf("no storage version")
	}
	for _, name := range versions {
		for _, v := range crd.Spec.Versions {
			if v.Name == name {
				return fmt.Errorf("already serves %s", name)
			}
		}
		extra := *storage.DeepCopy()
		extra.Name = name
		extra.Storage = false
		// Cilium 1.20 deprecates these older versions; the API server then
		// warns every client that uses one.
		extra.Deprecated = true
		extra.DeprecationWarning = ptr.To(fmt.Sprintf("cilium.io/%s %s is deprecated; use cilium.io/%s", name, crd.Spec.Names.Kind, storage.Name))
		crd.Spec.Versions = append(crd.Spec.Versions, extra)
	}
	return nil
}

// presenceGroup is a field group of one object type, which is recognised
// by the fields it has (the CRD inlines every type, so names are gone).
type presenceGroup struct {
	has   []string   // an object schema with all these properties is the type
	oneOf [][]string // exactly one of these field sets is present
	anyOf [][]string // at least one is
}

// presenceGroups are Cilium's policy schema's field groups.
var presenceGroups = []presenceGroup{
	{ // Rule: one subject, at least one direction
		has:   []string{"endpointSelector", "nodeSelector", "ingress", "egressDeny"},
		oneOf: [][]string{{"endpointSelector"}, {"nodeSelector"}},
		anyOf: [][]string{{"ingress"}, {"ingressDeny"}, {"egress"}, {"egressDeny"}},
	},
	{ // CIDRRule: one source
		has:   []string{"cidr", "cidrGroupRef", "cidrGroupSelector", "except"},
		oneOf: [][]string{{"cidr"}, {"cidrGroupRef"}, {"cidrGroupSelector"}},
	},
	{ // L7Rules: one protocol (generic rules name their parser)
		has:   []string{"http", "dns", "kafka", "l7proto"},
		oneOf: [][]string{{"http"}, {"kafka"}, {"dns"}, {"l7proto"}},
	},
	{ // FQDNSelector and PortRuleDNS: one form
		has:   []string{"matchName", "matchPattern"},
		oneOf: [][]string{{"matchName"}, {"matchPattern"}},
	},
}

// icmpTypePattern is the numbers and names an ICMP type may be given as:
// Cilium's list (with its "ExtendedEcho Reply" as it is, so its manifests
// keep applying) and the name spelt right.
const icmpTypePattern = `^([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]|EchoReply|DestinationUnreachable|Redirect|Echo|RouterAdvertisement|RouterSelection|TimeExceeded|ParameterProblem|Timestamp|TimestampReply|Photuris|ExtendedEchoRequest|ExtendedEcho Reply|PacketTooBig|ParameterProblem|EchoRequest|MulticastListenerQuery|MulticastListenerReport|MulticastListenerDone|RouterSolicitation|RouterAdvertisement|NeighborSolicitation|NeighborAdvertisement|RedirectMessage|RouterRenumbering|ICMPNodeInformationQuery|ICMPNodeInformationResponse|InverseNeighborDiscoverySolicitation|InverseNeighborDiscoveryAdvertisement|HomeAgentAddressDiscoveryRequest|HomeAgentAddressDiscoveryReply|MobilePrefixSolicitation|MobilePrefixAdvertisement|DuplicateAddressRequestCodeSuffix|DuplicateAddressConfirmationCodeSuffix|ExtendedEchoReply)$`

func patchPolicy(crd *apiextensionsv1.CustomResourceDefinition) error {
	found := map[int]int{}
	for i := range crd.Spec.Versions {
		if s := crd.Spec.Versions[i].Schema; s != nil && s.OpenAPIV3Schema != nil {
			walk(s.OpenAPIV3Schema, found)
		}
	}
	if found[0] == 0 { // every file given holds policy rules
		return fmt.Errorf("no policy rule schema (fields %v) found", presenceGroups[0].has)
	}
	return nil
}

// walk adds the groups to every object schema under s that matches one.
func walk(s *apiextensionsv1.JSONSchemaProps, found map[int]int) {
	if t, ok := s.Properties["type"]; ok && t.XIntOrString && hasAll(s, []string{"family"}) {
		t.Pattern = icmpTypePattern
		s.Properties["type"] = t
	}
	for i, g := range presenceGroups {
		if hasAll(s, g.has) {
			s.OneOf = alternatives(g.oneOf)
			s.AnyOf = alternatives(g.anyOf)
			found[i]++
		}
	}
	for k := range s.Properties {
		p := s.Properties[k]
		walk(&p, found)
		s.Properties[k] = p
	}
	if s.Items != nil && s.Items.Schema != nil {
		walk(s.Items.Schema, found)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		walk(s.AdditionalProperties.Schema, found)
	}
}

func hasAll(s *apiextensionsv1.JSONSchemaProps, names []string) bool {
	for _, n := range names {
		if _, ok := s.Properties[n]; !ok {
			return false
		}
	}
	return true
}

// alternatives are the oneOf/anyOf branches: each requires its fields.
func alternatives(sets [][]string) []apiextensionsv1.JSONSchemaProps {
	var out []apiextensionsv1.JSONSchemaProps
	for _, set := range sets {
		alt := apiextensionsv1.JSONSchemaProps{Required: set, Properties: map[string]apiextensionsv1.JSONSchemaProps{}}
		for _, f := range set {
			alt.Properties[f] = apiextensionsv1.JSONSchemaProps{}
		}
		out = append(out, alt)
	}
	return out
}
