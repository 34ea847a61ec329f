package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	"github.com/plexus-net/plexus/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// B67: the binary, run with its flags against an API server, reconciles
// and tags its logs subsys=bgp-cp-operator, as the seed's operator does.
// Bad router ID flags stop it before it connects anywhere.
func TestB67_BinaryLogsTagged(t *testing.T) {
	testenv.Require(t, env)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bgp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "--router-id-mode=ip-pool").CombinedOutput(); err == nil || !strings.Contains(string(out), "IPv4 pool") {
		t.Fatalf("ip-pool without a pool: %v, %s", err, out)
	}

	kubeconfig, err := env.AdminKubeconfig("bgp-test")
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig="+kcPath, "--leader-elect=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=0", "--secret-namespace=default", "--router-id-mode=ip-pool", "--router-id-pool=10.0.0.0/24")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	c := &ciliumv2.CiliumBGPClusterConfig{ObjectMeta: metav1.ObjectMeta{Name: "b67"}, Spec: ciliumv2.CiliumBGPClusterConfigSpec{
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "none"}},
		BGPInstances: []ciliumv2.CiliumBGPInstance{{Name: "i", LocalASN: ptr.To[int64](65000)}}}}
	if err := env.Client.Create(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), c) })
	testenv.Eventually(t, 30*time.Second, "NoMatchingNode and a tagged log line", func() error {
		got := &ciliumv2.CiliumBGPClusterConfig{}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(c), got); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, ciliumv2.BGPClusterConditionNoMatchingNode) {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"subsys":"bgp-cp-operator"`) && strings.Contains(line, "NoMatchingNode") {
				return nil
			}
		}
		return fmt.Errorf("no tagged log line in:\n%s", logs.String())
	})
}
