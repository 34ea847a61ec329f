package podrunner

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestProgramFor(t *testing.T) {
	for _, tc := range []struct {
		image, want string
	}{
		{"plexus.dev/lab/echo", "echo"},
		{"plexus.dev/lab/echo:v1", "echo"},
		{"plexus.dev/lab/client@sha256:abc", "client"},
		{"plexus.dev/lab/pause:latest", "pause"},
		{"nginx", ""},
		{"plexus.dev/lab/nginx", ""},
		{"docker.io/plexus.dev/lab/echo", ""},
		{"plexus.dev:5000/lab/echo", ""},
	} {
		got, err := ProgramFor(tc.image)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("ProgramFor(%q) = %q, %v; want %q", tc.image, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "plexus.dev/lab/echo") {
			t.Errorf("error for %q does not list the lab's images: %v", tc.image, err)
		}
	}
}

func TestResolveEnv(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n2", ServiceAccountName: "sa"},
	}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("NODE_NAME", "spec.nodeName"),
		field("POD_IP", "status.podIP"),
		field("HOST_IP", "status.hostIP"),
		field("APP", "metadata.labels['app']"),
		{Name: "URL", Value: "http://$(POD_IP):8080/$(UNDEFINED)/$$(POD_IP)"},
	}}
	env, err := ResolveEnv(pod, c, PodAddresses{PodIPs: []string{"10.0.1.5"}, HostIPs: []string{"198.18.0.12"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"POD_NAME=web-1", "POD_NAMESPACE=shop", "NODE_NAME=n2", "POD_IP=10.0.1.5", "HOST_IP=198.18.0.12", "APP=web",
		"URL=http://10.0.1.5:8080/$(UNDEFINED)/$(POD_IP)"}
	if !slices.Equal(env, want) {
		t.Errorf("env =\n%q\nwant\n%q", env, want)
	}

	for _, bad := range []corev1.EnvVar{
		field("X", "spec.unknown"),
		{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}},
	} {
		if _, err := ResolveEnv(pod, &corev1.Container{Name: "c", Env: []corev1.EnvVar{bad}}, PodAddresses{}); err == nil || !strings.Contains(err.Error(), bad.Name) {
			t.Errorf("env %s: error %v does not name the variable", bad.Name, err)
		}
	}
}

func TestArgvAppendsCommandAndArgsExpanded(t *testing.T) {
	c := &corev1.Container{Command: []string{"-listen"}, Args: []string{":$(PORT)", "$(MISSING)"}}
	got := Argv("/bin/lab-image", "echo", c, []string{"PORT=9090"})
	want := []string{"/bin/lab-image", "echo", "-listen", ":9090", "$(MISSING)"}
	if !slices.Equal(got, want) {
		t.Errorf("argv = %q, want %q", got, want)
	}
}

func running() corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
}

func terminated(code int32) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
}

func waiting(reason string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

func TestPhase(t *testing.T) {
	backoff := ContainerView{State: waiting("CrashLoopBackOff"), LastState: terminated(1)}
	for _, tc := range []struct {
		name   string
		policy corev1.RestartPolicy
		cs     []ContainerView
		want   corev1.PodPhase
	}{
		{"no containers yet", corev1.RestartPolicyAlways, nil, corev1.PodPending},
		{"creating", corev1.RestartPolicyAlways, []ContainerView{{State: waiting("ContainerCreating")}}, corev1.PodPending},
		{"one of two running, other pulling", corev1.RestartPolicyAlways, []ContainerView{{State: running()}, {State: waiting("ErrImagePull")}}, corev1.PodPending},
		{"running", corev1.RestartPolicyAlways, []ContainerView{{State: running()}}, corev1.PodRunning},
		{"crash looping stays Running", corev1.RestartPolicyAlways, []ContainerView{backoff}, corev1.PodRunning},
		{"Never, exit 0", corev1.RestartPolicyNever, []ContainerView{{State: terminated(0)}}, corev1.PodSucceeded},
		{"Never, one failed", corev1.RestartPolicyNever, []ContainerView{{State: terminated(0)}, {State: terminated(2)}}, corev1.PodFailed},
		{"OnFailure, done", corev1.RestartPolicyOnFailure, []ContainerView{{State: terminated(0)}}, corev1.PodSucceeded},
		{"OnFailure, restarting", corev1.RestartPolicyOnFailure, []ContainerView{{State: terminated(0)}, backoff}, corev1.PodRunning},
	} {
		if got := Phase(tc.policy, tc.cs); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		code   int32
		want   bool
	}{
		{corev1.RestartPolicyAlways, 0, true}, {corev1.RestartPolicyAlways, 1, true},
		{corev1.RestartPolicyOnFailure, 0, false}, {corev1.RestartPolicyOnFailure, 137, true},
		{corev1.RestartPolicyNever, 1, false}, {"", 0, true},
	} {
		if got := ShouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("ShouldRestart(%q, %d) = %v", tc.policy, tc.code, got)
		}
	}
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func TestComputeStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways},
		Status: corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		}},
	}
	view := PodView{SandboxReady: true, PodIPs: []string{"10.0.1.5"}, HostIPs: []string{"198.18.0.11"}, StartTime: &t0,
		Containers: []ContainerView{{Name: "a", State: running(), Ready: true, RestartCount: 2}, {Name: "b", State: running(), Ready: false}}}
	st := ComputeStatus(pod, view, t0)
	if st.Phase != corev1.PodRunning || st.PodIP != "10.0.1.5" || st.HostIP != "198.18.0.11" || len(st.PodIPs) != 1 || st.QOSClass != corev1.PodQOSBestEffort {
		t.Fatalf("status = %+v", st)
	}
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotReady" {
		t.Errorf("Ready with one unready container = %+v", c)
	}
	if c := condition(st, corev1.PodScheduled); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&t0) {
		t.Errorf("PodScheduled not kept: %+v", c)
	}
	if cs := st.ContainerStatuses[0]; !cs.Ready || !*cs.Started || cs.RestartCount != 2 {
		t.Errorf("container a = %+v", cs)
	}
	if st.ObservedGeneration != 3 || condition(st, corev1.PodReady).ObservedGeneration != 3 {
		t.Errorf("observedGeneration not set")
	}

	// Everything ready a minute later: Ready flips, and its transition time moves.
	pod.Status = st
	view.Containers[1].Ready = true
	st2 := ComputeStatus(pod, view, t1)
	if c := condition(st2, corev1.PodReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&t1) {
		t.Errorf("Ready = %+v, want True since t1", c)
	}
	if c := condition(st2, corev1.PodInitialized); !c.LastTransitionTime.Equal(&t0) {
		t.Errorf("unchanged Initialized moved its transition time: %+v", c)
	}
	// Recomputing the same view later changes nothing (no write).
	pod.Status = st2
	st3 := ComputeStatus(pod, view, metav1.NewTime(t1.Add(time.Hour)))
	if condition(st3, corev1.PodReady) != condition(st2, corev1.PodReady) {
		t.Errorf("status not stable: %+v vs %+v", condition(st3, corev1.PodReady), condition(st2, corev1.PodReady))
	}

	// A finished pod is not Ready, with reason PodCompleted.
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	view.Containers = []ContainerView{{Name: "a", State: terminated(0)}}
	st4 := ComputeStatus(pod, view, t1)
	if st4.Phase != corev1.PodSucceeded || condition(st4, corev1.PodReady).Reason != "PodCompleted" || *st4.ContainerStatuses[0].Started {
		t.Errorf("finished pod status = %+v", st4)
	}
}

// Paths under a volume's mount path point into the pod's own directory;
// other values are left alone.
func TestRewritePaths(t *testing.T) {
	mounts := map[string]string{"/etc/secret-volume": "/state/pods/u/volumes/secret-volume"}
	env := RewritePaths([]string{"TLS_SERVER_CERT=/etc/secret-volume/crt", "POD_NAME=p", "OTHER=/etc/secret-volume-2/x"}, mounts, true)
	want := []string{"TLS_SERVER_CERT=/state/pods/u/volumes/secret-volume/crt", "POD_NAME=p", "OTHER=/etc/secret-volume-2/x"}
	if !slices.Equal(env, want) {
		t.Errorf("env %v, want %v", env, want)
	}
	if args := RewritePaths([]string{"--cert", "/etc/secret-volume"}, mounts, false); args[1] != "/state/pods/u/volumes/secret-volume" {
		t.Errorf("args %v", args)
	}
	if _, err := selectItems(map[string][]byte{"a": nil}, []corev1.KeyToPath{{Key: "b", Path: "b"}}); err == nil {
		t.Error("a missing item key was accepted")
	}
}

// The conformance suite's echo image runs the echo-basic program, any tag.
func TestForeignImages(t *testing.T) {
	for _, img := range []string{"registry.k8s.io/gateway-api/echo-basic:v1.5.1", "gcr.io/k8s-staging-gateway-api/echo-basic@sha256:00"} {
		if p, err := ProgramFor(img); err != nil || p != "echo-basic" {
			t.Errorf("%s: %q %v", img, p, err)
		}
	}
	if _, err := ProgramFor("registry.k8s.io/coredns/coredns:v1.12.2"); err == nil {
		t.Error("an unknown image was accepted")
	}
}
