package crilog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock returns a time one second later on every call, from t0.
func clock(t0 time.Time) func() time.Time {
	n := 0
	return func() time.Time { n++; return t0.Add(time.Duration(n-1) * time.Second) }
}

var t0 = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)

func TestCopyFramesLinesAsTheKubeletReadsThem(t *testing.T) {
	var log bytes.Buffer
	w := NewWriter(&log, clock(t0))
	long := strings.Repeat("x", MaxPiece+10)
	if err := w.Copy("stdout", strings.NewReader("one\n\n"+long+"\nunfinished")); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	want := []string{
		"2026-12-08T01:00:00Z stdout F one",
		"2026-12-08T01:00:01Z stdout F ",
		"2026-12-08T01:00:02Z stdout P " + long[:MaxPiece],
		"2026-12-08T01:00:03Z stdout F " + long[MaxPiece:],
		"2026-12-08T01:00:04Z stdout P unfinished",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), log.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %.60q, want %.60q", i, lines[i], want[i])
		}
	}
	// Reading it back gives the output again, the long line whole.
	var out bytes.Buffer
	if _, err := Render(&out, log.Bytes(), Options{TailLines: -1}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "one\n\n"+long+"\nunfinished" {
		t.Errorf("rendered %.80q", out.String())
	}
}

func TestRenderOptions(t *testing.T) {
	log := []byte(strings.Join([]string{
		"2026-12-08T01:00:00Z stdout F a",
		"2026-12-08T01:00:01Z stderr F b",
		"not a log line",
		"2026-12-08T01:00:02Z stdout P c1",
		"2026-12-08T01:00:03Z stdout F c2",
		"2026-12-08T01:00:04Z stdout F d",
		"2026-12-08T01:00:05Z stdout F half-writ", // no newline: still being written
	}, "\n"))
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"all", Options{TailLines: -1}, "a\nb\nc1c2\nd\n"},
		{"since", Options{Since: t0.Add(time.Second), TailLines: -1}, "b\nc1c2\nd\n"},
		{"since mid-line keeps the rest", Options{Since: t0.Add(3 * time.Second), TailLines: -1}, "c2\nd\n"},
		{"tail", Options{TailLines: 2}, "c1c2\nd\n"},
		{"tail 0", Options{TailLines: 0}, ""},
		{"timestamps", Options{Since: t0.Add(2 * time.Second), TailLines: -1, Timestamps: true},
			"2026-12-08T01:00:02Z c1c2\n2026-12-08T01:00:04Z d\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			consumed, err := Render(&out, log, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
			if want := bytes.LastIndexByte(log, '\n') + 1; consumed != want {
				t.Errorf("consumed %d bytes, want %d (up to the unfinished line)", consumed, want)
			}
		})
	}
}

func TestLimitWriterStopsAtItsLimit(t *testing.T) {
	var out bytes.Buffer
	lw := &LimitWriter{W: &out, N: 5}
	if n, err := lw.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	if n, err := lw.Write([]byte("defg")); n != 2 || !errors.Is(err, ErrLimit) {
		t.Fatalf("second write: %d, %v; want 2, ErrLimit", n, err)
	}
	if _, err := lw.Write([]byte("h")); !errors.Is(err, ErrLimit) {
		t.Fatalf("third write: %v, want ErrLimit", err)
	}
	if out.String() != "abcde" {
		t.Errorf("wrote %q", out.String())
	}
}
