package l2announcer

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/l2announce"
)

func TestApplyReportWritesTheSameStatusForTheSameReport(t *testing.T) {
	since := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
	rep := l2announce.Report{
		Generation: 3, AddressCount: 2, LivePeers: []string{"a", "b"},
		Announcing: []l2announce.AnnouncingAddress{{IP: "10.0.0.1", Interfaces: []string{"eth0"}, Since: since}},
	}
	var st nodesv1alpha1.L2AnnouncementStatus
	ApplyReport(&st, rep)
	ready := st.Conditions[0]
	if ready.Status != metav1.ConditionTrue || ready.Message != "announcing 1 of 2 addresses; peers alive: a, b" || ready.ObservedGeneration != 3 {
		t.Errorf("Ready %+v", ready)
	}
	if !st.Announcing[0].Since.Time.Equal(since.Truncate(time.Second)) {
		t.Errorf("since %v, want whole seconds (status holds seconds, or every pass would differ)", st.Announcing[0].Since)
	}
	before := *st.DeepCopy()
	ApplyReport(&st, rep)
	if !reflect.DeepEqual(before, st) {
		t.Error("applying the same report again changed the status")
	}

	rep.Problems = []string{"address 10.0.0.2: no interface matches ^x$ (interfaces with IPv4: eth0)"}
	ApplyReport(&st, rep)
	if c := st.Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != l2announce.ReasonError || !strings.HasPrefix(c.Message, rep.Problems[0]) {
		t.Errorf("Ready with a problem: %+v", c)
	}
	rep.Problems, rep.Joining = nil, true
	ApplyReport(&st, rep)
	if c := st.Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != l2announce.ReasonJoining {
		t.Errorf("Ready while joining: %+v", c)
	}
}
