package main

// A minimal container runtime, as the CNI spec describes one: it executes
// the plugins of a network configuration list with the CNI_* environment,
// passes each ADD result on as the next plugin's prevResult, caches the last
// result for CHECK and DEL, and runs DEL in reverse order.
//
// libcni does the same, but its invoke package needs go.opentelemetry.io/otel,
// which this module does not require (see the report of the CNI work).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// confList is a parsed network configuration list.
type confList struct {
	Name       string                       `json:"name"`
	CNIVersion string                       `json:"cniVersion"`
	Plugins    []map[string]json.RawMessage `json:"plugins"`
}

func parseConfList(b []byte) (*confList, error) {
	var l confList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	if l.Name == "" || l.CNIVersion == "" || len(l.Plugins) == 0 {
		return nil, fmt.Errorf("configuration list needs name, cniVersion and plugins")
	}
	return &l, nil
}

// runtimeConf is one attachment's CNI arguments.
type runtimeConf struct {
	ContainerID string
	NetNS       string
	IfName      string
	Args        [][2]string
}

type cniRuntime struct {
	path []string

	mu    sync.Mutex
	cache map[string][]byte // last ADD result per attachment
}

func (r *cniRuntime) cacheKey(l *confList, rt *runtimeConf) string {
	return l.Name + "/" + rt.ContainerID + "/" + rt.IfName
}

// pluginConf is plugin i's configuration as the spec has the runtime build
// it: name and cniVersion from the list, and the previous result.
func pluginConf(l *confList, i int, prev []byte) ([]byte, string, error) {
	conf := map[string]json.RawMessage{}
	for k, v := range l.Plugins[i] {
		conf[k] = v
	}
	var typ string
	if err := json.Unmarshal(conf["type"], &typ); err != nil || typ == "" {
		return nil, "", fmt.Errorf("plugin %d has no type", i)
	}
	conf["name"], _ = json.Marshal(l.Name)
	conf["cniVersion"], _ = json.Marshal(l.CNIVersion)
	if prev != nil {
		conf["prevResult"] = prev
	}
	b, err := json.Marshal(conf)
	return b, typ, err
}

func (r *cniRuntime) exec(ctx context.Context, typ, command string, stdin []byte, rt *runtimeConf) ([]byte, error) {
	var bin string
	for _, dir := range r.path {
		if p := filepath.Join(dir, typ); fileExists(p) {
			bin = p
			break
		}
	}
	if bin == "" {
		return nil, fmt.Errorf("plugin %q not found in %v", typ, r.path)
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_PATH=" + strings.Join(r.path, ":")}
	if rt != nil {
		var args []string
		for _, kv := range rt.Args {
			args = append(args, kv[0]+"="+kv[1])
		}
		cmd.Env = append(cmd.Env, "CNI_CONTAINERID="+rt.ContainerID, "CNI_NETNS="+rt.NetNS, "CNI_IFNAME="+rt.IfName, "CNI_ARGS="+strings.Join(args, ";"))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var e types.Error
		if json.Unmarshal(stdout.Bytes(), &e) == nil && e.Code != 0 {
			return nil, &e
		}
		return nil, fmt.Errorf("%s %s: %v: %s%s", typ, command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func (r *cniRuntime) add(ctx context.Context, l *confList, rt *runtimeConf) (*current.Result, error) {
	var prev []byte
	for i := range l.Plugins {
		conf, typ, err := pluginConf(l, i, prev)
		if err != nil {
			return nil, err
		}
		if prev, err = r.exec(ctx, typ, "ADD", conf, rt); err != nil {
			return nil, err
		}
	}
	res, err := current.NewResult(prev)
	if err != nil {
		return nil, fmt.Errorf("result %s: %w", prev, err)
	}
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string][]byte{}
	}
	r.cache[r.cacheKey(l, rt)] = prev
	r.mu.Unlock()
	return current.NewResultFromResult(res)
}

func (r *cniRuntime) cached(l *confList, rt *runtimeConf) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cache[r.cacheKey(l, rt)]
}

func (r *cniRuntime) del(ctx context.Context, l *confList, rt *runtimeConf) error {
	prev := r.cached(l, rt)
	for i := range slices.Backward(l.Plugins) {
		conf, typ, err := pluginConf(l, i, prev)
		if err != nil {
			return err
		}
		if _, err := r.exec(ctx, typ, "DEL", conf, rt); err != nil {
			return err
		}
	}
	r.mu.Lock()
	delete(r.cache, r.cacheKey(l, rt))
	r.mu.Unlock()
	return nil
}

func (r *cniRuntime) check(ctx context.Context, l *confList, rt *runtimeConf) error {
	prev := r.cached(l, rt)
	if prev == nil {
		return fmt.Errorf("no cached result for %s", r.cacheKey(l, rt))
	}
	for i := range l.Plugins {
		conf, typ, err := pluginConf(l, i, prev)
		if err != nil {
			return err
		}
		if _, err := r.exec(ctx, typ, "CHECK", conf, rt); err != nil {
			return err
		}
	}
	return nil
}

func (r *cniRuntime) status(ctx context.Context, l *confList) error {
	for i := range l.Plugins {
		conf, typ, err := pluginConf(l, i, nil)
		if err != nil {
			return err
		}
		if _, err := r.exec(ctx, typ, "STATUS", conf, nil); err != nil {
			return err
		}
	}
	return nil
}

func (r *cniRuntime) version(ctx context.Context, typ string) (version.PluginInfo, error) {
	out, err := r.exec(ctx, typ, "VERSION", []byte(`{"cniVersion": "1.1.0"}`), nil)
	if err != nil {
		return nil, err
	}
	var d version.PluginDecoder
	return d.Decode(out)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
