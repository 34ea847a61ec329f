// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Plexus network policy enforcement, attached with TCX to the host side of
// each pod's veth: "from_pod" at its ingress sees what the pod sends (the
// pod's egress), "to_pod" at its egress what the pod receives (the pod's
// ingress). With a host policy the same two programs sit on the node's
// own devices the other way round: "to_pod" at their ingress (what
// reaches the node), "from_pod" at their egress (what the node sends);
// the endpoint's EP_HOST flag makes them judge only the node's own
// traffic there. What local pods send to the node is judged against the
// host's ingress on the pod's veth, since it never crosses a device.
//
// A packet's peer identity comes from the ipcache (longest prefix match
// on the peer's address), the local endpoint's identity and enforcement
// from the endpoints map (by ifindex, never by the address the pod claims).
// The verdict comes from the policy map; replies of connections that a
// policy allowed pass through the conntrack map. A pod's connection to a
// Service address is judged by the Service's backends (the services map),
// since these programs run before kube-proxy picks one. Every drop and every new
// allowed flow is sent to user space through the events ring buffer.
// Established IPv4 traffic between two pods of the node goes from the
// sender's "from_pod" straight into the receiving pod (deliver_local).
//
// Addresses are 16 bytes: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual BSD/GPL";

#define DIR_INGRESS 0
#define DIR_EGRESS 1

#define EP_INGRESS_ENFORCED 1
#define EP_EGRESS_ENFORCED 2
#define EP_HOST 4
// EP_INDEXED marks an entry of plx_endpoint_index that holds an endpoint
// (an array's entries always exist).
#define EP_INDEXED 8

#define HOST_IDENTITY 1
// The endpoints map entry of key 0 (no interface has index 0) holds the
// host's flags, for packets local pods send to the node.
#define HOST_ENDPOINT_KEY 0

// tunnel_port is the node's VXLAN UDP port (0: none), set at load: the
// tunnel carries pods' packets, which their veths judge, so the host's
// policy leaves it alone.
volatile const __u16 tunnel_port = 0;

// local_redirect, set at load, lets a pod's established traffic to another
// pod of this node go straight into that pod (deliver_local).
volatile const __u8 local_redirect = 0;

#define VERDICT_DENY 1

#define EVENT_DROP_POLICY 1   /* no allow entry in an enforced direction */
#define EVENT_DROP_DENY 2     /* a deny entry matched */
#define EVENT_ALLOW_NEW 3     /* a new flow allowed by policy (or not enforced) */
#define EVENT_DROP_UNPARSED 4 /* enforced, but the packet could not be classified */
#define EVENT_KINDS 5

// plx_counters is indexed by kind * 2 + dir; COUNTER_LOST counts events
// the ring buffer had no room for (user space fell behind).
#define COUNTER_LOST (EVENT_KINDS * 2)

#define CT_LIFETIME_NS (300ULL * 1000 * 1000 * 1000)
// A connection's lifetime is pushed out at most once a second: writing it
// on every packet would move the entry's cache line between the CPUs of
// the two directions (or of the two ends' programs) on every packet.
#define CT_REFRESH_NS (1000ULL * 1000 * 1000)

struct ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
};

struct endpoint_value {
	__u32 identity;
	__u32 flags;
};

// policy_key fields are matched in order: the local identity, the peer
// (0: any peer), the direction, the protocol (0: any) fully, then the
// destination port (network byte order) by prefix, so port ranges are a
// few prefixes. User space resolves deny precedence within one
// (local, peer, direction, protocol); across them any deny wins.
struct policy_key {
	__u32 prefixlen;
	__u32 local;
	__u32 peer;
	__u8 dir;
	__u8 proto;
	__be16 dport;
};

#define POLICY_FULL_PREFIX (32 + 32 + 8 + 8 + 16)

struct policy_value {
	__u32 flags;
};

// ct_key names a connection at one local endpoint, whichever way its
// packet goes: its two ends (address, port) in a fixed order, which of
// them is the endpoint, and the endpoint's interface. One lookup finds
// the entry for a packet in the opening direction and for a reply. Each
// endpoint has its own entry (and reports its own new flow), so two local
// pods both track their side; and since a pod's packets both ways cross
// its own veth, a pod that sends with another pod's address never finds
// that pod's connections.
struct ct_key {
	__u8 addr_a[16];
	__u8 addr_b[16];
	__be16 port_a;
	__be16 port_b;
	__u8 proto;
	// local_b: the endpoint is end b.
	__u8 local_b;
	__u8 pad[2];
	// ifindex is the pod's veth, or 0 for the node's own traffic (on
	// whichever of its devices).
	__u32 ifindex;
};

// generation is that of the maps when the connection's last packet in
// the opening direction was judged: while the maps stay at it, the next
// packets pass without being judged again (nothing that decides changed).
// 0 is never a generation.
struct ct_value {
	__u64 expires;
	__u32 generation;
	// opener is the direction, at the endpoint, of the packet that opened
	// the connection; packets the other way are its replies.
	__u8 opener;
	// peer_elsewhere is set once the peer turned out not to be a pod of
	// this node: its packets need no look for local delivery.
	__u8 peer_elsewhere;
	__u8 pad[2];
};

struct event {
	__u64 time;
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir;
	__u8 kind;
	__u8 icmp_type; // for ICMP and ICMPv6
	__u32 local;
	__u32 peer;
	__u32 ifindex;
	__u32 len;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

// A Service frontend (cluster IP, external IP or load-balancer address,
// port, protocol) and the distinct (identity, target port) pairs of its
// ready backends. With more pairs than fit, SVC_OVERFLOW is set and an
// enforced egress fails closed: the backend chosen could be one unlisted.
#define SVC_MAX_BACKENDS 16
#define SVC_OVERFLOW 1

struct service_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct service_backend {
	__u32 identity;
	__be16 port;
	__u8 pad[2];
};

struct service_value {
	__u32 count;
	__u32 flags;
	struct service_backend backends[SVC_MAX_BACKENDS];
};

// Keeps struct event in the BTF for bpf2go (the ring buffer has no type).
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 512 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct endpoint_value);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_endpoints SEC(".maps");

// plx_endpoint_index mirrors the endpoints of interface index below
// ENDPOINT_INDEX_SIZE, where the verifier turns a lookup into an address
// computation: a hash lookup costs the packets of every managed interface
// a bucket and an element in the CPU's cache, and interface indexes stay
// small on most nodes (the kernel hands them out in order). User space
// writes an endpoint to plx_endpoints first, then here, and removes it in
// the other order; it rebuilds the index from plx_endpoints at start.
#define ENDPOINT_INDEX_SIZE 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct endpoint_value);
	__uint(max_entries, ENDPOINT_INDEX_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_endpoint_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, 256 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_conntrack SEC(".maps");

// A verdict computed once is kept for the next packets of the same
// (local, peer, direction, protocol, port): one hash lookup instead of
// four trie lookups. Entries carry the generation they were computed at;
// user space bumps plx_generation after every change to the maps, which
// retires them all at once, and the allowed connections' conntrack
// entries with them. The cache is not pinned (a new plugin process starts
// with an empty one); the generation is, so that it never goes back and
// an old conntrack entry's generation never comes round again.
struct verdict_key {
	__u32 local;
	__u32 peer;
	__u8 dir;
	__u8 proto;
	__be16 port;
	__u32 enforced;
};

struct verdict_value {
	__u32 generation;
	__s32 verdict;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct verdict_key);
	__type(value, struct verdict_value);
	__uint(max_entries, 64 * 1024);
} plx_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_generation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct service_key);
	__type(value, struct service_value);
	__uint(max_entries, 64 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_events SEC(".maps");

// Counters of verdicts, so that metrics never depend on the ring buffer
// keeping up.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, COUNTER_LOST + 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plx_counters SEC(".maps");

// Minimal headers: the uapi ones pull in glibc.
struct eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
} __attribute__((packed));

struct ip4 {
	__u8 vhl;
	__u8 tos;
	__be16 len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__be16 csum;
	__u8 saddr[4];
	__u8 daddr[4];
} __attribute__((packed));

struct ip6 {
	__be32 vtcfl;
	__be16 len;
	__u8 next;
	__u8 hops;
	__u8 saddr[16];
	__u8 daddr[16];
} __attribute__((packed));

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	// policy_port is what the policy matches: the destination port, or
	// the ICMP type.
	__be16 policy_port;
	// echo_reply is set for ICMP echo replies, which only conntrack passes.
	__u8 echo_reply;
	// related is set for an ICMP error (unreachable, packet too big, time
	// exceeded, parameter problem); inner is the packet it is about, as
	// that packet's sender sent it.
	__u8 related;
	struct {
		__u8 saddr[16];
		__u8 daddr[16];
		__be16 sport;
		__be16 dport;
		__u8 proto;
	} inner;
};

#define IPPROTO_ICMPV6_ 58

static __always_inline void map4(__u8 dst[16], const __u8 src[4])
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	dst[12] = src[0];
	dst[13] = src[1];
	dst[14] = src[2];
	dst[15] = src[3];
}

// parse_inner reads the packet an ICMP error quotes (its IP header and the
// first bytes of its L4 header) into f->inner; 0 if it could.
static __always_inline int parse_inner(struct flow *f, __u8 *l4, void *end, int v6)
{
	__u8 *in = l4 + 8;
	__u8 *ports;
	__u8 proto;

	if (v6) {
		struct ip6 *ip = (void *)in;
		if ((void *)(ip + 1) > end)
			return -1;
		__builtin_memcpy(f->inner.saddr, ip->saddr, 16);
		__builtin_memcpy(f->inner.daddr, ip->daddr, 16);
		proto = ip->next;
		ports = (__u8 *)(ip + 1);
	} else {
		struct ip4 *ip = (void *)in;
		if ((void *)(ip + 1) > end)
			return -1;
		if ((ip->vhl & 0xf) < 5)
			return -1;
		map4(f->inner.saddr, ip->saddr);
		map4(f->inner.daddr, ip->daddr);
		proto = ip->proto;
		ports = (__u8 *)ip + (ip->vhl & 0xf) * 4;
	}
	if ((void *)(ports + 6) > end)
		return -1;
	f->inner.proto = proto;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6_) {
		// An echo's conntrack "port" is its identifier.
		__builtin_memcpy(&f->inner.sport, ports + 4, 2);
		f->inner.dport = 0;
	} else {
		__builtin_memcpy(&f->inner.sport, ports, 2);
		__builtin_memcpy(&f->inner.dport, ports + 2, 2);
	}
	return 0;
}

// parse fills f; it returns 0, or -1 for a packet it cannot classify, and
// 1 for one that is not IP (left to the kernel: ARP and the like).
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct eth *eth = data;
	__u8 *l4;
	__u8 proto;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->proto == bpf_htons(ETH_P_IP)) {
		struct ip4 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		if ((ip->vhl >> 4) != 4 || (ip->vhl & 0xf) < 5)
			return -1;
		map4(f->saddr, ip->saddr);
		map4(f->daddr, ip->daddr);
		proto = ip->proto;
		// Later fragments carry no L4 header: classify by addresses
		// only, as the first fragment was.
		if (ip->frag & bpf_htons(0x1fff)) {
			f->proto = proto;
			return 0;
		}
		l4 = (__u8 *)ip + (ip->vhl & 0xf) * 4;
	} else if (eth->proto == bpf_htons(ETH_P_IPV6)) {
		struct ip6 *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		__builtin_memcpy(f->saddr, ip->saddr, 16);
		__builtin_memcpy(f->daddr, ip->daddr, 16);
		proto = ip->next;
		l4 = (__u8 *)(ip + 1);
		// A hop-by-hop header (multicast listener reports carry one)
		// comes first: step over it to the protocol.
		if (proto == 0) {
			if ((void *)(l4 + 2) > end)
				return -1;
			proto = l4[0];
			l4 += (l4[1] + 1) * 8;
		}
	} else {
		return 1;
	}
	f->proto = proto;
	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__be16 *ports = (void *)l4;
		if ((void *)(ports + 2) > end)
			return -1;
		f->sport = ports[0];
		f->dport = ports[1];
		f->policy_port = ports[1];
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_: {
		// type, code, checksum, then the echo identifier.
		if ((void *)(l4 + 6) > end)
			return -1;
		__u8 type = l4[0];
		// Neighbour discovery and multicast listener messages are the
		// link's own plumbing (RFC 4861, 3810): left to the kernel, as
		// ARP is, or IPv6 would break under any policy.
		if (proto == IPPROTO_ICMPV6_ && ((type >= 130 && type <= 137) || type == 143))
			return 1;
		f->policy_port = bpf_htons(type);
		if ((proto == IPPROTO_ICMP && (type == 8 || type == 0)) ||
		    (proto == IPPROTO_ICMPV6_ && (type == 128 || type == 129))) {
			// Echo request and reply share the identifier: it is the
			// "port" on both sides of the conntrack key.
			__builtin_memcpy(&f->sport, l4 + 4, 2);
			f->dport = 0;
			f->echo_reply = type == 0 || type == 129;
		}
		if ((proto == IPPROTO_ICMP && (type == 3 || type == 11 || type == 12)) ||
		    (proto == IPPROTO_ICMPV6_ && type >= 1 && type <= 4))
			f->related = parse_inner(f, l4, end, proto == IPPROTO_ICMPV6_) == 0;
		return 0;
	}
	}
	return 0;
}

static __always_inline __u32 peer_identity(const __u8 addr[16])
{
	struct ipcache_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&plx_ipcache, &k);
	// An address nothing claims is outside the cluster: the world.
	return v ? v->identity : 2;
}

// lookup is the verdict of (local, peer, dir, proto, port): -1 no entry,
// 0 allow, 1 deny.
static __always_inline int lookup(__u32 local, __u32 peer, __u8 dir, __u8 proto, __be16 port)
{
	struct policy_key k = {
		.prefixlen = POLICY_FULL_PREFIX,
		.local = local,
		.peer = peer,
		.dir = dir,
		.proto = proto,
		.dport = port,
	};
	struct policy_value *v = bpf_map_lookup_elem(&plx_policy, &k);
	if (!v)
		return -1;
	return (v->flags & VERDICT_DENY) ? 1 : 0;
}

// lookup_verdict is EVENT_DROP_DENY, EVENT_DROP_POLICY or 0 (allow) from
// the policy map itself.
static __always_inline int lookup_verdict(__u32 local, __u32 peer, __u8 dir, __u8 proto, __be16 port, int enforced)
{
	int allowed = 0;
	__u32 peers[2] = {peer, 0};
	__u8 protos[2] = {proto, 0};
#pragma unroll
	for (int i = 0; i < 2; i++) {
#pragma unroll
		for (int j = 0; j < 2; j++) {
			// An entry of "any protocol" covers every port.
			int r = lookup(local, peers[i], dir, protos[j], j ? 0 : port);
			if (r == 1)
				return EVENT_DROP_DENY;
			if (r == 0)
				allowed = 1;
		}
	}
	if (enforced && !allowed)
		return EVENT_DROP_POLICY;
	return 0;
}

// generation is the maps' generation (0 if it cannot be read, which
// matches nothing). A packet that is judged reads it before any map that
// decides the verdict: what it decides while user space rewrites the maps
// is stored under the old generation, which the rewrite then retires.
static __always_inline __u32 generation(void)
{
	__u32 zero = 0;
	__u32 *genp = bpf_map_lookup_elem(&plx_generation, &zero);
	return genp ? *genp : 0;
}

// verdict is EVENT_DROP_DENY, EVENT_DROP_POLICY or 0 (allow) for a packet
// of proto to port (or ICMP type) between local and peer: from the
// verdict cache when it holds one of generation gen, else from the policy
// map (and then cached).
static __always_inline int verdict(__u32 gen, __u32 local, __u32 peer, __u8 dir, __u8 proto, __be16 port, int enforced)
{
	struct verdict_key vk = {.local = local, .peer = peer, .dir = dir, .proto = proto, .port = port, .enforced = !!enforced};
	int r;

	// (gen is 0 only if the generation map could not be read, which an
	// array's index 0 always can: no branch for it here, where the
	// Service loop would multiply the verifier's paths.)
	struct verdict_value *vv = bpf_map_lookup_elem(&plx_verdicts, &vk);
	if (vv && vv->generation == gen)
		return vv->verdict;
	r = lookup_verdict(local, peer, dir, proto, port, enforced);
	struct verdict_value nv = {.generation = gen, .verdict = r};
	bpf_map_update_elem(&plx_verdicts, &vk, &nv, BPF_ANY);
	return r;
}

// service_verdict judges a pod's packet to a Service frontend by every
// backend it may reach: it passes only if each would pass on its own.
// *peer is the backend that decided (the first one refused, or the first
// one) for the report.
static __always_inline int service_verdict(__u32 gen, __u32 local, const struct service_value *svc, const struct flow *f, int enforced, __u32 *peer)
{
	__u32 n = svc->count;
	if (n > SVC_MAX_BACKENDS)
		n = SVC_MAX_BACKENDS;
	*peer = n ? svc->backends[0].identity : 0;
	for (__u32 i = 0; i < n; i++) {
		const struct service_backend *b = &svc->backends[i];
		int r = verdict(gen, local, b->identity, DIR_EGRESS, f->proto, b->port, enforced);
		if (r) {
			*peer = b->identity;
			return r;
		}
	}
	if (enforced && (svc->flags & SVC_OVERFLOW))
		return EVENT_DROP_POLICY;
	return 0;
}

// end_before says whether the end (a, ap) comes before (b, bp) in the
// order of conntrack keys; any fixed total order does.
static __always_inline int end_before(const __u8 a[16], __be16 ap, const __u8 b[16], __be16 bp)
{
	__u64 a0, a1, b0, b1;
	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	if (a0 != b0)
		return a0 < b0;
	if (a1 != b1)
		return a1 < b1;
	return ap < bp;
}

// ct_key_of is the conntrack key of a packet from (saddr, sport) to
// (daddr, dport), at the endpoint that sent it (local_src) or receives it,
// behind interface ifindex (0 for the node). ICMP echo keeps its
// identifier in sport both ways: its ends are the addresses alone.
static __always_inline void ct_key_of(struct ct_key *k, const __u8 saddr[16], const __u8 daddr[16], __be16 sport, __be16 dport,
				      __u8 proto, int local_src, __u32 ifindex)
{
	int icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6_;
	int src_first = end_before(saddr, icmp ? 0 : sport, daddr, icmp ? 0 : dport);

	__builtin_memset(k, 0, sizeof(*k));
	k->proto = proto;
	if (src_first) {
		__builtin_memcpy(k->addr_a, saddr, 16);
		__builtin_memcpy(k->addr_b, daddr, 16);
	} else {
		__builtin_memcpy(k->addr_a, daddr, 16);
		__builtin_memcpy(k->addr_b, saddr, 16);
	}
	if (src_first || icmp) {
		k->port_a = sport;
		k->port_b = dport;
	} else {
		k->port_a = dport;
		k->port_b = sport;
	}
	k->local_b = local_src != src_first;
	k->ifindex = ifindex;
}

static __always_inline void ct_refresh(struct ct_value *ct, __u64 now)
{
	if (ct->expires < now + (CT_LIFETIME_NS - CT_REFRESH_NS))
		ct->expires = now + CT_LIFETIME_NS;
}

static __always_inline void emit(struct __sk_buff *skb, const struct flow *f, __u8 dir, __u8 kind, __u32 local, __u32 peer)
{
	__u32 idx = kind * 2 + dir;
	struct counter *c = bpf_map_lookup_elem(&plx_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	struct event *e = bpf_ringbuf_reserve(&plx_events, sizeof(*e), 0);
	if (!e) {
		idx = COUNTER_LOST;
		c = bpf_map_lookup_elem(&plx_counters, &idx);
		if (c)
			c->packets++;
		return;
	}
	e->time = bpf_ktime_get_ns();
	__builtin_memcpy(e->saddr, f->saddr, 16);
	__builtin_memcpy(e->daddr, f->daddr, 16);
	e->sport = f->sport;
	e->dport = f->dport;
	e->proto = f->proto;
	e->dir = dir;
	e->kind = kind;
	e->icmp_type = (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6_) ? bpf_ntohs(f->policy_port) : 0;
	e->local = local;
	e->peer = peer;
	e->ifindex = skb->ifindex;
	e->len = skb->len;
	bpf_ringbuf_submit(e, 0);
}

// host_traffic says whether a packet on a node device is the node's own:
// arriving for one of its addresses, or sent by one of its sockets from
// one of them (forwarded packets, masqueraded ones included, have no
// socket).
static __always_inline int host_traffic(struct __sk_buff *skb, const struct flow *f, __u8 dir)
{
	if (f->proto == IPPROTO_UDP && tunnel_port && f->dport == bpf_htons(tunnel_port))
		return 0;
	if (dir == DIR_INGRESS)
		return peer_identity(f->daddr) == HOST_IDENTITY;
	return skb->sk && peer_identity(f->saddr) == HOST_IDENTITY;
}

// endpoint is what the endpoints map holds for an interface, or 0 for one
// this plugin does not manage.
static __always_inline struct endpoint_value *endpoint(__u32 ifindex)
{
	if (ifindex < ENDPOINT_INDEX_SIZE) {
		struct endpoint_value *ep = bpf_map_lookup_elem(&plx_endpoint_index, &ifindex);
		return ep && (ep->flags & EP_INDEXED) ? ep : 0;
	}
	return bpf_map_lookup_elem(&plx_endpoints, &ifindex);
}

#define AF_INET_ 2
#define IP4_CSUM_OFF (sizeof(struct eth) + 10)

// deliver_local takes a packet that passed its sender's egress straight
// into the receiving pod when that pod is on this node and its own program
// (to_pod) would pass the packet on the conntrack entry alone: a reply of
// a connection it opened, or a packet of one judged at this generation. It
// skips the node's IP stack (forwarding, netfilter) and the receiving
// veth, as a route would deliver it (the neighbour's addresses, TTL less
// one). Everything else takes the node's stack as before: a connection's
// first packets (so the receiving side judges them and tracks the
// connection), packets after a policy change, and replies through a
// Service, which the node must translate back: the receiving pod then
// tracks the connection under the Service's address, not under the pod's
// that the reply comes from. TC_ACT_OK when it does not redirect.
// k is the caller's key, reused (the stack is tight).
// src is the sender's conntrack entry, which learns when the peer is not
// a pod this plugin manages here (a route elsewhere, which a pod's address
// keeps while it lives; or a pod not programmed yet, whose connection then
// merely keeps taking the stack).
static __always_inline int deliver_local(struct __sk_buff *skb, const struct flow *f, struct ct_key *k, struct ct_value *src, __u64 now)
{
	struct bpf_fib_lookup fib = {.family = AF_INET_, .ifindex = skb->ifindex, .l4_protocol = f->proto, .sport = f->sport, .dport = f->dport};

	// IPv4 only for now: IPv6 takes the node's stack.
	if (!local_redirect || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	__builtin_memcpy(&fib.ipv4_src, f->saddr + 12, 4);
	__builtin_memcpy(&fib.ipv4_dst, f->daddr + 12, 4);
	int found = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (found == BPF_FIB_LKUP_RET_NOT_FWDED) {
		src->peer_elsewhere = 1; // the node's own address
		return TC_ACT_OK;
	}
	if (found != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK; // no neighbour yet, or too big: the stack's to say
	struct endpoint_value *dst = endpoint(fib.ifindex);
	if (!dst || (dst->flags & EP_HOST)) {
		src->peer_elsewhere = 1;
		return TC_ACT_OK;
	}
	ct_key_of(k, f->saddr, f->daddr, f->sport, f->dport, f->proto, 0, fib.ifindex);
	struct ct_value *ct = bpf_map_lookup_elem(&plx_conntrack, k);
	if (!ct || ct->expires <= now)
		return TC_ACT_OK;
	if (ct->opener == DIR_INGRESS) {
		__u32 gen = generation();
		if (!gen || ct->generation != gen)
			return TC_ACT_OK;
	}

	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct eth *eth = data;
	struct ip4 *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ttl <= 1)
		return TC_ACT_OK; // the stack answers "time exceeded"
	__be16 before = *(__be16 *)&ip->ttl;
	ip->ttl--;
	__be16 after = *(__be16 *)&ip->ttl;
	__builtin_memcpy(eth->dst, fib.dmac, 6);
	__builtin_memcpy(eth->src, fib.smac, 6);
	bpf_l3_csum_replace(skb, IP4_CSUM_OFF, before, after, 2);
	ct_refresh(ct, now);
	return bpf_redirect_peer(fib.ifindex, 0);
}

// host_ingress_verdict judges a local pod's packet to the node against the
// host's ingress policy (0 when there is none).
static __always_inline int host_ingress_verdict(__u32 gen, __u32 pod, const struct flow *f)
{
	struct endpoint_value *host = endpoint(HOST_ENDPOINT_KEY);
	if (!host)
		return 0;
	return verdict(gen, HOST_IDENTITY, pod, DIR_INGRESS, f->proto, f->policy_port, host->flags & EP_INGRESS_ENFORCED);
}

// judge decides a packet that conntrack did not pass: a connection's
// first packet, the first after a change of the maps, an ICMP error, a
// refused one. A function of its own, not inlined, so that the common path
// stays short (in the CPU's instruction cache) and each has a stack frame
// of its own: together they would not fit in one. k is the packet's key.
static __noinline int judge(struct __sk_buff *skb, struct flow *f, struct ct_key *k, struct endpoint_value *ep, __u32 dir)
{
	int enforced = ep->flags & (dir == DIR_INGRESS ? EP_INGRESS_ENFORCED : EP_EGRESS_ENFORCED);
	__u64 now = bpf_ktime_get_coarse_ns();
	__u32 gen = generation();
	int r;
	// The entry to take over if the packet passes (one of an older
	// generation); an expired one is judged as new.
	struct ct_value *ct = bpf_map_lookup_elem(&plx_conntrack, k);
	if (ct && ct->expires <= now)
		ct = 0;

	// An ICMP error about a connection this endpoint tracks (port
	// unreachable, packet too big for path MTU discovery) passes like a
	// reply. The packet it quotes went the other way: an error coming in
	// is about one the endpoint sent.
	if (f->related) {
		// (k lends itself to the quoted packet's key, then is the
		// packet's again.)
		__u32 at = k->ifindex;
		ct_key_of(k, f->inner.saddr, f->inner.daddr, f->inner.sport, f->inner.dport, f->inner.proto, dir == DIR_INGRESS, at);
		struct ct_value *ict = bpf_map_lookup_elem(&plx_conntrack, k);
		if (ict && ict->expires > now)
			return TC_ACT_OK;
		ct_key_of(k, f->saddr, f->daddr, f->sport, f->dport, f->proto, dir == DIR_EGRESS, at);
	}
	if (f->echo_reply && enforced) {
		emit(skb, f, dir, EVENT_DROP_POLICY, ep->identity, 0);
		return TC_ACT_SHOT;
	}

	__u32 peer;
	struct service_value *svc = 0;
	if (dir == DIR_EGRESS && !(ep->flags & EP_HOST) &&
	    (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP)) {
		struct service_key sk = {.port = f->dport, .proto = f->proto};
		__builtin_memcpy(sk.addr, f->daddr, 16);
		svc = bpf_map_lookup_elem(&plx_services, &sk);
	}
	if (svc) {
		r = service_verdict(gen, ep->identity, svc, f, enforced, &peer);
	} else {
		peer = peer_identity(dir == DIR_INGRESS ? f->saddr : f->daddr);
		r = verdict(gen, ep->identity, peer, dir, f->proto, f->policy_port, enforced);
	}
	if (r) {
		emit(skb, f, dir, r, ep->identity, peer);
		return TC_ACT_SHOT;
	}
	if (peer == HOST_IDENTITY && dir == DIR_EGRESS && !(ep->flags & EP_HOST)) {
		r = host_ingress_verdict(gen, ep->identity, f);
		if (r) {
			emit(skb, f, DIR_INGRESS, r, HOST_IDENTITY, ep->identity);
			return TC_ACT_SHOT;
		}
	}
	if (ct) {
		ct->expires = now + CT_LIFETIME_NS;
		ct->generation = gen;
		return TC_ACT_OK;
	}
	struct ct_value nv = {.expires = now + CT_LIFETIME_NS, .generation = gen, .opener = dir};
	bpf_map_update_elem(&plx_conntrack, k, &nv, BPF_ANY);
	emit(skb, f, dir, EVENT_ALLOW_NEW, ep->identity, peer);
	return TC_ACT_OK;
}

static __always_inline int enforce(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_value *ep;
	struct flow f = {};
	struct ct_key k;
	struct ct_value *ct;
	__u64 now;
	__u32 gen, ifindex = skb->ifindex;
	int enforced, r;

	ep = endpoint(ifindex);
	if (!ep)
		return TC_ACT_OK; // not a pod this plugin manages
	enforced = ep->flags & (dir == DIR_INGRESS ? EP_INGRESS_ENFORCED : EP_EGRESS_ENFORCED);

	r = parse(skb, &f);
	if (r == 1)
		return TC_ACT_OK;
	if (ep->flags & EP_HOST) {
		// A device of the node: what it cannot classify may be
		// anyone's, and forwarded traffic is the pods' to judge.
		if (r < 0 || !host_traffic(skb, &f, dir))
			return TC_ACT_OK;
	}
	if (r < 0) {
		if (!enforced)
			return TC_ACT_OK;
		emit(skb, &f, dir, EVENT_DROP_UNPARSED, ep->identity, 0);
		return TC_ACT_SHOT;
	}

	now = bpf_ktime_get_coarse_ns();
	// k is the packet's key from here on (judge takes it over).
	ct_key_of(&k, f.saddr, f.daddr, f.sport, f.dport, f.proto, dir == DIR_EGRESS, (ep->flags & EP_HOST) ? 0 : ifindex);
	ct = bpf_map_lookup_elem(&plx_conntrack, &k);
	if (ct && ct->expires <= now)
		ct = 0; // expired: judged as new, and the entry taken over
	// A reply of a connection the other direction allowed needs nothing
	// else (not even the generation, whose cache line is one more miss).
	// A packet of a connection judged allowed at this generation neither:
	// no endpoint, address, Service or policy changed since, so neither
	// would the verdict.
	if (ct && ct->opener != dir)
		goto pass;
	gen = generation();
	if (ct && gen && ct->generation == gen)
		goto pass;
	return judge(skb, &f, &k, ep, dir);

pass:
	ct_refresh(ct, now);
	if (dir == DIR_EGRESS && !(ep->flags & EP_HOST) && !ct->peer_elsewhere)
		return deliver_local(skb, &f, &k, ct, now);
	return TC_ACT_OK;
}

// from_pod: TCX ingress of the host-side veth, the pod's egress.
SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return enforce(skb, DIR_EGRESS);
}

// to_pod: TCX egress of the host-side veth, the pod's ingress.
SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return enforce(skb, DIR_INGRESS);
}
