package labtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireBGP skips the test unless the lab can run BGP end to end: the
// router (FRR) is installable, and the BGP controller, node plugin and CLI
// build with the node plugin's RBAC generated. Call it before Start.
func RequireBGP(t testing.TB) {
	t.Helper()
	RequireRouter(t)
	RequireBinaries(t, "bgp", "plexus-bgp-node", "kubectl-plexus")
	role := filepath.Join("config", "rbac", "bgp-node", "role.yaml")
	if _, err := os.Stat(filepath.Join(Root(), role)); err != nil {
		t.Skipf("the plexus-bgp-node plugin has no RBAC yet: %s does not exist", role)
	}
}

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
