package policytest

import (
	"encoding/binary"
	"net/netip"
)

// Frame is an Ethernet/IPv4 packet of protocol proto (6, 17 or 132: their
// headers all start with the ports) from src:sport to dst:dport, a TCP
// one a SYN, for running the policy programs on with BPF_PROG_TEST_RUN.
func Frame(src, dst netip.Addr, proto uint8, sport, dport uint16) []byte {
	b := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8] = 64
	ip[9] = proto
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	l4 := ip[20:]
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	if proto == 6 {
		l4[12] = 5 << 4
		l4[13] = 0x02 // SYN
	}
	return b
}
