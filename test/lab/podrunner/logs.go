package podrunner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-net/plexus/test/lab/crilog"
)

// KubeletPort is where the runner serves container logs, as a kubelet does
// (the Node's status.daemonEndpoints names it for the API server).
const KubeletPort = 10250

// Serving is how the runner serves the kubelet's log API to the API server.
type Serving struct {
	CertFile, KeyFile string // the node's serving certificate (its IPs as SANs)
	ClientCAFile      string // CA of the clients it accepts
	// Clients are the certificate common names allowed to read logs (the
	// API server's kubelet client); everyone else gets 403.
	Clients []string
}

func (s Serving) enabled() bool { return s.CertFile != "" }

// logPath is where a container's current log is; previousLogPath keeps the
// log of its run before (kubectl logs --previous).
func (r *Runner) logPath(uid types.UID, container string) string {
	return filepath.Join(r.podDir(uid), container+".log")
}

func (r *Runner) previousLogPath(uid types.UID, container string) string {
	return filepath.Join(r.podDir(uid), container+".previous.log")
}

// startWithLog starts cmd with its stdout and stderr going to a log copier
// (cfg.LogCopier, in its own session: it outlives a runner restart, as the
// container does) that frames them into log in the CRI format. A restart
// first moves the log of the run before aside.
func (r *Runner) startWithLog(cmd *exec.Cmd, uid types.UID, container string, restart bool) error {
	log := r.logPath(uid, container)
	if restart {
		if err := os.Rename(log, r.previousLogPath(uid, container)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	file, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer file.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	// Ours are closed once both children hold theirs: the copier then sees
	// the end of output when the container's side is gone.
	defer func() {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
	}()
	copier := exec.Command(r.cfg.LogCopier[0], r.cfg.LogCopier[1:]...)
	copier.Stdin, copier.Stdout, copier.ExtraFiles = outR, file, []*os.File{errR}
	copier.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := copier.Start(); err != nil {
		return fmt.Errorf("starting the log copier: %w", err)
	}
	go func() { _ = copier.Wait() }() // reaped while the runner lives; by init after
	cmd.Stdout, cmd.Stderr = outW, errW
	return cmd.Start()
}

// serveLogs answers GET /containerLogs/<namespace>/<pod>/<container> as the
// kubelet does, for the API server's pods/log. Only clients named in
// Serving.Clients, with a certificate from its CA, are answered.
func (r *Runner) serveLogs(ctx context.Context) error {
	s := r.cfg.Serving
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return fmt.Errorf("log server: %w", err)
	}
	caPEM, err := os.ReadFile(s.ClientCAFile)
	if err != nil {
		return fmt.Errorf("log server: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("log server: no certificate in %s", s.ClientCAFile)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", r.handleLogs)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the lab's pod runner serves only /containerLogs (kubectl logs); exec, attach and port-forward need a real kubelet", http.StatusNotFound)
	})
	srv := &http.Server{
		Handler: r.authorized(mux),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(KubeletPort))
	if err != nil {
		return fmt.Errorf("log server: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	r.log.Info("serving container logs", "port", KubeletPort)
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (r *Runner) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || !slices.Contains(r.cfg.Serving.Clients, req.TLS.PeerCertificates[0].Subject.CommonName) {
			http.Error(w, "forbidden: only the API server reads container logs here", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// followPoll is how often a follower looks for more output.
const followPoll = 250 * time.Millisecond

func (r *Runner) handleLogs(w http.ResponseWriter, req *http.Request) {
	o, follow, previous, limit, err := logOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path, running, err := r.findLog(req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container"), previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var out io.Writer = w
	if limit > 0 {
		out = &crilog.LimitWriter{W: w, N: limit}
	}
	w.Header().Set("Content-Type", "text/plain")
	offset := 0
	for {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n, err := crilog.Render(out, b[min(offset, len(b)):], o)
		if err != nil {
			return // the limit, or the client went away
		}
		offset += n
		if !follow || !running() {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Only new output from here on, whatever the options asked of the start.
		o = crilog.Options{TailLines: -1, Timestamps: o.Timestamps}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(followPoll):
		}
	}
}

// findLog finds the log of a container of a pod on this node; running
// reports whether that container still runs (for follow).
func (r *Runner) findLog(namespace, pod, container string, previous bool) (string, func() bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.pods {
		if st.rec.Namespace != namespace || st.rec.Name != pod {
			continue
		}
		cs := st.ctrs[container]
		if cs == nil {
			return "", nil, fmt.Errorf("container %q in pod %q is waiting to start", container, pod)
		}
		if previous {
			path := r.previousLogPath(st.rec.UID, container)
			if _, err := os.Stat(path); err != nil {
				return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
			}
			return path, func() bool { return false }, nil
		}
		running := func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return cs.rec.Handle.Alive()
		}
		return r.logPath(st.rec.UID, container), running, nil
	}
	return "", nil, fmt.Errorf("pod %s/%s is not on this node", namespace, pod)
}

// logOptions reads the query the API server sends for pods/log.
func logOptions(req *http.Request) (o crilog.Options, follow, previous bool, limit int64, err error) {
	q := req.URL.Query()
	o.TailLines = -1
	flag := func(name string) bool { v := q.Get(name); return v == "true" || v == "1" }
	follow, previous, o.Timestamps = flag("follow"), flag("previous"), flag("timestamps")
	if v := q.Get("tailLines"); v != "" {
		if o.TailLines, err = strconv.ParseInt(v, 10, 64); err != nil || o.TailLines < 0 {
			return o, false, false, 0, fmt.Errorf("tailLines=%q: want a number of lines", v)
		}
	}
	if v := q.Get("limitBytes"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 1 {
			return o, false, false, 0, fmt.Errorf("limitBytes=%q: want a positive number of bytes", v)
		}
	}
	switch since, sinceTime := q.Get("sinceSeconds"), q.Get("sinceTime"); {
	case since != "" && sinceTime != "":
		return o, false, false, 0, errors.New("at most one of sinceSeconds and sinceTime")
	case since != "":
		secs, perr := strconv.ParseInt(since, 10, 64)
		if perr != nil || secs < 1 {
			return o, false, false, 0, fmt.Errorf("sinceSeconds=%q: want a positive number of seconds", since)
		}
		o.Since = time.Now().Add(-time.Duration(secs) * time.Second)
	case sinceTime != "":
		if o.Since, err = time.Parse(time.RFC3339, sinceTime); err != nil {
			return o, false, false, 0, fmt.Errorf("sinceTime=%q: %w", sinceTime, err)
		}
	}
	return o, follow, previous, limit, nil
}
