package podrunner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/internal/atomicfile"
	"github.com/plexus-net/plexus/test/lab/proc"
)

// record is what the runner persists per pod, so that a restarted runner
// adopts the pod (its namespace, attachment and running processes) instead
// of recreating it, and can still undo its network when the pod is gone.
type record struct {
	UID        types.UID                   `json:"uid"`
	Namespace  string                      `json:"namespace"`
	Name       string                      `json:"name"`
	Netns      string                      `json:"netns,omitempty"` // empty for hostNetwork pods
	Attachment *Attachment                 `json:"attachment,omitempty"`
	PodIPs     []string                    `json:"podIPs,omitempty"`
	StartTime  time.Time                   `json:"startTime"`
	Released   bool                        `json:"released,omitempty"` // network torn down (terminal pod)
	Containers map[string]*containerRecord `json:"containers"`
}

type containerRecord struct {
	Handle       proc.Handle                      `json:"handle"` // zero while not running
	StartedAt    time.Time                        `json:"startedAt,omitzero"`
	RestartCount int32                            `json:"restartCount"`
	Last         *corev1.ContainerStateTerminated `json:"last,omitempty"`  // previous run, when restarted
	Final        *corev1.ContainerStateTerminated `json:"final,omitempty"` // ended for good
}

// podDir is where one pod's record and container logs live.
func (r *Runner) podDir(uid types.UID) string {
	return filepath.Join(r.cfg.StateDir, "pods", string(uid))
}

func (r *Runner) save(rec *record) error {
	dir := r.podDir(rec.UID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "pod.json"), 0o644, b)
}

// loadRecords reads every pod record in the state dir.
func loadRecords(stateDir string) ([]*record, error) {
	dirs, err := os.ReadDir(filepath.Join(stateDir, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*record
	for _, d := range dirs {
		path := filepath.Join(stateDir, "pods", d.Name(), "pod.json")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // set-up never got far enough to write one
		}
		if err != nil {
			return nil, err
		}
		rec := &record{}
		if err := json.Unmarshal(b, rec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if rec.Containers == nil {
			rec.Containers = map[string]*containerRecord{}
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
