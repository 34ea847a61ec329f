package labtest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Kubectl runs bin/labtest/<name> (a kubectl plugin such as kubectl-plexus)
// against the lab as its administrator and returns what it printed.
func (l *Lab) Kubectl(t testing.TB, name string, args ...string) string {
	t.Helper()
	dir, err := build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, name), append([]string{"--kubeconfig", l.Layout.Kubeconfig()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
