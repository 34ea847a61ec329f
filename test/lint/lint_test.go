// Package lint_test shows that the lint gate (.golangci.yml) catches what
// it is there for: it lints a copy of the module holding deliberate
// violations and expects each to be named.
package lint_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// violations are files that break one rule each, and what the linter must
// say about them.
var violations = map[string]struct{ src, want string }{
	"controllers/lbipam/bad/uses_nodeplugin.go": {
		src: `// Package bad imports a node plugin from a controller.
package bad

import _ "github.com/plexus-net/plexus/nodeplugins/bgp/desired"
`,
		want: "controllers never import node plugins",
	},
	"controllers/bgp/bad/uses_other_feature.go": {
		src: `// Package bad imports another feature's controller code.
package bad

import _ "github.com/plexus-net/plexus/controllers/lbipam/allocator"
`,
		want: "a controller imports only its own feature",
	},
	"nodeplugins/egressgateway/bad/uses_other_plugin.go": {
		src: `// Package bad imports another node plugin.
package bad

import _ "github.com/plexus-net/plexus/nodeplugins/l2announcer"
`,
		want: "a node plugin imports only its own feature",
	},
	"internal/bad/uses_feature.go": {
		src: `// Package bad imports a feature from internal/.
package bad

import _ "github.com/plexus-net/plexus/controllers/lbipam/allocator"
`,
		want: "internal/ is shared by features and imports none of them",
	},
	"internal/bad2/uses_test_infra.go": {
		src: `// Package bad2 imports test infrastructure from shipped code.
package bad2

import _ "github.com/plexus-net/plexus/test/netnstest"
`,
		want: "shipped code never imports it",
	},
	"nodeplugins/datapath/bad/dump.go": {
		src: `// Package bad dumps links without internal/nldump.
package bad

import "github.com/vishvananda/netlink"

// Links lists links the raw way.
func Links() ([]netlink.Link, error) { return netlink.LinkList() }

// Routes lists routes through a handle, the raw way.
func Routes(h *netlink.Handle) ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) }
`,
		want: "use internal/nldump",
	},
}

func TestLintGateCatchesViolations(t *testing.T) {
	bin := os.Getenv("GOLANGCI_LINT")
	if bin == "" {
		t.Skip("GOLANGCI_LINT is not set: `make test` builds golangci-lint and sets it")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")

	// A copy of the module with the violations added; the real tree is
	// never touched.
	dir := t.TempDir()
	copyTree(t, root, dir)
	for path, v := range violations {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v.src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pkgs []string
	for path := range violations {
		pkgs = append(pkgs, "./"+filepath.Dir(path))
	}
	cmd := exec.Command(bin, append([]string{"run", "--enable-only", "depguard,forbidigo"}, pkgs...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("golangci-lint passed code that breaks the rules:\n%s", out)
	}
	for path, v := range violations {
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, path+":") && strings.Contains(line, v.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no finding %q in:\n%s", path, v.want, out)
		}
	}
}

// copyTree copies the Go sources, go.mod, go.sum and the lint config of the
// module at src to dst (not bin/ or .git).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel == "bin" || rel == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !strings.HasSuffix(path, ".go") && rel != "go.mod" && rel != "go.sum" && rel != ".golangci.yml" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
