package main

import (
	"slices"
	"strings"
	"testing"
)

func TestIDsInNames(t *testing.T) {
	fams := map[string]bool{"B": true, "L": true, "E": true}
	for name, want := range map[string][]string{
		"TestB8_B9_RoutesAndAttributes":   {"B8", "B9"},
		"TestFRR_B20_SessionAndRoutes":    {"B20"},
		"TestL28_to_L31_RequestedIPs":     {"L28", "L29", "L30", "L31"},
		"B20_MD5":                         {"B20"}, // MD is no family
		"TestE21E22GatewayPerPodByUID":    nil,     // IDs must stand as tokens
		"TestL15_to_L17_L40_Selectors":    {"L15", "L16", "L17", "L40"},
		"TestChartBGP":                    nil,
		"E4_E26_WithoutPolicyPodsLeave":   {"E4", "E26"},
		"TestV2alpha1Served":              nil,
		"TestB64_B7_B21_B65_PluginStatus": {"B64", "B7", "B21", "B65"},
	} {
		if got := idsIn(name, fams); !slices.Equal(got, want) {
			t.Errorf("idsIn(%s) = %v, want %v", name, got, want)
		}
	}
}

// The check catches each kind of drift, and passes a consistent set.
func TestCheck(t *testing.T) {
	rows := []row{
		{ids: []string{"B8"}, doc: "docs/bgp.md", line: 1, cites: []string{"TestB8_Session", "B8_E2E…"}},
		{ids: []string{"B9"}, doc: "docs/bgp.md", line: 2, cites: []string{"TestB8_Session"}}, // cites a test that does not name B9
		{ids: []string{"B10"}, doc: "docs/bgp.md", line: 3, cites: []string{"TestB10_Gone"}},  // no such test
	}
	tests := []test{
		{pkg: "a", name: "TestB8_Session", leaf: "TestB8_Session"},
		{pkg: "e2e", name: "TestBGP", leaf: "TestBGP"},
		{pkg: "e2e", name: "TestBGP/B8_E2ESession", leaf: "B8_E2ESession"},
		{pkg: "a", name: "TestB99_Unknown", leaf: "TestB99_Unknown"}, // carries a row no doc defines
	}
	index(rows, tests)
	problems := check(rows, tests)
	for _, want := range []string{"TestB99_Unknown: carries B99", "(B9): cites a TestB8_Session, whose name does not carry B9", "(B10): cites TestB10_Gone, which is no test"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("no problem %q in %q", want, problems)
		}
	}
	if len(problems) != 3 {
		t.Errorf("%d problems, want 3: %q", len(problems), problems)
	}
}
