// Command lab runs a whole Kubernetes cluster on this machine, with no
// containers: see docs/lab.md.
//
//	lab up [--nodes 3] [--routing-mode native|vxlan] [--ipam-mode cluster-pool|multi-pool|kubernetes] [--name plxlab]
//	       [--cni auto|plexus|standin] [--datapath auto|plexus|standin] [--segment 0]
//	lab down [--name plxlab]
//	lab status [--name plxlab]
//	lab node-delete [--name plxlab] <node>
//	lab restart [--name plxlab] <node|controlplane> <component>
//	lab kill [--name plxlab] <node|controlplane> <component>   (SIGKILL, as a crash)
//	lab start [--name plxlab] <node|controlplane> <component>  (a killed one again)
//	lab link [--name plxlab] <node> up|down                     (cut or restore a node's link)
//	lab logs [--name plxlab] <namespace>/<pod> [container]
//	lab podrunner --node ... (the pod runner; `lab up` starts it in each node)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plexus-net/plexus/test/l7standin"
	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/lab/crilog"
	"github.com/plexus-net/plexus/test/lab/podrunner"
)

const usage = `usage: lab <command> [flags]

commands:
  up            bring a lab up (control plane, Plexus controllers, N node namespaces)
  down          stop and remove everything a lab made; idempotent
  status        list the lab's processes and nodes
  node-delete   remove one node (its processes, pods, namespace and Node object)
  restart       restart one process: lab restart <node|controlplane> <component>
  kill          end one process with SIGKILL, as a crash would: lab kill <node|controlplane> <component>
  start         start a killed or stopped process again: lab start <node|controlplane> <component>
  link          cut or restore a node's link to the segment: lab link <node> down|up
  logs          print a container's output: lab logs <namespace>/<pod> [container]
                (kubectl logs works too: the pod runners serve the kubelet's log API)
  podrunner     the pod runner of one node (started by up)
  l7standin     the stand-in for Envoy of one node (started by up --gateway)

"lab <command> -h" lists its flags. Needs root.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if os.Args[1] == "container-log" {
		// Started by the pod runner beside each container; not for users.
		if err := crilog.RunCopier(); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up":
		err = up(ctx, args)
	case "down":
		fs, name, root := nameFlags("down")
		_ = fs.Parse(args)
		err = lab.Down(ctx, *root, *name, os.Stdout)
		if err == nil {
			fmt.Printf("== lab %s is down\n", *name)
		}
	case "status":
		fs, name, root := nameFlags("status")
		_ = fs.Parse(args)
		err = lab.Status(*root, *name, os.Stdout)
	case "node-delete":
		fs, name, root := nameFlags("node-delete")
		_ = fs.Parse(args)
		if fs.NArg() != 1 {
			err = errors.New("usage: lab node-delete [--name NAME] <node>")
			break
		}
		err = lab.NodeDelete(ctx, *root, *name, fs.Arg(0), os.Stdout)
	case "restart", "kill", "start":
		fs, name, root := nameFlags(cmd)
		_ = fs.Parse(args)
		if fs.NArg() != 2 {
			err = fmt.Errorf("usage: lab %s [--name NAME] <node|controlplane> <component>", cmd)
			break
		}
		node := fs.Arg(0)
		if node == "controlplane" {
			node = ""
		}
		op := map[string]func(string, string, string, string, io.Writer) error{
			"restart": lab.Restart, "kill": lab.KillComponent, "start": lab.StartComponent}[cmd]
		err = op(*root, *name, node, fs.Arg(1), os.Stdout)
	case "link":
		fs, name, root := nameFlags("link")
		_ = fs.Parse(args)
		if fs.NArg() != 2 || fs.Arg(1) != "up" && fs.Arg(1) != "down" {
			err = errors.New("usage: lab link [--name NAME] <node> up|down")
			break
		}
		err = lab.SetNodeLink(*root, *name, fs.Arg(0), fs.Arg(1) == "up", os.Stdout)
	case "logs":
		fs, name, root := nameFlags("logs")
		_ = fs.Parse(args)
		ns, pod, ok := strings.Cut(fs.Arg(0), "/")
		if fs.NArg() < 1 || fs.NArg() > 2 || !ok {
			err = errors.New("usage: lab logs [--name NAME] <namespace>/<pod> [container]")
			break
		}
		var path string
		if path, err = lab.PodLogs(*root, *name, ns, pod, fs.Arg(1)); err == nil {
			var b []byte
			if b, err = os.ReadFile(path); err == nil {
				_, err = crilog.Render(os.Stdout, b, crilog.Options{TailLines: -1})
			}
		}
	case "podrunner":
		err = runPodRunner(ctx, args)
	case "l7standin":
		err = runL7StandIn(ctx, args)
	case "-h", "--help", "help":
		fmt.Println(usage)
	default:
		err = fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func nameFlags(cmd string) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	name := fs.String("name", lab.DefaultName, "lab name: prefix of its namespaces, links and state dir")
	root := fs.String("state-root", lab.DefaultStateRoot, "the lab's files are in <state-root>/<name>")
	return fs, name, root
}

func up(ctx context.Context, args []string) error {
	fs, name, root := nameFlags("up")
	o := lab.Options{Out: os.Stdout}
	fs.IntVar(&o.Nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&o.RoutingMode, "routing-mode", "native", "pod routing between nodes: native or vxlan")
	fs.StringVar(&o.IPAMMode, "ipam-mode", "cluster-pool", "IPAM mode of the Plexus IPAM controller: cluster-pool, multi-pool or kubernetes")
	fs.StringVar(&o.IPFamily, "ip-family", "ipv4", "ipv4; dual: an IPv6 underlay (2001:2:0:<segment>::/64), IPv6 pod CIDRs and dual-stack Services besides IPv4; ipv6: nodes, pods, Services and the API server on IPv6 only")
	fs.StringVar(&o.CNI, "cni", "auto", "pod network plugin: plexus (plexus-cni + plexus-cni-node), standin (reference ptp + host-local), auto (plexus when its binaries are in --bin-dir and its RBAC exists)")
	fs.StringVar(&o.Datapath, "datapath", "auto", "routes between nodes: plexus (plexus-datapath-node), standin (static routes by the lab), auto (as for --cni)")
	fs.IntVar(&o.Segment, "segment", 0, "underlay 198.18.<segment>.0/24; give a second lab on this machine another one")
	fs.StringVar(&o.Repo, "repo", ".", "repository root (charts/, config/, hack/)")
	fs.StringVar(&o.BinDir, "bin-dir", "", "folder with lab, lab-image and the Plexus binaries (default <repo>/bin)")
	fs.StringVar(&o.ControlPlaneBin, "controlplane-bin", "", "folder with etcd, kube-apiserver, kubectl, kube-controller-manager, kube-scheduler, kube-proxy (default: what hack/build-controlplane.sh prints)")
	fs.StringVar(&o.CNIBin, "cni-bin", "", "folder with the reference CNI plugins (default: what hack/build-cniplugins.sh prints)")
	fs.StringVar(&o.Helm, "helm", "", "helm binary for rendering the chart's RBAC (default <repo>/bin/tools/helm-*)")
	fs.BoolVar(&o.Gateway, "gateway", false, "run the Gateway API: the gateway controller, and on each node the l7proxy plugin with the stand-in proxy (test/l7standin)")
	fs.BoolVar(&o.GatewayHostNetwork, "gateway-host-network", false, "with --gateway: Gateways in host network mode (no LoadBalancer Service; the nodes' proxies listen on the listener ports)")
	fs.StringVar(&o.GatewayHostNodes, "gateway-host-nodes", "", "with --gateway-host-network: the listening nodes, as a label selector (empty: all)")
	_ = fs.Parse(args)
	o.Name, o.StateRoot = *name, *root
	var err error
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Repo, "bin")
	}
	if o.ControlPlaneBin == "" {
		if o.ControlPlaneBin, err = script(o.Repo, "hack/build-controlplane.sh", "etcd", "kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler", "kube-proxy"); err != nil {
			return err
		}
	}
	if o.CNIBin == "" {
		if o.CNIBin, err = script(o.Repo, "hack/build-cniplugins.sh"); err != nil {
			return err
		}
	}
	if o.Helm == "" {
		if m, _ := filepath.Glob(filepath.Join(o.Repo, "bin", "tools", "helm-*")); len(m) > 0 {
			o.Helm = m[len(m)-1]
		}
	}
	if err := lab.Up(ctx, o); err != nil {
		return err
	}
	l := lab.LayoutFor(o.StateRoot, o.Name, o.Segment)
	fmt.Printf(`
The lab runs in the background. Use it with:
  export KUBECONFIG=%[1]s
  %[2]s/kubectl get nodes -o wide
  %[2]s/kubectl create deployment echo --image=plexus.dev/lab/echo --replicas=3
Logs: %[3]s   Status: bin/lab status --name %[4]s   Remove: bin/lab down --name %[4]s (make lab-down)
`, l.Kubeconfig(), o.ControlPlaneBin, l.LogDir(), o.Name)
	return nil
}

// script runs a hack/ build script and returns the folder it prints.
func script(repo, path string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repo, path), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func runPodRunner(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("podrunner", flag.ExitOnError)
	var cfg podrunner.Config
	var binDirs string
	teardown := fs.Bool("teardown", false, "stop every recorded pod, run CNI DEL and delete its namespace, then exit (lab down)")
	fs.StringVar(&cfg.Node, "node", "", "Node name")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "the node's InternalIP, or one per family comma-separated (IPv4 first)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig with the node's identity (system:node:<node>)")
	fs.StringVar(&cfg.CNI.ConfDir, "cni-conf-dir", "", "folder with the pod network's *.conflist")
	fs.StringVar(&binDirs, "cni-bin-dir", "", "comma-separated folders with CNI plugins")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "pod records and container logs")
	fs.StringVar(&cfg.NetnsPrefix, "netns-prefix", "", "pod namespaces are <prefix>-p-<first 8 of the pod UID>")
	fs.StringVar(&cfg.ImageBinary, "image-binary", "", "the lab-image binary the lab's images map to")
	fs.StringVar(&cfg.Serving.CertFile, "tls-cert-file", "", "serving certificate of the node's log API (kubectl logs); none: not served")
	fs.StringVar(&cfg.Serving.KeyFile, "tls-private-key-file", "", "its key")
	fs.StringVar(&cfg.Serving.ClientCAFile, "client-ca-file", "", "CA of the clients the log API accepts")
	logClient := fs.String("log-client", "", "certificate common name of the one client allowed to read logs (the API server's kubelet client)")
	_ = fs.Parse(args)
	if binDirs != "" {
		cfg.CNI.BinDirs = strings.Split(binDirs, ",")
	}
	if *logClient != "" {
		cfg.Serving.Clients = []string{*logClient}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.LogCopier = []string{self, "container-log"}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", cfg.Node)
	cfg.CNI.CacheDir = filepath.Join(cfg.StateDir, "cni-cache")
	if *teardown {
		if cfg.StateDir == "" {
			return errors.New("--teardown needs --state-dir")
		}
		return podrunner.Teardown(ctx, cfg)
	}
	r, err := podrunner.New(cfg)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// runL7StandIn plays a node's Envoy: it takes the node's xDS from the
// l7proxy plugin's socket (waiting for it) and serves what it is given.
func runL7StandIn(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("l7standin", flag.ExitOnError)
	node := fs.String("node", "", "node name (the xDS node id)")
	socket := fs.String("xds", "", "the l7proxy plugin's xDS Unix socket")
	_ = fs.Parse(args)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", *node)
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	// The plugin may start later or restart: Run reconnects until stopped.
	log.Info("serving the node's xDS", "socket", *socket)
	return (&l7standin.Proxy{NodeID: *node}).Run(ctx, conn)
}
