package labtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/plexus-net/plexus/test/lab"
	"github.com/plexus-net/plexus/test/netnstest"
)

// ClientNetns is the lab's external client: a namespace on the segment with
// an address of it and no default route, as a router or laptop would be.
// HTTPClient(l.ClientNetns()) makes requests from it.
func (l *Lab) ClientNetns() string { return l.Layout.ClientNetns() }

// ClientIP is the external client's address.
func (l *Lab) ClientIP() netip.Addr { return l.Layout.ClientIP() }

// ARPReplies sends one ARP request for ip from the client's eth0 and
// collects every reply to it that arrives within wait: one hardware address
// per reply, in arrival order (a MAC twice means it answered twice). No
// reply is an empty list, not an error.
func (l *Lab) ARPReplies(ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	return ARPReplies(l.ClientNetns(), "eth0", ip, wait)
}

// ARPReplies sends one ARP request for ip out of interface ifname in
// namespace ns and collects the replies addressed to it within wait. The
// packet socket belongs to ns because it is opened on a thread inside it;
// reading it afterwards works from any thread.
func ARPReplies(ns, ifname string, ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	var c *arp.Client
	var self netip.Addr
	err := netnstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if self, err = ipv4Of(ifi); err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP socket on %s in %s: %w", ifname, ns, err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	if err := c.Request(ip); err != nil {
		return nil, fmt.Errorf("ARP request for %s: %w", ip, err)
	}
	var macs []net.HardwareAddr
	for {
		p, _, err := c.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return macs, nil
			}
			return macs, err
		}
		// Only answers to this request: not gratuitous ARP (target = the
		// address itself), not requests, not other conversations.
		if p.Operation == arp.OperationReply && p.SenderIP == ip && p.TargetIP == self {
			macs = append(macs, p.SenderHardwareAddr)
		}
	}
}

// WatchGratuitousARP starts listening on ifname in namespace ns for
// gratuitous ARP for ip (a request or reply whose sender and target address
// are both ip). The socket is open when it returns; stop ends the watch and
// returns the sender hardware address of each one seen, in arrival order
// (calling it again returns the same).
func WatchGratuitousARP(ns, ifname string, ip netip.Addr) (stop func() []net.HardwareAddr, err error) {
	var c *arp.Client
	err = netnstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP socket on %s in %s: %w", ifname, ns, err)
	}
	done := make(chan []net.HardwareAddr, 1)
	go func() {
		var macs []net.HardwareAddr
		for {
			p, _, err := c.Read()
			if err != nil { // closed by stop
				done <- macs
				return
			}
			if p.SenderIP == ip && p.TargetIP == ip {
				macs = append(macs, p.SenderHardwareAddr)
			}
		}
	}()
	var once sync.Once
	var seen []net.HardwareAddr
	return func() []net.HardwareAddr {
		once.Do(func() {
			_ = c.Close()
			seen = <-done
		})
		return seen
	}, nil
}

func ipv4Of(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 address", ifi.Name)
}

// NodeMAC is the hardware address of node's eth0 (its address on the segment).
func (l *Lab) NodeMAC(node string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := netnstest.Do(l.NodeNetns(node), func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}

// NodeByMAC maps the eth0 MAC of every node of the lab to its name.
func (l *Lab) NodeByMAC() (map[string]string, error) {
	s, _, err := lab.Open(l.StateRoot, l.Options.Name)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range s.Nodes {
		mac, err := l.NodeMAC(n.Name)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		out[mac.String()] = n.Name
	}
	return out, nil
}

// Running reports whether the lab's process component runs on node ("" for
// the control plane).
func (l *Lab) Running(node, component string) bool {
	s, _, err := lab.Open(l.StateRoot, l.Options.Name)
	if err != nil {
		return false
	}
	i := slices.IndexFunc(s.Processes, func(p lab.Process) bool { return p.Node == node && p.Name == component })
	return i >= 0 && s.Processes[i].Handle.Alive()
}

// LoadBalancerService puts a LoadBalancer Service (port 80) named name in
// front of the pods labelled app=app, changed by opts before it is created,
// and returns it as created (LB-IPAM assigns its address afterwards; see
// LoadBalancerIP). It allocates no node ports: traffic reaches it through
// its address.
func LoadBalancerService(t testing.TB, l *Lab, name, app string, opts ...func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: ptr.To(false),
			Selector:                      map[string]string{"app": app},
			Ports:                         []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	for _, o := range opts {
		o(svc)
	}
	svc, err := l.Client.CoreV1().Services(Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// LoadBalancerIP waits until LB-IPAM has given Service name an ingress
// address and returns it.
func (l *Lab) LoadBalancerIP(t testing.TB, name string, timeout time.Duration) netip.Addr {
	t.Helper()
	var ip netip.Addr
	l.EventuallyIn(t, timeout, "Service "+name+" gets a LoadBalancer address", func() error {
		svc, err := l.Client.CoreV1().Services(Namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				ip = a
				return nil
			}
		}
		return fmt.Errorf("no ingress address yet (status %+v)", svc.Status.LoadBalancer)
	})
	return ip
}
