// Package podrunner is the lab's kubelet: run inside a node's network
// namespace, it registers the Node and keeps its Lease and Ready condition,
// and runs the pods bound to the node. Each pod gets its own network
// namespace attached through CNI (libcni, with the node's CNI config, as a
// container runtime would), and each container is a process of the lab-image
// binary running in that namespace. Pod status is reported as a kubelet
// reports it, so Deployments, Services and EndpointSlices behave as in a
// real cluster.
//
// State survives restarts: every pod's namespace, CNI attachment and process
// ids are recorded in the state dir, a restarted runner adopts what still
// runs, and cleans up (CNI DEL, namespace delete) pods that no longer exist.
package podrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/plexus-net/plexus/test/lab/proc"
)

// Config is how one node's runner is set up.
type Config struct {
	Node string
	// NodeIP is the node's InternalIP, or one per family, comma-separated
	// (IPv4 first).
	NodeIP      string
	Kubeconfig  string
	CNI         CNI
	StateDir    string // pod records and container logs
	NetnsPrefix string // pod namespaces are <prefix>-p-<first 8 of the pod UID>
	ImageBinary string // the lab-image multi-call binary
	// LogCopier is the command (argv) that frames a container's output into
	// its log: see crilog.RunCopier.
	LogCopier []string
	Serving   Serving // the kubelet's log API; off without a certificate

	LeaseInterval  time.Duration // Lease renewal (kubelet: 10s)
	StatusInterval time.Duration // Ready condition refresh
	MaxGrace       time.Duration // cap on a pod's termination grace period
	Log            *slog.Logger
}

func (c *Config) defaults() {
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 40 * time.Second
	}
	if c.MaxGrace == 0 {
		c.MaxGrace = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

func (c *Config) validate() error {
	var missing []string
	for flag, v := range map[string]string{"node": c.Node, "node-ip": c.NodeIP, "kubeconfig": c.Kubeconfig, "state-dir": c.StateDir,
		"cni-conf-dir": c.CNI.ConfDir, "netns-prefix": c.NetnsPrefix, "image-binary": c.ImageBinary} {
		if v == "" {
			missing = append(missing, "--"+flag)
		}
	}
	if len(c.CNI.BinDirs) == 0 {
		missing = append(missing, "--cni-bin-dir")
	}
	if len(c.LogCopier) == 0 {
		missing = append(missing, "LogCopier")
	}
	if c.Serving.enabled() && (c.Serving.KeyFile == "" || c.Serving.ClientCAFile == "" || len(c.Serving.Clients) == 0) {
		missing = append(missing, "--tls-private-key-file, --client-ca-file and --log-client (with --tls-cert-file)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("pod runner: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Runner runs the pods of one node.
type Runner struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger

	reportedReady atomic.Bool // the Ready status last written to the Node

	mu   sync.Mutex
	pods map[types.UID]*podState
	wake chan struct{}
}

// podState is a pod the runner handles: its persisted record plus what only
// lives in memory (progress flags, backoff, probe results).
type podState struct {
	rec         *record
	pod         *corev1.Pod
	settingUp   bool
	setupDone   bool
	setupErr    string
	nextSetup   time.Time
	terminating bool
	ctrs        map[string]*ctrState
	written     *corev1.PodStatus
}

type ctrState struct {
	rec       *containerRecord
	own       bool // our child: its exit code comes from Wait
	exited    bool
	exitCode  int32
	waiting   string // reason while not running
	message   string
	nextStart time.Time
	backoff   time.Duration
	ready     bool
	adopted   bool // readiness not yet seeded from the pod's reported status
	probing   bool
	nextProbe time.Time
	successes int32
	failures  int32
}

// New builds a runner from cfg.
func New(cfg Config) (*Runner, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.CNI.CacheDir == "" {
		cfg.CNI.CacheDir = cfg.StateDir + "/cni-cache"
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, client: client, log: cfg.Log, pods: map[types.UID]*podState{}, wake: make(chan struct{}, 1)}, nil
}

// Run registers the node and runs its pods until ctx ends. It leaves pods
// running on return: a restarted runner adopts them.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.StateDir, 0o755); err != nil {
		return err
	}
	if err := r.adopt(); err != nil {
		return fmt.Errorf("adopting recorded pods: %w", err)
	}
	if err := r.registerNode(ctx); err != nil {
		return err
	}
	go r.heartbeat(ctx)
	if r.cfg.Serving.enabled() {
		go func() {
			if err := r.serveLogs(ctx); err != nil {
				r.log.Error("container logs are not served", "err", err)
			}
		}()
	}

	factory := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", r.cfg.Node).String()
	}))
	podInformer := factory.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.poke() },
		UpdateFunc: func(any, any) { r.poke() },
		DeleteFunc: func(any) { r.poke() },
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		return ctx.Err()
	}
	r.log.Info("pod runner started")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.sync(ctx, podInformer.GetStore())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.wake:
		}
	}
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// adopt loads the recorded pods; processes still alive are kept running.
func (r *Runner) adopt() error {
	recs, err := loadRecords(r.cfg.StateDir)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		st := &podState{rec: rec, ctrs: map[string]*ctrState{}}
		st.setupDone = rec.Attachment != nil && netnsExists(rec.Netns) || rec.Netns == "" && rec.PodIPs != nil
		for name, cr := range rec.Containers {
			cs := &ctrState{rec: cr, adopted: true}
			if cr.Handle.PID != 0 && !cr.Handle.Alive() {
				// It ended while no runner watched: the exit code is lost.
				cs.exited, cs.exitCode = true, 137
			}
			st.ctrs[name] = cs
		}
		r.pods[rec.UID] = st
		r.log.Info("adopted pod", "pod", rec.Namespace+"/"+rec.Name, "netnsPresent", st.setupDone)
	}
	return nil
}

// sync is one pass: start what is missing, restart what exited, tear down
// what is deleted, and write the statuses that changed.
func (r *Runner) sync(ctx context.Context, store cache.Store) {
	type write struct {
		pod    *corev1.Pod
		status corev1.PodStatus
		st     *podState
	}
	var writes []write
	now := time.Now()

	r.mu.Lock()
	seen := map[types.UID]bool{}
	for _, obj := range store.List() {
		pod := obj.(*corev1.Pod)
		seen[pod.UID] = true
		st := r.pods[pod.UID]
		if st == nil {
			if pod.DeletionTimestamp == nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed) {
				continue // finished before this runner knew it; nothing to run
			}
			st = r.newPod(pod)
			r.pods[pod.UID] = st
		}
		st.pod = pod
		if st.terminating {
			continue
		}
		if pod.DeletionTimestamp != nil {
			st.terminating = true
			go r.terminate(ctx, st, r.grace(pod), true)
			continue
		}
		if !st.setupDone {
			if !st.settingUp && now.After(st.nextSetup) {
				st.settingUp = true
				go r.setup(ctx, st)
			}
		} else {
			for i := range pod.Spec.Containers {
				r.syncContainer(st, &pod.Spec.Containers[i], now)
			}
		}
		status := ComputeStatus(pod, r.view(st), metav1.NewTime(now.Truncate(time.Second)))
		if (status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed) && !st.rec.Released && st.setupDone {
			st.rec.Released = true
			go r.releaseNetwork(ctx, st)
		}
		if st.written == nil || !equality.Semantic.DeepEqual(*st.written, status) {
			writes = append(writes, write{pod: pod, status: status, st: st})
		}
	}
	// Pods that are gone from the API (force-deleted, or deleted while the
	// runner was down) are cleaned up without the API.
	for uid, st := range r.pods {
		if !seen[uid] && !st.terminating {
			st.terminating = true
			go r.terminate(ctx, st, 2*time.Second, false)
		}
	}
	r.mu.Unlock()

	for _, w := range writes {
		p := w.pod.DeepCopy()
		p.Status = w.status
		if _, err := r.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				r.log.Error("writing pod status", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
			continue
		}
		r.mu.Lock()
		w.st.written = &w.status
		r.mu.Unlock()
	}
}

func (r *Runner) newPod(pod *corev1.Pod) *podState {
	rec := &record{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, StartTime: time.Now().Truncate(time.Second), Containers: map[string]*containerRecord{}}
	if !pod.Spec.HostNetwork {
		rec.Netns = r.PodNetns(pod.UID)
	}
	st := &podState{rec: rec, ctrs: map[string]*ctrState{}}
	for _, c := range pod.Spec.Containers {
		cr := &containerRecord{}
		rec.Containers[c.Name] = cr
		st.ctrs[c.Name] = &ctrState{rec: cr, waiting: "ContainerCreating"}
	}
	return st
}

// PodNetns is the network namespace name of the pod with uid.
func (r *Runner) PodNetns(uid types.UID) string {
	u := strings.ReplaceAll(string(uid), "-", "")
	if len(u) > 8 {
		u = u[:8]
	}
	return r.cfg.NetnsPrefix + "-p-" + u
}

func (r *Runner) grace(pod *corev1.Pod) time.Duration {
	g := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		g = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return min(g, r.cfg.MaxGrace)
}

// setup creates the pod's network namespace and attaches it through CNI.
func (r *Runner) setup(ctx context.Context, st *podState) {
	r.mu.Lock()
	rec, pod := st.rec, st.pod
	r.mu.Unlock()
	err := r.attach(ctx, rec, pod)
	r.mu.Lock()
	defer r.mu.Unlock()
	st.settingUp = false
	if err != nil {
		st.setupErr = err.Error()
		st.nextSetup = time.Now().Add(5 * time.Second)
		r.log.Error("setting up pod network", "pod", rec.Namespace+"/"+rec.Name, "err", err)
		r.poke()
		return
	}
	st.setupDone, st.setupErr = true, ""
	if err := r.save(rec); err != nil {
		r.log.Error("saving pod record", "err", err)
	}
	r.poke()
}

func (r *Runner) attach(ctx context.Context, rec *record, pod *corev1.Pod) error {
	if rec.Netns == "" { // hostNetwork: the node's own namespace and address
		rec.PodIPs = r.cfg.nodeIPs()
		return nil
	}
	if !netnsExists(rec.Netns) {
		if out, err := exec.Command("ip", "netns", "add", rec.Netns).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %w: %s", rec.Netns, err, out)
		}
	}
	conf, err := r.cfg.CNI.LoadConfList()
	if err != nil {
		return err
	}
	a := &Attachment{
		ContainerID: "lab-" + strings.ReplaceAll(string(pod.UID), "-", ""),
		Netns:       proc.NetnsPath(rec.Netns),
		ConfList:    conf,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", ""},
			{"K8S_POD_UID", string(pod.UID)},
		},
	}
	a.Args[3][1] = a.ContainerID
	// Record the attachment before ADD, so a crash in between still gets a DEL.
	rec.Attachment = a
	if err := r.save(rec); err != nil {
		return err
	}
	ips, err := r.cfg.CNI.Add(ctx, *a)
	if err != nil {
		// Undo a partial ADD before the next try, as runtimes do.
		if derr := r.cfg.CNI.Del(ctx, *a); derr != nil {
			r.log.Error("CNI DEL after failed ADD", "pod", rec.Namespace+"/"+rec.Name, "err", derr)
		}
		return err
	}
	rec.PodIPs = ips
	return nil
}

// releaseNetwork undoes the network of a pod that finished for good; the
// Pod object stays, with its final status.
func (r *Runner) releaseNetwork(ctx context.Context, st *podState) {
	r.mu.Lock()
	rec := *st.rec
	r.mu.Unlock()
	r.detach(ctx, &rec)
	r.mu.Lock()
	_ = r.save(st.rec)
	r.mu.Unlock()
}

func (r *Runner) detach(ctx context.Context, rec *record) {
	if rec.Attachment != nil {
		if err := r.cfg.CNI.Del(ctx, *rec.Attachment); err != nil {
			r.log.Error("CNI DEL", "pod", rec.Namespace+"/"+rec.Name, "err", err)
		}
	}
	if rec.Netns != "" && netnsExists(rec.Netns) {
		if out, err := exec.Command("ip", "netns", "del", rec.Netns).CombinedOutput(); err != nil {
			r.log.Error("deleting pod netns", "netns", rec.Netns, "err", err, "out", string(out))
		}
	}
}

// terminate stops the pod's containers (SIGTERM, grace, SIGKILL), undoes its
// network, forgets it, and, when the Pod object still exists, deletes it for
// good with a UID precondition (the kubelet's final delete).
func (r *Runner) terminate(ctx context.Context, st *podState, grace time.Duration, deleteObject bool) {
	r.mu.Lock()
	rec := st.rec
	var handles []proc.Handle
	for _, c := range rec.Containers {
		if c.Handle.PID != 0 {
			handles = append(handles, c.Handle)
		}
	}
	r.mu.Unlock()
	r.log.Info("terminating pod", "pod", rec.Namespace+"/"+rec.Name, "grace", grace)
	stopAll(handles, grace)
	r.detach(ctx, rec)
	_ = os.RemoveAll(r.podDir(rec.UID))
	if deleteObject {
		zero := int64(0)
		err := r.client.CoreV1().Pods(rec.Namespace).Delete(ctx, rec.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &rec.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			r.log.Error("final pod delete", "pod", rec.Namespace+"/"+rec.Name, "err", err)
		}
	}
	r.mu.Lock()
	delete(r.pods, rec.UID)
	r.mu.Unlock()
	r.poke()
}

// stopAll sends SIGTERM to every process group, waits up to grace for all to
// exit, then SIGKILLs what is left.
func stopAll(handles []proc.Handle, grace time.Duration) {
	for _, h := range handles {
		_ = h.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		alive := false
		for _, h := range handles {
			alive = alive || h.Alive()
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, h := range handles {
		_ = h.Stop(0)
	}
}

func netnsExists(name string) bool {
	if name == "" {
		return false
	}
	_, err := os.Stat(proc.NetnsPath(name))
	return err == nil
}

// Teardown undoes every pod recorded in cfg.StateDir without the API: stops
// their processes, runs CNI DEL and deletes their namespaces. `lab down` and
// `lab node-delete` use it (run inside the node's namespace, so CNI plugins
// act on the node as at ADD).
func Teardown(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.CNI.CacheDir == "" {
		cfg.CNI.CacheDir = cfg.StateDir + "/cni-cache"
	}
	r := &Runner{cfg: cfg, log: cfg.Log}
	recs, err := loadRecords(cfg.StateDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range recs {
		var handles []proc.Handle
		for _, c := range rec.Containers {
			if c.Handle.PID != 0 {
				handles = append(handles, c.Handle)
			}
		}
		stopAll(handles, 5*time.Second)
		r.detach(ctx, rec)
		if rec.Netns != "" && netnsExists(rec.Netns) {
			errs = append(errs, fmt.Errorf("netns %s still exists", rec.Netns))
			continue
		}
		if err := os.RemoveAll(r.podDir(rec.UID)); err != nil {
			errs = append(errs, err)
		}
		cfg.Log.Info("tore down pod", "pod", rec.Namespace+"/"+rec.Name)
	}
	return errors.Join(errs...)
}

// nodeIPs are the node's InternalIPs.
func (c Config) nodeIPs() []string { return strings.Split(c.NodeIP, ",") }
