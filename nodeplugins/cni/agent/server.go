package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/plexus-net/plexus/nodeplugins/cni/client"
	"github.com/plexus-net/plexus/nodeplugins/cni/ipam"
)

// serve answers the CNI plugin on the unix socket until ctx ends. Only root
// (the container runtime running the plugin) may connect.
func (a *Agent) serve(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(a.cfg.SocketPath), 0o755); err != nil {
		return err
	}
	// A socket file left by an earlier run blocks the listen.
	if err := os.Remove(a.cfg.SocketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the old socket: %w", err)
	}
	ln, err := net.Listen("unix", a.cfg.SocketPath)
	if err != nil {
		return err
	}
	if err := os.Chmod(a.cfg.SocketPath, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	a.log.Info("serving the CNI plugin", "socket", a.cfg.SocketPath)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+client.PathAllocate, func(w http.ResponseWriter, r *http.Request) {
		var req client.AllocateRequest
		if !decode(w, r, &req) {
			return
		}
		al, err := a.allocate(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, toClient(al))
	})
	mux.HandleFunc("POST "+client.PathRelease, func(w http.ResponseWriter, r *http.Request) {
		var k client.Key
		if !decode(w, r, &k) {
			return
		}
		if err := a.release(k); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST "+client.PathCheck, func(w http.ResponseWriter, r *http.Request) {
		var k client.Key
		if !decode(w, r, &k) {
			return
		}
		al, ok := a.alloc.Get(ipam.Key{ContainerID: k.ContainerID, IfName: k.IfName})
		if !ok {
			writeJSON(w, http.StatusNotFound, client.Error{Code: codeInvalidInput, Message: fmt.Sprintf("no addresses are allocated to container %s interface %s", k.ContainerID, k.IfName)})
			return
		}
		writeJSON(w, http.StatusOK, toClient(al))
	})
	mux.HandleFunc("GET "+client.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.status())
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(into); err != nil {
		writeJSON(w, http.StatusBadRequest, client.Error{Code: codeInvalidInput, Message: "request body is not valid JSON: " + err.Error()})
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, err error) {
	var ce *client.Error
	if !errors.As(err, &ce) {
		ce = &client.Error{Code: codeIOFailure, Message: err.Error()}
	}
	status := http.StatusInternalServerError
	switch ce.Code {
	case codeTryLater:
		status = http.StatusServiceUnavailable
	case codeInvalidInput, codeInvalidEnv:
		status = http.StatusBadRequest
	}
	writeJSON(w, status, ce)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
