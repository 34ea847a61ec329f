package labtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/plexus-net/plexus/test/netnstest"
)

// ExternalAddr is the i-th extra address of the lab's external host
// (198.18.<segment>.250+i; i=0 is its own address).
func (l *Lab) ExternalAddr(i int) netip.Addr {
	a := l.ClientIP().As4()
	a[3] += byte(i)
	return netip.AddrFrom4(a)
}

// ExternalServer makes the lab's external host (the client namespace, on the
// segment, outside the cluster) serve HTTP on port 8080 of its own address
// and of extra more addresses (ExternalAddr(1..extra)), answering every
// request with the source address it sees: what a firewall outside the
// cluster would see. It returns the URLs, own address first; the test's
// cleanup stops the servers and removes the addresses.
func (l *Lab) ExternalServer(t testing.TB, extra int) []string {
	t.Helper()
	ns := l.ClientNetns()
	var urls []string
	for i := 0; i <= extra; i++ {
		addr := l.ExternalAddr(i)
		if i > 0 {
			netnstest.Run(t, "ip", "-n", ns, "addr", "replace", addr.String()+"/24", "dev", "eth0")
			t.Cleanup(func() { _, _ = netnstest.Exec(ns, "ip", "addr", "del", addr.String()+"/24", "dev", "eth0") })
		}
		var ln net.Listener
		if err := netnstest.Do(ns, func() error {
			var err error
			ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 8080).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			_, _ = io.WriteString(w, host)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		urls = append(urls, "http://"+netip.AddrPortFrom(addr, 8080).String()+"/")
	}
	return urls
}

// SourceSeen fetches url with c (see HTTPClient) and returns the source
// address the external server saw.
func SourceSeen(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("empty answer")
	}
	return s, nil
}
