package l7proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/atomicfile"
	"github.com/plexus-net/plexus/internal/envoyxds"
)

// The state file keeps the last snapshot the proxy accepted, so that a
// restarted plugin serves it at once, before (or without) the API server:
// a proxy that reconnects finds its configuration unchanged. It holds the
// certificates' keys, so it lives on the node's run directory (tmpfs) with
// mode 0600.

type stateFile struct {
	Version   string          `json:"version"`
	Configs   []stateConfig   `json:"configs"`
	Resources []stateResource `json:"resources"`
}

type stateConfig struct {
	nodesv1alpha1.EnvoyConfigRef
	Generation int64 `json:"generation"`
}

type stateResource struct {
	Owner    *nodesv1alpha1.EnvoyConfigRef `json:"owner,omitempty"`
	Resource json.RawMessage               `json:"resource"`
}

// saveState writes snap to path.
func saveState(path string, snap Snapshot) error {
	f := stateFile{Version: snap.Version}
	for ref, gen := range snap.Generations {
		f.Configs = append(f.Configs, stateConfig{ref, gen})
	}
	for _, t := range envoyxds.Types {
		for _, r := range snap.Resources[t] {
			a, err := anypb.New(r)
			if err != nil {
				return err
			}
			b, err := protojson.Marshal(a)
			if err != nil {
				return err
			}
			sr := stateResource{Resource: b}
			if owner, ok := snap.Owners[t][cache.GetResourceName(r)]; ok {
				sr.Owner = &owner
			}
			f.Resources = append(f.Resources, sr)
		}
	}
	return atomicfile.Write(path, 0o600, func(w io.Writer) error { return json.NewEncoder(w).Encode(f) })
}

// loadState reads a snapshot written by saveState; ok is false when there
// is none.
func loadState(path string) (snap Snapshot, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, err
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Snapshot{}, false, fmt.Errorf("%s: %w", path, err)
	}
	snap = Snapshot{
		Version:     f.Version,
		Resources:   map[string][]types.Resource{},
		Generations: map[nodesv1alpha1.EnvoyConfigRef]int64{},
		Owners:      map[string]map[string]nodesv1alpha1.EnvoyConfigRef{},
	}
	for _, t := range envoyxds.Types {
		snap.Resources[t] = []types.Resource{}
	}
	for _, c := range f.Configs {
		snap.Generations[c.EnvoyConfigRef] = c.Generation
	}
	for _, r := range f.Resources {
		typ, res, err := envoyxds.Decode(r.Resource)
		if err != nil {
			return Snapshot{}, false, fmt.Errorf("%s: %w", path, err)
		}
		snap.Resources[typ] = append(snap.Resources[typ], res)
		if r.Owner != nil {
			if snap.Owners[typ] == nil {
				snap.Owners[typ] = map[string]nodesv1alpha1.EnvoyConfigRef{}
			}
			snap.Owners[typ][cache.GetResourceName(res)] = *r.Owner
		}
	}
	snap.TypeVersions = map[string]string{}
	for _, t := range envoyxds.Types {
		snap.TypeVersions[t] = typeVersion(snap.Resources[t])
	}
	return snap, true, nil
}
