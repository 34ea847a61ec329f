// Package l7proxy is the node plugin that serves a node's Envoy: it reads
// the node's L7Proxy (which Envoy configs the node serves), the configs
// themselves and the certificates of the secrets namespace, serves their
// resources to the local proxy over ADS (go-control-plane), and reports in
// the L7Proxy's status which generation of each config the proxy has
// acknowledged, or why a config is not served: a resource that fails
// validation, a name another config already uses, a reference to nothing,
// or the proxy's own refusal (NACK). A bad config never takes the others
// down, and the proxy keeps the last snapshot it accepted.
package l7proxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/envoyxds"
)

// Config is one Envoy config as the node reads it.
type Config struct {
	Ref        nodesv1alpha1.EnvoyConfigRef
	Generation int64
	Resources  []runtime.RawExtension
}

// Snapshot is what the proxy is served, and where each part came from.
type Snapshot struct {
	Version   string
	Resources map[string][]types.Resource
	// TypeVersions name each type's resources (the same resources, the
	// same name), so an acknowledgement of an older snapshot whose type
	// did not change counts for this one.
	TypeVersions map[string]string
	// Generations are the configs the snapshot holds, at their generation.
	Generations map[nodesv1alpha1.EnvoyConfigRef]int64
	// Owners names the config of each resource (by type, then name), so a
	// refusal that names a resource is reported on its config.
	Owners map[string]map[string]nodesv1alpha1.EnvoyConfigRef
}

// Build assembles a snapshot from configs (in spec order) and the TLS
// Secrets of the secrets namespace. Each config is served whole or not at
// all: the returned errors say why a config is left out.
func Build(configs []Config, secrets []corev1.Secret) (Snapshot, map[nodesv1alpha1.EnvoyConfigRef]string) {
	return (&Builder{}).Build(configs, secrets)
}

// Builder is Build that remembers the resources it decoded, by their raw
// bytes, so a snapshot rebuilt after one config changed decodes only that
// config again (decoding and validating is most of a build's cost). It
// keeps what the last build used.
type Builder struct {
	mu      sync.Mutex
	decoded map[[sha256.Size]byte]decodedResource
}

type decodedResource struct {
	typ string
	res types.Resource
	err error
}

// decoder returns a decode for one build and, to call after it, the
// function that keeps only what that build used.
func (b *Builder) decoder() (decode func(raw []byte) (string, types.Resource, error), done func()) {
	used := map[[sha256.Size]byte]decodedResource{}
	decode = func(raw []byte) (string, types.Resource, error) {
		k := sha256.Sum256(raw)
		d, ok := b.decoded[k]
		if !ok {
			d.typ, d.res, d.err = envoyxds.Decode(raw)
		}
		used[k] = d
		return d.typ, d.res, d.err
	}
	return decode, func() { b.decoded = used }
}

// Build is the package's Build, decoding only resources it has not seen.
func (b *Builder) Build(configs []Config, secrets []corev1.Secret) (Snapshot, map[nodesv1alpha1.EnvoyConfigRef]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	decode, done := b.decoder()
	defer done()
	s := Snapshot{
		Resources:   map[string][]types.Resource{},
		Generations: map[nodesv1alpha1.EnvoyConfigRef]int64{},
		Owners:      map[string]map[string]nodesv1alpha1.EnvoyConfigRef{},
	}
	for _, t := range envoyxds.Types {
		s.Owners[t] = map[string]nodesv1alpha1.EnvoyConfigRef{}
	}
	errs := map[nodesv1alpha1.EnvoyConfigRef]string{}
	type decoded struct {
		typ string
		res types.Resource
	}
	var accepted []Config
	perConfig := map[nodesv1alpha1.EnvoyConfigRef][]decoded{}
	for _, c := range configs {
		var ds []decoded
		var problem string
		for i, raw := range c.Resources {
			typ, r, err := decode(raw.Raw)
			if err != nil {
				problem = fmt.Sprintf("resources[%d]: %v", i, err)
				break
			}
			name := cache.GetResourceName(r)
			if other, taken := s.Owners[typ][name]; taken {
				problem = fmt.Sprintf("resources[%d]: %s %q is already defined by %s", i, shortType(typ), name, other)
				break
			}
			if slices.ContainsFunc(ds, func(d decoded) bool { return d.typ == typ && cache.GetResourceName(d.res) == name }) {
				problem = fmt.Sprintf("resources[%d]: %s %q is defined twice", i, shortType(typ), name)
				break
			}
			ds = append(ds, decoded{typ, r})
		}
		if problem != "" {
			errs[c.Ref] = problem
			continue
		}
		for _, d := range ds {
			s.Owners[d.typ][cache.GetResourceName(d.res)] = c.Ref
		}
		perConfig[c.Ref] = ds
		accepted = append(accepted, c)
	}
	for i := range secrets {
		sec := &secrets[i]
		if sec.Type != corev1.SecretTypeTLS {
			continue
		}
		name := envoyxds.SecretName(sec.Namespace, sec.Name)
		s.Resources[resource.SecretType] = append(s.Resources[resource.SecretType],
			envoyxds.TLSSecret(name, sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]))
	}
	// A listener naming a route configuration nobody defines, or a cluster
	// waiting for endpoints nobody sends, would leave the proxy warming
	// forever: such a config is left out and says why.
	secretNames := map[string]bool{}
	for _, r := range s.Resources[resource.SecretType] {
		secretNames[cache.GetResourceName(r)] = true
	}
	for _, c := range accepted {
		byType := map[string]map[string]types.Resource{}
		for _, d := range perConfig[c.Ref] {
			if byType[d.typ] == nil {
				byType[d.typ] = map[string]types.Resource{}
			}
			byType[d.typ][cache.GetResourceName(d.res)] = d.res
		}
		var missing []string
		for typ, names := range cache.GetAllResourceReferences(toResources(byType)) {
			for name := range names {
				_, defined := s.Owners[typ][name]
				if typ == resource.SecretType {
					defined = secretNames[name]
				}
				if !defined {
					missing = append(missing, fmt.Sprintf("%s %q", shortType(typ), name))
				}
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			errs[c.Ref] = "references what no config defines: " + strings.Join(missing, ", ")
			for _, d := range perConfig[c.Ref] {
				delete(s.Owners[d.typ], cache.GetResourceName(d.res))
			}
			continue
		}
		for _, d := range perConfig[c.Ref] {
			s.Resources[d.typ] = append(s.Resources[d.typ], d.res)
		}
		s.Generations[c.Ref] = c.Generation
	}
	for _, t := range envoyxds.Types {
		// Every type is in the snapshot, empty or not, so the proxy gets
		// (and acknowledges) each version for every type it asks for.
		if s.Resources[t] == nil {
			s.Resources[t] = []types.Resource{}
		}
		slices.SortFunc(s.Resources[t], func(a, b types.Resource) int { return cmp.Compare(cache.GetResourceName(a), cache.GetResourceName(b)) })
	}
	s.TypeVersions = map[string]string{}
	for _, t := range envoyxds.Types {
		s.TypeVersions[t] = typeVersion(s.Resources[t])
	}
	s.Version = version(s.TypeVersions)
	return s, errs
}

// toResources is the shape GetAllResourceReferences takes.
func toResources(byType map[string]map[string]types.Resource) [types.UnknownType]cache.Resources {
	var out [types.UnknownType]cache.Resources
	for typ, rs := range byType {
		items := map[string]types.ResourceWithTTL{}
		for name, r := range rs {
			items[name] = types.ResourceWithTTL{Resource: r}
		}
		out[cache.GetResponseType(typ)] = cache.Resources{Items: items}
	}
	return out
}

// version names the content: the same resources give the same version, so
// a restart that rebuilds the same snapshot sends the proxy nothing new.
func version(typeVersions map[string]string) string {
	h := sha256.New()
	for _, t := range envoyxds.Types {
		fmt.Fprintf(h, "%s %s\n", t, typeVersions[t])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// typeVersion names one type's resources.
func typeVersion(rs []types.Resource) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, r := range rs {
		b, err := opts.Marshal(r)
		if err != nil {
			b = []byte(err.Error())
		}
		fmt.Fprintf(h, "%d\n", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// emptyTypeVersion names a type with no resources.
var emptyTypeVersion = typeVersion(nil)

func shortType(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}
