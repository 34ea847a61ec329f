package speaker

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// errorBook keeps the last error of each neighbour address of one GoBGP
// server. GoBGP's API has no "last error" of a peer; its log lines do, so
// the server's logger feeds this book.
type errorBook struct {
	mu      sync.Mutex
	last    map[string]string
	changed func()
}

func newErrorBook(changed func()) *errorBook {
	return &errorBook{last: map[string]string{}, changed: changed}
}

func (b *errorBook) set(addr, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	b.mu.Lock()
	same := b.last[addr] == msg
	b.last[addr] = msg
	b.mu.Unlock()
	if !same {
		b.changed()
	}
}

func (b *errorBook) get(addr string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last[addr]
}

func (b *errorBook) forget(addr string) {
	b.mu.Lock()
	delete(b.last, addr)
	b.mu.Unlock()
}

// peerError turns a GoBGP log line into a peer's error, if it is one.
func peerError(msg string, f gobgplog.Fields) (addr, text string, ok bool) {
	if f["Topic"] != "Peer" {
		return "", "", false
	}
	addr, _ = f["Key"].(string)
	if addr == "" {
		return "", "", false
	}
	switch msg {
	case "sent notification", "received notification":
		return addr, msg + ": " + notificationText(f), true
	case "failed to connect":
		return addr, fmt.Sprintf("failed to connect: %v", f["Error"]), true
	case "failed to set md5":
		return addr, fmt.Sprintf("failed to set TCP MD5 key: %v", f["Err"]), true
	case "Peer Down":
		reason, _ := f["Reason"].(string)
		switch {
		case reason == "", reason == "dying", reason == "admin-down", strings.HasPrefix(reason, "notification-"):
			// our own doing, or already recorded from the notification
			return "", "", false
		}
		return addr, "session down: " + reason, true
	}
	return "", "", false
}

func notificationText(f gobgplog.Fields) string {
	if e, ok := f["Data"].(*bgp.MessageError); ok && e.Message != "" {
		return e.Message
	}
	code, _ := f["Code"].(uint8)
	sub, _ := f["Subcode"].(uint8)
	text := bgp.NewNotificationErrorCode(code, sub).String()
	if r, _ := f["Communicated-Reason"].(string); r != "" {
		text += " (" + r + ")"
	}
	return text
}

// gobgpLogger adapts logr to GoBGP's logger and feeds the error book.
// It claims debug level so that GoBGP reports failed connection attempts,
// which it only logs at debug; debug lines reach logr at V(4) only.
type gobgpLogger struct {
	log  logr.Logger
	book *errorBook
}

func (l *gobgpLogger) observe(msg string, f gobgplog.Fields) {
	if addr, text, ok := peerError(msg, f); ok {
		l.book.set(addr, text)
	}
}

func keyValues(f gobgplog.Fields) []any {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		v := f[k]
		switch x := v.(type) {
		case error:
			v = x.Error()
		case fmt.Stringer:
			v = x.String()
		}
		kv = append(kv, k, v)
	}
	return kv
}

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	l.log.Error(nil, msg, keyValues(f)...)
}

func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	l.log.Error(nil, msg, keyValues(f)...)
}

func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	l.log.Error(nil, msg, keyValues(f)...)
}

func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	l.log.Info(msg, keyValues(f)...)
}

func (l *gobgpLogger) Info(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	if v := l.log.V(1); v.Enabled() {
		v.Info(msg, keyValues(f)...)
	}
}

func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	if v := l.log.V(4); v.Enabled() {
		v.Info(msg, keyValues(f)...)
	}
}

func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
