package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/plexus-net/plexus/internal/atomicfile"
)

// install puts this binary into the node's CNI bin dir and a network
// configuration list into its conf dir, each replaced atomically so that a
// runtime never reads half a file. The chart runs it as the CNI agent pod's
// init container (`plexus-cni install ...`), the usual way a CNI is deployed.
func install(args []string) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	binDir := fs.String("bin-dir", "/host/opt/cni/bin", "the node's CNI bin dir, mounted into the container")
	confDir := fs.String("conf-dir", "/host/etc/cni/net.d", "the node's CNI conf dir, mounted into the container")
	confName := fs.String("conf-name", "05-plexus.conflist", "file name of the configuration list (runtimes take the first in lexical order)")
	socket := fs.String("socket", "/run/plexus/cni.sock", "the agent's socket, as the node sees it")
	mtu := fs.Int("mtu", 1500, "pod interface MTU (the underlay's, minus 50 with VXLAN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mtu < 68 || *mtu > 65535 {
		return fmt.Errorf("--mtu %d: want 68 to 65535", *mtu)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := atomicfile.Write(filepath.Join(*binDir, pluginType), 0o755, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	}); err != nil {
		return fmt.Errorf("installing the plugin: %w", err)
	}
	conf := map[string]any{
		"cniVersion": "1.1.0",
		"name":       "plexus",
		"plugins":    []any{map[string]any{"type": pluginType, "socket": *socket, "mtu": *mtu}},
	}
	if err := atomicfile.Write(filepath.Join(*confDir, *confName), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(conf)
	}); err != nil {
		return fmt.Errorf("writing the network configuration: %w", err)
	}
	fmt.Printf("installed %s and %s\n", filepath.Join(*binDir, pluginType), filepath.Join(*confDir, *confName))
	return nil
}
