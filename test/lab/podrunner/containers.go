package podrunner

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// Restart backoff: doubles from initialBackoff up to maxBackoff, and starts
// over after a run that lasted resetBackoffAfter (kubelet: 10s to 5m; the
// lab is shorter-lived, so it retries sooner).
const (
	initialBackoff    = time.Second
	maxBackoff        = 30 * time.Second
	resetBackoffAfter = time.Minute
	imageRetry        = 10 * time.Second
)

// syncContainer moves one container along: records an exit, decides a
// restart, starts it when due, and schedules its readiness probe. Called
// with r.mu held.
func (r *Runner) syncContainer(st *podState, c *corev1.Container, now time.Time) {
	cs := st.ctrs[c.Name]
	if cs == nil { // adopted record without this container (spec is immutable, so rare)
		cr := &containerRecord{}
		st.rec.Containers[c.Name] = cr
		cs = &ctrState{rec: cr}
		st.ctrs[c.Name] = cs
	}
	cr := cs.rec
	if cr.Handle.PID != 0 && !cs.own && !cs.exited && !cr.Handle.Alive() {
		cs.exited, cs.exitCode = true, 137 // adopted process gone: no exit code
	}
	if cr.Handle.PID != 0 && cs.exited {
		r.recordExit(st, c, cs, now)
	}
	if cs.adopted {
		// A restarted runner keeps what it reported before, so its restart
		// does not flap endpoints; the next probe result takes over.
		cs.adopted = false
		for _, s := range st.pod.Status.ContainerStatuses {
			if s.Name == c.Name && cr.Handle.PID != 0 {
				cs.ready = s.Ready
			}
		}
	}
	if cr.Handle.PID != 0 { // running
		r.probe(st, c, cs, now)
		return
	}
	if cr.Final != nil || now.Before(cs.nextStart) {
		return
	}
	r.start(st, c, cs, now)
}

func (r *Runner) recordExit(st *podState, c *corev1.Container, cs *ctrState, now time.Time) {
	cr := cs.rec
	term := &corev1.ContainerStateTerminated{
		ExitCode:    cs.exitCode,
		Reason:      "Completed",
		StartedAt:   metav1.NewTime(cr.StartedAt),
		FinishedAt:  metav1.NewTime(now.Truncate(time.Second)),
		ContainerID: containerID(st, c.Name),
	}
	if cs.exitCode != 0 {
		term.Reason = "Error"
	}
	r.log.Info("container exited", "pod", st.rec.Namespace+"/"+st.rec.Name, "container", c.Name, "exitCode", cs.exitCode)
	cr.Handle, cs.exited, cs.ready, cs.successes, cs.failures = proc.Handle{}, false, false, 0, 0
	if ShouldRestart(st.pod.Spec.RestartPolicy, cs.exitCode) {
		cr.Last = term
		if now.Sub(cr.StartedAt) >= resetBackoffAfter {
			cs.backoff = 0
		}
		cs.backoff = min(max(2*cs.backoff, initialBackoff), maxBackoff)
		cs.nextStart = now.Add(cs.backoff)
		cs.waiting = "CrashLoopBackOff"
		cs.message = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", cs.backoff, c.Name, st.rec.Name)
	} else {
		cr.Final = term
	}
	if err := r.save(st.rec); err != nil {
		r.log.Error("saving pod record", "err", err)
	}
}

// start runs the container's process in the pod's network namespace.
func (r *Runner) start(st *podState, c *corev1.Container, cs *ctrState, now time.Time) {
	program, err := ProgramFor(c.Image)
	if err != nil {
		cs.waiting, cs.message, cs.nextStart = "ErrImagePull", err.Error(), now.Add(imageRetry)
		return
	}
	env, err := ResolveEnv(st.pod, c, PodAddresses{PodIPs: st.rec.PodIPs, HostIPs: r.cfg.nodeIPs()})
	if err != nil {
		cs.waiting, cs.message, cs.nextStart = "CreateContainerConfigError", err.Error(), now.Add(imageRetry)
		return
	}
	if err := os.MkdirAll(r.podDir(st.rec.UID), 0o755); err != nil {
		cs.waiting, cs.message = "RunContainerError", err.Error()
		return
	}
	mounts, err := r.volumeDirs(st.pod, c, r.podDir(st.rec.UID))
	if err != nil {
		cs.waiting, cs.message, cs.nextStart = "CreateContainerConfigError", err.Error(), now.Add(imageRetry)
		return
	}
	env = RewritePaths(env, mounts, true)
	argv := Argv(r.cfg.ImageBinary, program, c, env)
	argv = append(argv[:2:2], RewritePaths(argv[2:], mounts, false)...)
	spec := proc.Spec{Path: argv[0], Args: argv[1:], Netns: st.rec.Netns}
	cmd := spec.Command()
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + st.pod.Name}, env...)
	// Its own session: it outlives a runner restart and is stopped as a group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cr := cs.rec
	if err := r.startWithLog(cmd, st.rec.UID, c.Name, cr.Last != nil); err != nil {
		cs.waiting, cs.message, cs.nextStart = "RunContainerError", err.Error(), now.Add(imageRetry)
		return
	}
	if cr.Last != nil {
		cr.RestartCount++
	}
	cr.Handle = proc.Of(cmd.Process.Pid)
	cr.StartedAt = now.Truncate(time.Second)
	cs.own, cs.exited, cs.waiting, cs.message = true, false, "", ""
	cs.nextProbe = now
	if c.ReadinessProbe != nil {
		cs.nextProbe = now.Add(time.Duration(c.ReadinessProbe.InitialDelaySeconds) * time.Second)
	}
	if err := r.save(st.rec); err != nil {
		r.log.Error("saving pod record", "err", err)
	}
	r.log.Info("container started", "pod", st.rec.Namespace+"/"+st.rec.Name, "container", c.Name, "pid", cmd.Process.Pid, "argv", argv[1:])
	handle := cr.Handle
	go func() {
		err := cmd.Wait()
		code := int32(0)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = int32(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int32(ws.Signal())
			}
		}
		r.mu.Lock()
		if cs.rec.Handle == handle {
			cs.exited, cs.exitCode = true, code
		}
		r.mu.Unlock()
		r.poke()
	}()
}

// probe runs the readiness probe when due; a container without one is ready
// once it runs.
func (r *Runner) probe(st *podState, c *corev1.Container, cs *ctrState, now time.Time) {
	p := c.ReadinessProbe
	if p == nil || (p.HTTPGet == nil && p.TCPSocket == nil) {
		cs.ready = true // exec and gRPC probes are not supported: treated as passing
		return
	}
	if cs.probing || now.Before(cs.nextProbe) {
		return
	}
	cs.probing = true
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	cs.nextProbe = now.Add(period)
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	host := ""
	if len(st.rec.PodIPs) > 0 {
		host = st.rec.PodIPs[0]
	}
	handle := cs.rec.Handle
	go func() {
		err := runProbe(p, c, host, timeout)
		r.mu.Lock()
		defer r.mu.Unlock()
		cs.probing = false
		if cs.rec.Handle != handle {
			return // restarted meanwhile
		}
		if err == nil {
			cs.successes, cs.failures = cs.successes+1, 0
			if cs.successes >= max(p.SuccessThreshold, 1) && !cs.ready {
				cs.ready = true
				r.poke()
			}
		} else {
			cs.successes, cs.failures = 0, cs.failures+1
			if cs.failures >= max(p.FailureThreshold, 1) && cs.ready {
				cs.ready = false
				r.log.Info("readiness probe failed", "pod", st.rec.Namespace+"/"+st.rec.Name, "container", c.Name, "err", err)
				r.poke()
			}
		}
	}()
}

// runProbe performs one httpGet or tcpSocket probe against host.
func runProbe(p *corev1.Probe, c *corev1.Container, host string, timeout time.Duration) error {
	if p.HTTPGet != nil {
		port, err := resolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return err
		}
		if p.HTTPGet.Host != "" {
			host = p.HTTPGet.Host
		}
		scheme := "http"
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // as the kubelet does
			Proxy:           nil,
		}}
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+p.HTTPGet.Path, nil)
		if err != nil {
			return err
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe returned %d", resp.StatusCode)
		}
		return nil
	}
	port, err := resolvePort(p.TCPSocket.Port, c)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// resolvePort turns a probe port (number or container port name) into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

func containerID(st *podState, name string) string {
	return "lab://" + string(st.rec.UID) + "/" + name
}

// view is the runtime picture of a pod that ComputeStatus turns into status.
// Called with r.mu held.
func (r *Runner) view(st *podState) PodView {
	v := PodView{SandboxReady: st.setupDone && !st.rec.Released, PodIPs: st.rec.PodIPs, HostIPs: r.cfg.nodeIPs()}
	start := metav1.NewTime(st.rec.StartTime)
	v.StartTime = &start
	for _, c := range st.pod.Spec.Containers {
		cv := ContainerView{Name: c.Name, Image: c.Image}
		cs := st.ctrs[c.Name]
		if cs == nil {
			cv.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			v.Containers = append(v.Containers, cv)
			continue
		}
		cr := cs.rec
		cv.RestartCount = cr.RestartCount
		if cr.Last != nil {
			cv.LastState.Terminated = cr.Last
		}
		switch {
		case cr.Handle.PID != 0:
			cv.ContainerID = containerID(st, c.Name)
			cv.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(cr.StartedAt)}
			cv.Ready = cs.ready
		case cr.Final != nil:
			cv.ContainerID = containerID(st, c.Name)
			cv.State.Terminated = cr.Final
		default:
			reason, msg := cs.waiting, cs.message
			if !st.setupDone {
				reason = "ContainerCreating"
				msg = st.setupErr
			}
			if reason == "" {
				reason = "ContainerCreating"
			}
			cv.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		}
		v.Containers = append(v.Containers, cv)
	}
	return v
}
