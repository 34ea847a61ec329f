package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	if err := WriteBytes(path, 0o600, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, 0o600, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return errors.New("failed midway")
	}); err == nil {
		t.Fatal("a failing writer reported success")
	}
	b, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(b) != "one" || st.Mode().Perm() != 0o600 {
		t.Fatalf("after a failed write: %q %v, want the old content", b, st.Mode())
	}
	if err := WriteBytes(path, 0o644, []byte("two")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if b, _ := os.ReadFile(path); string(b) != "two" || len(entries) != 1 {
		t.Fatalf("content %q, %d files (temporary files left?)", b, len(entries))
	}
}
