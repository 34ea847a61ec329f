// Command ciliumexamples copies the manifests that Cilium's own examples and
// documentation give for the kinds Plexus serves, at one pinned Cilium
// release, into test/compat/testdata/cilium-<version>/, one document per
// file with its source noted in SOURCES.md. test/compat applies every one
// to the real API server with Plexus's CRDs.
//
//	go run ./hack/ciliumexamples v1.20.2
//
// The release comes from the Go module proxy (`go mod download`), so no
// clone is needed. Three places are read: YAML files under examples/ and
// Documentation/, and in Documentation's reStructuredText pages the
// `code-block:: yaml` blocks and the here-documents piped to kubectl (where
// the BGP, LB-IPAM and IPAM guides keep theirs). Network policies from examples/ are left out: they are already
// in testdata/cilium-policies with their commits.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// served are the cilium.io kinds Plexus has CRDs for.
var served = []string{
	"CiliumBGPAdvertisement", "CiliumBGPClusterConfig", "CiliumBGPNodeConfig",
	"CiliumBGPNodeConfigOverride", "CiliumBGPPeerConfig", "CiliumBGPPeeringPolicy",
	"CiliumClusterwideNetworkPolicy", "CiliumEgressGatewayPolicy", "CiliumIdentity",
	"CiliumL2AnnouncementPolicy", "CiliumLoadBalancerIPPool", "CiliumNetworkPolicy",
	"CiliumGatewayClassConfig", "CiliumNode", "CiliumNodeConfig", "CiliumPodIPPool",
}

// inPolicyCorpus: kinds whose examples/ files testdata/cilium-policies holds.
var inPolicyCorpus = []string{"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}

type document struct {
	source string // path in the release, and the block for .rst pages
	body   []byte
	kind   string
}

func main() {
	if len(os.Args) != 2 || !strings.HasPrefix(os.Args[1], "v") {
		fmt.Fprintln(os.Stderr, "usage: go run ./hack/ciliumexamples vX.Y.Z")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "ciliumexamples:", err)
		os.Exit(1)
	}
}

func run(version string) error {
	root, err := moduleDir("github.com/cilium/cilium@" + version)
	if err != nil {
		return err
	}
	var docs []document
	var skipped []string
	for _, top := range []string{"examples", "Documentation"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			switch filepath.Ext(path) {
			case ".yaml", ".yml":
				found, bad := documents(rel, data)
				for _, d := range found {
					if top == "examples" && slices.Contains(inPolicyCorpus, d.kind) {
						continue
					}
					docs = append(docs, d)
				}
				skipped = append(skipped, bad...)
			case ".rst":
				for i, block := range yamlBlocks(data) {
					found, bad := documents(fmt.Sprintf("%s (yaml block %d)", rel, i+1), block)
					docs = append(docs, found...)
					skipped = append(skipped, bad...)
				}
				for i, body := range heredocs(data) {
					found, bad := documents(fmt.Sprintf("%s (heredoc %d)", rel, i+1), body)
					docs = append(docs, found...)
					skipped = append(skipped, bad...)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return write(version, docs, skipped)
}

func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, m.Error)
	}
	return m.Dir, nil
}

var blockStart = regexp.MustCompile(`^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(?:yaml|yml)\s*$`)

// yamlBlocks returns the bodies of a reStructuredText page's YAML code
// blocks, dedented: the lines after the directive and its options that are
// indented deeper than the directive.
func yamlBlocks(page []byte) [][]byte {
	lines := strings.Split(string(page), "\n")
	var blocks [][]byte
	for i := 0; i < len(lines); i++ {
		m := blockStart.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent := len(m[1])
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			l := lines[j]
			trimmed := strings.TrimLeft(l, " \t")
			if trimmed == "" {
				body = append(body, "")
				continue
			}
			if len(l)-len(trimmed) <= indent {
				break
			}
			if len(body) == 0 && strings.HasPrefix(trimmed, ":") {
				continue // a directive option such as :caption:
			}
			body = append(body, l)
		}
		blocks = append(blocks, []byte(dedent(body)))
		i = j - 1
	}
	return blocks
}

var heredocStart = regexp.MustCompile(`<<-?\s*['"]?(\w+)['"]?`)

// heredocs returns the bodies of the here-documents in a page's shell
// examples (`cat <<EOF | kubectl apply -f -`), dedented: the guides keep
// many of their manifests there.
func heredocs(page []byte) [][]byte {
	lines := strings.Split(string(page), "\n")
	var bodies [][]byte
	for i := 0; i < len(lines); i++ {
		m := heredocStart.FindStringSubmatch(lines[i])
		if m == nil || !strings.Contains(lines[i], "kubectl") {
			continue
		}
		var body []string
		j := i + 1
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != m[1]; j++ {
			body = append(body, lines[j])
		}
		bodies = append(bodies, []byte(dedent(body)))
		i = j
	}
	return bodies
}

func dedent(lines []string) string {
	least := -1
	for _, l := range lines {
		if t := strings.TrimLeft(l, " "); t != "" {
			if n := len(l) - len(t); least < 0 || n < least {
				least = n
			}
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= least && least > 0 {
			l = l[least:]
		}
		b.WriteString(strings.TrimRight(l, " \t") + "\n")
	}
	return strings.TrimSpace(b.String()) + "\n"
}

// documents splits data into YAML documents and keeps those of a served
// cilium.io kind. bad lists documents that name a served kind but are not
// YAML (fragments with "..." placeholders, say), so the summary shows what
// was left out.
func documents(source string, data []byte) (found []document, bad []string) {
	parts := regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1)
	n := 0
	for _, part := range parts {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n++
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		err := yaml.Unmarshal([]byte(part), &head)
		servedKind := slices.ContainsFunc(served, func(k string) bool {
			return regexp.MustCompile(`(?m)^kind:\s*` + k + `\s*$`).MatchString(part)
		})
		src := source
		if len(parts) > 1 {
			src = fmt.Sprintf("%s, document %d", source, n)
		}
		switch {
		case err != nil && servedKind:
			bad = append(bad, fmt.Sprintf("%s: not YAML (%v)", src, firstLine(err.Error())))
		case err != nil || !strings.HasPrefix(head.APIVersion, "cilium.io/") || !slices.Contains(served, head.Kind):
		default:
			found = append(found, document{source: src, body: []byte(strings.TrimSpace(part) + "\n"), kind: head.Kind})
		}
	}
	return found, bad
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func write(version string, docs []document, skipped []string) error {
	dir := filepath.Join("test", "compat", "testdata", "cilium-"+version)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var index bytes.Buffer
	fmt.Fprintf(&index, "# Cilium %s: example manifests for the kinds Plexus serves\n\n", version)
	fmt.Fprintf(&index, "Copied by `go run ./hack/ciliumexamples %s` from the Go module\n", version)
	fmt.Fprintf(&index, "github.com/cilium/cilium@%s (Apache-2.0, Copyright Authors of Cilium):\n", version)
	fmt.Fprintf(&index, "YAML files under examples/ and Documentation/, and the YAML code blocks and\n")
	fmt.Fprintf(&index, "kubectl here-documents of Documentation's .rst pages, one document per\n")
	fmt.Fprintf(&index, "file. Network policies from\n")
	fmt.Fprintf(&index, "examples/ are in ../cilium-policies instead.\n\n")
	names := map[string]int{}
	for _, d := range docs {
		base := unsafeChars.ReplaceAllString(strings.NewReplacer("/", "__", " (yaml block ", "__block", " (heredoc ", "__heredoc", ", document ", "__doc", ")", "").Replace(d.source), "_")
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
		names[base]++
		if names[base] > 1 {
			base = fmt.Sprintf("%s__%d", base, names[base])
		}
		name := base + ".yaml"
		if err := os.WriteFile(filepath.Join(dir, name), d.body, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&index, "- `%s` (%s): `%s`\n", name, d.kind, d.source)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&index, "\nLeft out (they name a served kind but are not YAML documents):\n\n")
		for _, s := range skipped {
			fmt.Fprintf(&index, "- %s\n", s)
		}
	}
	fmt.Printf("%s: %d documents, %d left out\n", dir, len(docs), len(skipped))
	return os.WriteFile(filepath.Join(dir, "SOURCES.md"), index.Bytes(), 0o644)
}
