package podrunner

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// PodAddresses are the runtime facts a container's environment may refer to.
type PodAddresses struct {
	PodIPs  []string
	HostIPs []string
}

// ResolveEnv returns a container's environment as NAME=value lines, in
// spec order: literal values with $(VAR) references to earlier variables
// expanded as Kubernetes does, and valueFrom.fieldRef resolved from the pod.
// Sources the lab cannot resolve (ConfigMaps, Secrets, resources, envFrom)
// are an error naming the variable: the container then waits with
// CreateContainerConfigError, as a kubelet would for a missing source.
func ResolveEnv(pod *corev1.Pod, c *corev1.Container, addrs PodAddresses) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported by the lab", c.Name)
	}
	vars := map[string]string{}
	out := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		var value string
		switch {
		case e.ValueFrom == nil:
			value = Expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			v, err := fieldValue(pod, e.ValueFrom.FieldRef.FieldPath, addrs)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			value = v
		default:
			return nil, fmt.Errorf("env %s: only value and valueFrom.fieldRef are supported by the lab", e.Name)
		}
		vars[e.Name] = value
		out = append(out, e.Name+"="+value)
	}
	return out, nil
}

// fieldValue resolves a downward-API field path.
func fieldValue(pod *corev1.Pod, path string, addrs PodAddresses) (string, error) {
	first := func(s []string) string {
		if len(s) == 0 {
			return ""
		}
		return s[0]
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return first(addrs.PodIPs), nil
	case "status.podIPs":
		return strings.Join(addrs.PodIPs, ","), nil
	case "status.hostIP":
		return first(addrs.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(addrs.HostIPs, ","), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(key, "']") {
			return m[strings.TrimSuffix(key, "']")], nil
		}
	}
	return "", fmt.Errorf("field path %q is not supported", path)
}

// Expand replaces $(NAME) with vars[NAME] for defined names and $$ with $,
// leaving references to undefined names as they are (Kubernetes semantics).
func Expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Argv is the command line of a container: the lab-image binary, the
// program the image maps to, then the container's command and args (with
// $(VAR) references expanded from its environment).
func Argv(imageBinary, program string, c *corev1.Container, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	argv := []string{imageBinary, program}
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, Expand(a, vars))
	}
	return argv
}
