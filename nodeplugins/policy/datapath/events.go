package datapath

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/plexus-net/plexus/bpf/policybpf"
)

// EventKind is what a verdict event reports, as bpf/src/policy.c numbers it.
type EventKind uint8

// Event kinds.
const (
	// DropPolicy: no allow entry matched in an enforced direction
	// (default deny).
	DropPolicy EventKind = 1
	// DropDeny: a deny entry matched.
	DropDeny EventKind = 2
	// AllowNew: the first packet of a flow that was allowed; its other
	// packets and replies pass through connection tracking unreported.
	AllowNew EventKind = 3
	// DropUnparsed: enforced, but the packet was too short or malformed
	// to classify.
	DropUnparsed EventKind = 4

	eventKinds = 5
)

// Dropped tells whether the packet was dropped.
func (k EventKind) Dropped() bool { return k != AllowNew }

// Reason names the kind in metrics labels and logs.
func (k EventKind) Reason() string {
	switch k {
	case DropPolicy:
		return "policy-denied"
	case DropDeny:
		return "policy-deny"
	case AllowNew:
		return "allowed"
	case DropUnparsed:
		return "invalid-packet"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Direction is the local endpoint's direction of a packet.
type Direction uint8

// Directions.
const (
	Ingress Direction = dirIngress
	Egress  Direction = dirEgress
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// Event is one verdict of the programs.
type Event struct {
	Time      time.Time
	Kind      EventKind
	Direction Direction
	Src, Dst  netip.Addr
	// SrcPort and DstPort are the TCP, UDP or SCTP ports; for an ICMP
	// echo, SrcPort is its identifier.
	SrcPort, DstPort uint16
	Protocol         uint8
	ICMPType         uint8
	// Local is the identity of the endpoint whose policy judged the
	// packet (a pod, or the host, 1), Peer that of the other side (0 when
	// the packet was not classified).
	Local, Peer uint32
	Ifindex     uint32
	Length      uint32
}

// bootTime converts the programs' clock (CLOCK_MONOTONIC) to wall time.
func bootTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func decodeEvent(raw []byte, boot time.Time) (Event, error) {
	var e policybpf.PolicyEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &e); err != nil {
		return Event{}, fmt.Errorf("decoding a verdict event of %d bytes: %w", len(raw), err)
	}
	return Event{
		Time: boot.Add(time.Duration(e.Time)), Kind: EventKind(e.Kind), Direction: Direction(e.Dir),
		Src: netip.AddrFrom16(e.Saddr).Unmap(), Dst: netip.AddrFrom16(e.Daddr).Unmap(),
		SrcPort: fromBE16(e.Sport), DstPort: fromBE16(e.Dport), Protocol: e.Proto, ICMPType: e.IcmpType,
		Local: e.Local, Peer: e.Peer, Ifindex: e.Ifindex, Length: e.Len,
	}, nil
}

// ReadEvents hands every verdict event to fn until ctx ends. Events are
// read in the order the programs wrote them; one the ring buffer had no
// room for is counted (Counters) but lost.
func (m *Maps) ReadEvents(ctx context.Context, fn func(Event)) error {
	r, err := ringbuf.NewReader(m.objs.PlxEvents)
	if err != nil {
		return fmt.Errorf("opening the events ring buffer: %w", err)
	}
	// Closing the reader is what interrupts a pending read.
	stop := context.AfterFunc(ctx, func() { _ = r.Close() })
	defer func() {
		if stop() {
			_ = r.Close()
		}
	}()
	boot := bootTime()
	var rec ringbuf.Record
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the events ring buffer: %w", err)
		}
		e, err := decodeEvent(rec.RawSample, boot)
		if err != nil {
			return err
		}
		fn(e)
	}
}

// CounterKey selects a verdict counter.
type CounterKey struct {
	Kind      EventKind
	Direction Direction
}

// Counter is packets and bytes summed over the CPUs.
type Counter struct {
	Packets, Bytes uint64
}

// Counters are the programs' verdict counters since the maps were
// created (they are pinned: a plugin restart does not reset them), and
// the number of events lost because the ring buffer was full.
func (m *Maps) Counters() (map[CounterKey]Counter, uint64, error) {
	out := map[CounterKey]Counter{}
	var lost uint64
	for idx := uint32(0); idx <= eventKinds*2; idx++ {
		var perCPU []policybpf.PolicyCounter
		if err := m.objs.PlxCounters.Lookup(idx, &perCPU); err != nil {
			return nil, 0, fmt.Errorf("reading verdict counter %d: %w", idx, err)
		}
		var sum Counter
		for _, c := range perCPU {
			sum.Packets += c.Packets
			sum.Bytes += c.Bytes
		}
		if idx == eventKinds*2 {
			lost = sum.Packets
			continue
		}
		if sum.Packets > 0 {
			out[CounterKey{Kind: EventKind(idx / 2), Direction: Direction(idx % 2)}] = sum
		}
	}
	return out, lost, nil
}
