// Package crilog writes and reads container logs in the CRI log format the
// kubelet reads ("<RFC3339Nano time> <stream> <P|F> <text>" per line, P for
// a piece of a longer line, F for the end of one), so that the lab's pod
// runner can answer `kubectl logs` with the kubelet's options (sinceTime,
// sinceSeconds, tailLines, limitBytes, timestamps) and their meaning.
package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// MaxPiece is the longest text of one log line; longer output lines are
// written as several P lines and a final F line, as containerd does.
const MaxPiece = 16 * 1024

// Writer frames output of several streams into one log. Its methods are
// safe for concurrent use; each log line is one Write to the destination, so
// an O_APPEND file never interleaves two lines.
type Writer struct {
	mu  sync.Mutex
	dst io.Writer
	now func() time.Time
}

// NewWriter frames lines into dst, stamped with now (time.Now if nil).
func NewWriter(dst io.Writer, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{dst: dst, now: now}
}

// Copy frames everything read from src as lines of stream ("stdout" or
// "stderr") until src ends. Text after the last newline is written as a P
// line: the output ended in the middle of a line.
func (w *Writer) Copy(stream string, src io.Reader) error {
	br := bufio.NewReaderSize(src, MaxPiece)
	for {
		piece, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if werr := w.line(stream, 'F', piece[:len(piece)-1]); werr != nil {
				return werr
			}
		case errors.Is(err, bufio.ErrBufferFull):
			if werr := w.line(stream, 'P', piece); werr != nil {
				return werr
			}
		case errors.Is(err, io.EOF):
			if len(piece) > 0 {
				return w.line(stream, 'P', piece)
			}
			return nil
		default:
			return err
		}
	}
}

func (w *Writer) line(stream string, tag byte, text []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := make([]byte, 0, len(text)+64)
	b = w.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, text...)
	b = append(b, '\n')
	_, err := w.dst.Write(b)
	return err
}

// Entry is one parsed log line.
type Entry struct {
	Time   time.Time
	Stream string
	Full   bool // F: the text ends an output line
	Text   []byte
}

// Parse reads one log line (without its newline).
func Parse(line []byte) (Entry, error) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return Entry{}, fmt.Errorf("log line %q has no stream", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return Entry{}, fmt.Errorf("log line %q: %w", line, err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(rest) < 2 || rest[1] != ' ' || (rest[0] != 'P' && rest[0] != 'F') {
		return Entry{}, fmt.Errorf("log line %q has no P/F tag", line)
	}
	return Entry{Time: t, Stream: string(stream), Full: rest[0] == 'F', Text: rest[2:]}, nil
}

// Options are the kubelet's log options that the lab honours (limitBytes
// is the caller's: see LimitWriter).
type Options struct {
	Since      time.Time // lines stamped before it are left out (zero: all)
	TailLines  int64     // only the last N output lines (negative: all)
	Timestamps bool      // prefix each output line with its time
}

// Render writes the output lines in log (CRI lines) to w as the kubelet
// returns them to `kubectl logs`: the text of each line, pieces joined, with
// the options applied. Unparsable lines are skipped, as the kubelet does.
// It returns how many bytes of log it consumed (whole lines only), so that
// a follower can go on from there.
func Render(w io.Writer, log []byte, o Options) (consumed int, err error) {
	var lines [][]byte // output lines, each with its newline (the last may lack it)
	var cur []byte
	open := false // cur holds the start of an output line
	for {
		nl := bytes.IndexByte(log[consumed:], '\n')
		if nl < 0 {
			break // a line still being written: left for the next read
		}
		raw := log[consumed : consumed+nl]
		consumed += nl + 1
		e, err := Parse(raw)
		if err != nil || (!o.Since.IsZero() && e.Time.Before(o.Since)) {
			continue
		}
		if !open {
			open, cur = true, nil
			if o.Timestamps {
				cur = e.Time.UTC().AppendFormat(cur, time.RFC3339Nano)
				cur = append(cur, ' ')
			}
		}
		cur = append(cur, e.Text...)
		if e.Full {
			lines = append(lines, append(cur, '\n'))
			open = false
		}
	}
	if open {
		lines = append(lines, cur) // output that ended mid-line
	}
	if o.TailLines >= 0 && int64(len(lines)) > o.TailLines {
		lines = lines[int64(len(lines))-o.TailLines:]
	}
	for _, l := range lines {
		if _, err := w.Write(l); err != nil {
			return consumed, err
		}
	}
	return consumed, nil
}

// ErrLimit is returned by a LimitWriter once its limit is reached.
var ErrLimit = errors.New("log limit reached")

// LimitWriter passes on at most N bytes (the kubelet's limitBytes), then
// fails with ErrLimit.
type LimitWriter struct {
	W io.Writer
	N int64
}

func (l *LimitWriter) Write(p []byte) (int, error) {
	if l.N <= 0 {
		return 0, ErrLimit
	}
	cut := int64(len(p)) > l.N
	if cut {
		p = p[:l.N]
	}
	n, err := l.W.Write(p)
	l.N -= int64(n)
	if err == nil && cut {
		err = ErrLimit
	}
	return n, err
}

// RunCopier is the body of a container's log copier, the lab's stand-in for
// a runtime shim's logging: it frames the container's stdout (its stdin)
// and stderr (its fd 3) into the log on its stdout until both end. It
// ignores the signals that stop the container, so that the container's last
// words are still written; it ends when the container (and every process
// holding its output) has.
func RunCopier() error {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	w := NewWriter(os.Stdout, nil)
	stderr := os.NewFile(3, "stderr")
	if stderr == nil {
		return errors.New("log copier: no fd 3 (the container's stderr)")
	}
	done := make(chan error, 2)
	go func() { done <- w.Copy("stdout", os.Stdin) }()
	go func() { done <- w.Copy("stderr", stderr) }()
	return errors.Join(<-done, <-done)
}
