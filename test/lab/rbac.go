package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// installPlexusAPI installs the chart's CRDs and RBAC (everything the chart
// renders except Deployments: the lab runs the binaries itself, as the
// chart's ServiceAccounts). Identities the chart has no binding for yet
// (node plugins, until the chart renders them) are bound to the ClusterRole
// in config/rbac/<short name>/role.yaml when it exists; missing ones are
// returned as warnings.
func installPlexusAPI(o *Options, l Layout, s *State, identities []string) (warnings []string, err error) {
	docs := []string{fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", PlexusNamespace)}
	if s.Gateway {
		// The Gateway API's own CRDs (users install them before Plexus)
		// and the namespace the certificates are copied to.
		gw, err := readDocs(filepath.Join(o.Repo, "config", "gateway-api", "*.yaml"))
		if err != nil {
			return nil, err
		}
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", GatewaySecretsNamespace))
		docs = append(docs, gw...)
	}
	bound := map[string]bool{}
	if o.Helm != "" {
		rendered, err := renderChart(o, identities)
		if err != nil {
			return nil, err
		}
		for _, d := range rendered {
			var obj struct {
				Kind     string `json:"kind"`
				Subjects []struct {
					Kind string `json:"kind"`
					Name string `json:"name"`
				} `json:"subjects"`
			}
			if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
				return nil, fmt.Errorf("chart output: %w", err)
			}
			switch obj.Kind {
			case "", "Deployment", "DaemonSet":
				continue // the lab runs the binaries itself
			case "ClusterRoleBinding":
				for _, sub := range obj.Subjects {
					if sub.Kind == "ServiceAccount" {
						bound[sub.Name] = true
					}
				}
			}
			docs = append(docs, d)
		}
		if s.Policy || s.Gateway {
			unreleased, err := unreleasedCRDs(o.Repo)
			if err != nil {
				return nil, err
			}
			docs = append(docs, unreleased...)
		}
	} else {
		// No helm: the CRDs from config/ (RBAC below, from config/rbac).
		crds, err := filepath.Glob(filepath.Join(o.Repo, "config", "crd", "bases", "*.yaml"))
		if err != nil {
			return nil, err
		}
		for _, f := range crds {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, string(b))
		}
	}
	for _, sa := range identities {
		if bound[sa] {
			continue
		}
		role, roleName, err := findClusterRole(o.Repo, sa)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("no RBAC for %s: the chart renders none and %v; it runs without permissions", sa, err))
			continue
		}
		docs = append(docs, role, serviceAccountBinding(sa, roleName))
		warnings = append(warnings, fmt.Sprintf("RBAC for %s from ClusterRole %s in config/rbac (the chart renders no binding for it yet)", sa, roleName))
	}
	return warnings, kubectlApply(s, l, strings.Join(docs, "\n---\n"))
}

// unreleasedCRDs are the CRDs in config/crd/bases that the chart does not
// install yet (the Makefile's UNRELEASED_CRDS): a lab that runs those
// features installs them itself.
func unreleasedCRDs(repo string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(repo, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(repo, "charts", "plexus", "crds", filepath.Base(f))); err == nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(b))
	}
	return docs, nil
}

// renderChart runs helm template with the release namespace the lab's
// identities use, enabling the chart blocks of the binaries the lab runs.
func renderChart(o *Options, identities []string) ([]string, error) {
	chart := filepath.Join(o.Repo, "charts", "plexus")
	values, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return nil, err
	}
	args := []string{"template", "plexus", chart, "--namespace", PlexusNamespace, "--include-crds"}
	for _, sa := range identities {
		// plexus-<block> for a controller, plexus-<block>-node for a node plugin.
		for _, block := range []string{strings.TrimPrefix(sa, "plexus-"), strings.TrimSuffix(strings.TrimPrefix(sa, "plexus-"), "-node")} {
			if bytes.Contains(values, []byte("\n"+block+":\n")) {
				args = append(args, "--set", block+".enabled=true")
				break
			}
		}
	}
	cmd := exec.Command(o.Helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var docs []string
	for _, d := range strings.Split("\n"+string(out), "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// findClusterRole reads the ClusterRole of ServiceAccount sa from
// config/rbac: plexus-<x> has config/rbac/<x>/role.yaml.
func findClusterRole(repo, sa string) (doc, name string, err error) {
	return readClusterRole(repo, strings.TrimPrefix(sa, "plexus-"))
}

// readClusterRole returns config/rbac/<short>/role.yaml and the name of the
// ClusterRole in it. Roles beside it (a node plugin's Secrets in one
// namespace) come with a RoleBinding to ServiceAccount plexus-<short>.
func readClusterRole(repo, short string) (string, string, error) {
	path := filepath.Join(repo, "config", "rbac", short, "role.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s does not exist", filepath.Join("config", "rbac", short, "role.yaml"))
	}
	var out []string
	name := ""
	for _, doc := range strings.Split("\n"+string(b), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return "", "", fmt.Errorf("%s: %w", path, err)
		}
		switch obj.Kind {
		case "ClusterRole":
			if name != "" {
				return "", "", fmt.Errorf("%s holds more than one ClusterRole", path)
			}
			name = obj.Metadata.Name
		case "Role":
			out = append(out, roleBinding("plexus-"+short, obj.Metadata.Name, obj.Metadata.Namespace))
		default:
			return "", "", fmt.Errorf("%s holds a %s", path, obj.Kind)
		}
		out = append(out, doc)
	}
	if name == "" {
		return "", "", fmt.Errorf("%s holds no ClusterRole", path)
	}
	return strings.Join(out, "\n---\n"), name, nil
}

// roleBinding binds a namespaced Role to a Plexus ServiceAccount.
func roleBinding(sa, role, namespace string) string {
	return fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: %[1]s
  namespace: %[3]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: %[2]s
subjects:
  - kind: ServiceAccount
    name: %[1]s
    namespace: %[4]s
`, sa, role, namespace, PlexusNamespace)
}

// readDocs reads the YAML files matching glob.
func readDocs(glob string) ([]string, error) {
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(b))
	}
	return docs, nil
}

func serviceAccountBinding(sa, role string) string {
	return fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: %[1]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: %[2]s
subjects:
  - kind: ServiceAccount
    name: %[1]s
    namespace: %[3]s
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[1]s
  namespace: %[3]s
---
# Leader election, as the chart grants its controllers.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: %[1]s
  namespace: %[3]s
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: %[1]s
  namespace: %[3]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: %[1]s
subjects:
  - kind: ServiceAccount
    name: %[1]s
    namespace: %[3]s
`, sa, role, PlexusNamespace)
}

// kubectlApply applies YAML as the lab admin (server-side, so re-applying
// after a restart is a no-op).
func kubectlApply(s *State, l Layout, manifest string) error {
	cmd := exec.Command(filepath.Join(s.ControlPlaneBin, "kubectl"), "--kubeconfig", l.Kubeconfig(),
		"apply", "--server-side", "--force-conflicts", "--field-manager=plexus-lab", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl apply: %w: %s", err, out)
	}
	return nil
}
