package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/labtest"
)

// BenchmarkPodToFirstAnswer measures, on a 3-node lab (native routing,
// cluster-pool), the time from creating a pod until a client pod on another
// node gets its first HTTP answer from it: scheduling, the pod runner, CNI
// ADD through the Plexus agent, the echo server starting, and the route to
// the pod's node. Each iteration creates one pod (on a node other than the
// client's, in turn) and deletes it afterwards. Reported besides ns/op:
// p50-ms and p99-ms over the iterations, and ip-ms, the part until the pod's
// IP shows in its status.
//
//	make bench-lab   (go test -run '^$' -bench PodToFirstAnswer -benchtime 30x -count 3 ./test/e2e)
func BenchmarkPodToFirstAnswer(b *testing.B) {
	l := labtest.Start(b, lab.Options{Nodes: 3, RoutingMode: "native", IPAMMode: "cluster-pool", CNI: "plexus", Datapath: "plexus"})
	ctx := context.Background()
	client := labtest.Echo("client", 1, nil)
	if _, err := l.Client.AppsV1().Deployments(labtest.Namespace).Create(ctx, client, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var from corev1.Pod
	l.Eventually(2*time.Minute, "client pod Ready", func() error {
		pods, err := l.ReadyPods(labtest.Namespace, "app=client")
		if err != nil || len(pods) != 1 {
			return fmt.Errorf("%d Ready (%w)", len(pods), err)
		}
		from = pods[0]
		return nil
	})
	var others []string
	for i := 1; i <= 3; i++ {
		if n := l.Layout.NodeName(i); n != from.Spec.NodeName {
			others = append(others, n)
		}
	}
	template := labtest.Echo("target", 1, nil).Spec.Template
	var total, toIP []time.Duration
	b.ResetTimer()
	for i := range b.N {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("target-%d", i), Namespace: labtest.Namespace, Labels: template.Labels}, Spec: *template.Spec.DeepCopy()}
		pod.Spec.NodeName = "" // the scheduler places it: that is part of the cost
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": others[i%len(others)]}
		start := time.Now()
		created, err := l.Client.CoreV1().Pods(labtest.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var ip string
		var gotIP time.Duration
		c := l.HTTPClient(l.PodNetns(&from))
		c.Timeout = 500 * time.Millisecond
		deadline := start.Add(time.Minute)
		for {
			if ip == "" {
				p, err := l.Client.CoreV1().Pods(labtest.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
				if err == nil && p.Status.PodIP != "" {
					ip, gotIP = p.Status.PodIP, time.Since(start)
				}
			}
			if ip != "" {
				if a, err := labtest.FetchWith(c, "http://"+labtest.HostPort(ip, 8080)+"/"); err == nil && a.Pod == created.Name {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("pod %s: no answer within a minute (IP %q)", created.Name, ip)
			}
			time.Sleep(10 * time.Millisecond)
		}
		total = append(total, time.Since(start))
		toIP = append(toIP, gotIP)
		b.StopTimer()
		grace := int64(0)
		_ = l.Client.CoreV1().Pods(labtest.Namespace).Delete(ctx, created.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(total, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(total, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(toIP, 50)), "ip-p50-ms")
}

func percentile(ds []time.Duration, p int) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := (len(ds)*p + 99) / 100
	return ds[min(max(i-1, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
