package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/plexus-net/plexus/internal/atomicfile"
)

// stateVersion is the format of the state file; a newer file is refused
// rather than misread.
const stateVersion = 1

// State is everything the allocator must not forget across restarts.
type State struct {
	Version int `json:"version"`
	// BootID is the kernel boot the allocations were made in. After a reboot
	// no pod network namespace survives, so none of them is in use any more.
	BootID      string       `json:"bootID,omitempty"`
	Allocations []Allocation `json:"allocations"`
}

// Store keeps the State. Save must be atomic: after a crash Load returns the
// old or the new State, never a mix.
type Store interface {
	Load() (State, error)
	Save(State) error
}

// FileStore keeps the State as one JSON file, replaced atomically (temporary
// file, fsync, rename, fsync of the directory).
type FileStore struct {
	Path string
}

// Load reads the file; a missing file is an empty State.
func (f FileStore) Load() (State, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Version: stateVersion}, nil
	}
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("state file %s is not valid JSON: %w", f.Path, err)
	}
	if s.Version > stateVersion {
		return State{}, fmt.Errorf("state file %s has version %d; this agent reads up to %d", f.Path, s.Version, stateVersion)
	}
	return s, nil
}

// Save writes s in place of the old file.
func (f FileStore) Save(s State) error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(f.Path, 0o600, b)
}

// MemoryStore keeps the State in memory (tests, dry runs).
type MemoryStore struct {
	State State
	// Err, when set, makes Save fail (tests of the rollback).
	Err error
}

// Load returns the kept State.
func (m *MemoryStore) Load() (State, error) { return m.State, nil }

// Save keeps s unless Err is set.
func (m *MemoryStore) Save(s State) error {
	if m.Err != nil {
		return m.Err
	}
	m.State = s
	return nil
}
