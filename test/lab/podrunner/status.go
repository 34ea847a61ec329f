package podrunner

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ContainerView is what the runner knows about one container right now.
type ContainerView struct {
	Name         string
	Image        string
	ContainerID  string
	State        corev1.ContainerState
	LastState    corev1.ContainerState
	RestartCount int32
	Ready        bool
}

// PodView is what the runner knows about one pod right now.
type PodView struct {
	SandboxReady bool // network namespace set up and CNI ADD done
	PodIPs       []string
	HostIPs      []string
	StartTime    *metav1.Time
	Containers   []ContainerView // in spec order
}

// ComputeStatus returns the pod status the runner reports for view. It keeps
// what the runner does not own from the current status (the scheduler's
// PodScheduled condition, QOS class) and keeps each condition's transition
// time while its status stays the same, so an unchanged pod computes an
// unchanged status and costs no write.
func ComputeStatus(pod *corev1.Pod, view PodView, now metav1.Time) corev1.PodStatus {
	st := corev1.PodStatus{
		ObservedGeneration: pod.Generation,
		Phase:              Phase(pod.Spec.RestartPolicy, view.Containers),
		QOSClass:           pod.Status.QOSClass,
		StartTime:          view.StartTime,
	}
	for _, ip := range view.HostIPs {
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: ip})
	}
	if len(view.HostIPs) > 0 {
		st.HostIP = view.HostIPs[0]
	}
	for _, ip := range view.PodIPs {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(view.PodIPs) > 0 {
		st.PodIP = view.PodIPs[0]
	}
	allReady := len(view.Containers) > 0
	for _, c := range view.Containers {
		running := c.State.Running != nil
		ready := c.Ready && running
		allReady = allReady && ready
		started := running
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:                 c.Name,
			Image:                c.Image,
			ImageID:              c.Image,
			ContainerID:          c.ContainerID,
			State:                c.State,
			LastTerminationState: c.LastState,
			Ready:                ready,
			Started:              &started,
			RestartCount:         c.RestartCount,
		})
	}
	terminal := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	scheduled := corev1.ConditionTrue
	if c := findCondition(pod.Status.Conditions, corev1.PodScheduled); c != nil {
		scheduled = c.Status
	}
	conds := []struct {
		t      corev1.PodConditionType
		ok     bool
		reason string
	}{
		{corev1.PodReadyToStartContainers, view.SandboxReady, ""},
		{corev1.PodInitialized, true, ""},
		{corev1.ContainersReady, allReady && !terminal, "ContainersNotReady"},
		{corev1.PodReady, allReady && !terminal, "ContainersNotReady"},
		{corev1.PodScheduled, scheduled == corev1.ConditionTrue, ""},
	}
	for _, c := range conds {
		cond := corev1.PodCondition{Type: c.t, Status: corev1.ConditionFalse, LastTransitionTime: now, ObservedGeneration: pod.Generation}
		if c.ok {
			cond.Status = corev1.ConditionTrue
		} else if terminal {
			cond.Reason = "PodCompleted"
		} else {
			cond.Reason = c.reason
		}
		if old := findCondition(pod.Status.Conditions, c.t); old != nil && old.Status == cond.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
		st.Conditions = append(st.Conditions, cond)
	}
	return st
}

// Phase derives the pod phase from its containers as the kubelet does:
// Pending until every container has started once; then Running while any
// runs or will be restarted; Succeeded or Failed when all have terminated
// for good.
func Phase(policy corev1.RestartPolicy, cs []ContainerView) corev1.PodPhase {
	var running, waiting, stopped, succeeded int
	for _, c := range cs {
		switch {
		case c.State.Running != nil:
			running++
		case c.State.Terminated != nil:
			stopped++
			if c.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case c.LastState.Terminated != nil: // waiting to be restarted
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case len(cs) == 0 || waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case policy == corev1.RestartPolicyAlways || policy == "":
		return corev1.PodRunning // all stopped, but they come back
	case stopped == succeeded:
		return corev1.PodSucceeded
	case policy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default: // OnFailure: the failed ones are restarted
		return corev1.PodRunning
	}
}

// ShouldRestart says whether a container that exited with code is started
// again under policy.
func ShouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
