package podrunner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Lab containers share the host's file system (no mount namespace), so a
// Secret, ConfigMap or emptyDir volume is written to a directory of the
// pod's own, and every environment value and argument naming a path under
// one of the container's mount paths is rewritten to that directory. This
// serves programs that take file paths from their environment or flags,
// such as the Gateway API conformance suite's echo-basic (TLS_SERVER_CERT).
// Other volume types (the projected service-account token, hostPath, ...)
// are not provided, as before: the lab's programs do not read them.

// volumeDirs writes c's mounted volumes under dir and returns each mount
// path with the directory that stands for it.
func (r *Runner) volumeDirs(pod *corev1.Pod, c *corev1.Container, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volumeMount %s: no such volume", m.Name)
		}
		if vol.Secret == nil && vol.ConfigMap == nil && vol.EmptyDir == nil {
			continue
		}
		local := filepath.Join(dir, "volumes", vol.Name)
		data, err := r.volumeData(pod.Namespace, vol)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", vol.Name, err)
		}
		if err := os.MkdirAll(local, 0o700); err != nil {
			return nil, err
		}
		for name, b := range data {
			if strings.Contains(name, "/") || name == "" || name == "." || name == ".." {
				return nil, fmt.Errorf("volume %s: key %q is not a file name", vol.Name, name)
			}
			if err := os.WriteFile(filepath.Join(local, name), b, 0o600); err != nil {
				return nil, err
			}
		}
		if m.SubPath != "" {
			local = filepath.Join(local, m.SubPath)
		}
		out[filepath.Clean(m.MountPath)] = local
	}
	return out, nil
}

// volumeData is a volume's files by name (items pick and rename keys).
func (r *Runner) volumeData(namespace string, vol *corev1.Volume) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var data map[string][]byte
	var items []corev1.KeyToPath
	switch {
	case vol.EmptyDir != nil:
		return nil, nil
	case vol.Secret != nil:
		s, err := r.client.CoreV1().Secrets(namespace).Get(ctx, vol.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data, items = s.Data, vol.Secret.Items
	case vol.ConfigMap != nil:
		cm, err := r.client.CoreV1().ConfigMaps(namespace).Get(ctx, vol.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data = map[string][]byte{}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		items = vol.ConfigMap.Items
	default:
		return nil, fmt.Errorf("only secret, configMap and emptyDir volumes are written by the lab")
	}
	return selectItems(data, items)
}

func selectItems(data map[string][]byte, items []corev1.KeyToPath) (map[string][]byte, error) {
	if len(items) == 0 {
		return data, nil
	}
	out := map[string][]byte{}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("key %s not found", it.Key)
		}
		out[it.Path] = b
	}
	return out, nil
}

// RewritePaths replaces, in each NAME=value line or argument, a leading
// mount path with the directory that stands for it.
func RewritePaths(lines []string, mounts map[string]string, env bool) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		prefix, v := "", l
		if env {
			k, val, _ := strings.Cut(l, "=")
			prefix, v = k+"=", val
		}
		for mp, local := range mounts {
			if v == mp || strings.HasPrefix(v, mp+"/") {
				v = local + strings.TrimPrefix(v, mp)
				break
			}
		}
		out[i] = prefix + v
	}
	return out
}
