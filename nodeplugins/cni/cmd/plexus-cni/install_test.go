package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// install writes a plugin the runtime can run and a configuration list that
// libcni (what containerd and CRI-O use) accepts, and replaces both on a
// second run.
func TestInstall(t *testing.T) {
	bin, conf := t.TempDir(), t.TempDir()
	for range 2 {
		if err := install([]string{"--bin-dir", bin, "--conf-dir", conf, "--mtu", "1450", "--socket", "/run/plexus/cni.sock"}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(bin, "plexus-cni"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Size() == 0 {
		t.Fatalf("plugin: %v %v", st, err)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(conf, "05-plexus.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "plexus" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "plexus-cni" {
		t.Fatalf("conflist %+v", list)
	}
	c, err := parseConf(list.Plugins[0].Bytes)
	if err != nil || c.MTU != 1450 || c.Socket != "/run/plexus/cni.sock" {
		t.Fatalf("plugin conf %+v, %v", c, err)
	}
	if entries, _ := os.ReadDir(conf); len(entries) != 1 {
		t.Errorf("conf dir holds %d files, want only the conflist (no temporary files left)", len(entries))
	}
	if err := install([]string{"--bin-dir", bin, "--conf-dir", conf, "--mtu", "20"}); err == nil {
		t.Error("mtu 20 accepted")
	}
}
