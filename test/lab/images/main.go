// Command lab-image is every "image" the lab can run, one subcommand each;
// the lab's pod runner maps plexus.dev/lab/<name> to `lab-image <name>` and
// appends the container's command and args.
//
//	echo    HTTP server answering GET / with JSON {pod, namespace, node, podIP, clientAddr, forwardedFor};
//	        also "ok" to every TCP connection on -tcp and every UDP datagram
//	        echoed back on -udp (for policy tests of ports and protocols)
//	client  fetches a URL every second and logs each answer (-once: one fetch, exit status says if it worked)
//	pause   does nothing until stopped
//	echo-basic  the Gateway API conformance suite's echo server: runs the
//	        echo-basic binary beside this one (built from the conformance
//	        module, sigs.k8s.io/gateway-api/conformance/echo-basic)
//
// echo and client read POD_NAME, POD_NAMESPACE, NODE_NAME and POD_IP from
// the environment (the downward API in the pod spec).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Answer is what echo returns; tests decode it.
type Answer struct {
	Pod        string `json:"pod"`
	Namespace  string `json:"namespace"`
	Node       string `json:"node"`
	PodIP      string `json:"podIP"`
	ClientAddr string `json:"clientAddr"`
	// ForwardedFor is the request's X-Forwarded-For (a proxy's account of
	// the client).
	ForwardedFor string `json:"forwardedFor,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lab-image echo|client|pause [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "echo":
		err = echo(ctx, os.Args[2:])
	case "client":
		err = client(ctx, os.Args[2:])
	case "pause":
		<-ctx.Done()
	case "echo-basic":
		err = execSibling("echo-basic", os.Args[2:])
	default:
		err = fmt.Errorf("unknown program %q (echo, client, pause, echo-basic)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab-image:", err)
		os.Exit(1)
	}
}

func echo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to serve on")
	plainTCP := fs.String("tcp", ":9090", "address answering \"ok\" to every TCP connection (empty: none)")
	udp := fs.String("udp", ":8081", "address echoing every UDP datagram (empty: none)")
	_ = fs.Parse(args)
	if err := serveOK(ctx, *plainTCP); err != nil {
		return err
	}
	if err := serveUDPEcho(ctx, *udp); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Answer{
			Pod: os.Getenv("POD_NAME"), Namespace: os.Getenv("POD_NAMESPACE"),
			Node: os.Getenv("NODE_NAME"), PodIP: os.Getenv("POD_IP"), ClientAddr: r.RemoteAddr,
			ForwardedFor: r.Header.Get("X-Forwarded-For"),
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("echo serving on %s", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// serveOK answers "ok" to every TCP connection on addr until ctx ends.
func serveOK(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "ok")
			_ = c.Close()
		}
	}()
	return nil
}

// serveUDPEcho sends every datagram on addr back to its sender.
func serveUDPEcho(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return nil
}

func client(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	url := fs.String("url", "", "URL to fetch (required)")
	interval := fs.Duration("interval", time.Second, "time between fetches")
	once := fs.Bool("once", false, "fetch once, print the answer and exit (non-zero when it failed)")
	count := fs.Int("count", 0, "with -once semantics, fetch this many times and print every answer")
	timeout := fs.Duration("timeout", 2*time.Second, "per-request timeout")
	_ = fs.Parse(args)
	if *url == "" && fs.NArg() > 0 {
		*url = fs.Arg(0)
	}
	if *url == "" {
		return fmt.Errorf("client needs -url")
	}
	if !strings.Contains(*url, "://") {
		*url = "http://" + *url
	}
	hc := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	fetch := func() (string, error) {
		resp, err := hc.Get(*url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", resp.Status, body)
		}
		return strings.TrimSpace(string(body)), nil
	}
	if *once || *count > 0 {
		n := max(*count, 1)
		for range n {
			body, err := fetch()
			if err != nil {
				return err
			}
			fmt.Println(body)
		}
		return nil
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		body, err := fetch()
		if err != nil {
			log.Printf("GET %s: %v", *url, err)
		} else {
			log.Printf("GET %s: %s", *url, body)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// execSibling replaces this process with the named program from this
// binary's directory.
func execSibling(name string, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	path := filepath.Join(filepath.Dir(self), name)
	return syscall.Exec(path, append([]string{path}, args...), os.Environ()) //nolint:gosec // a program of this checkout
}
