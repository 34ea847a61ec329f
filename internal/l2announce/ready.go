package l2announce

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-net/plexus/internal/conditions"
)

// Ready condition reasons of a per-node object whose addresses an Announcer
// moves.
const (
	ReasonJoining = "Joining"
	ReasonError   = "Error"
)

// ReadyCondition is the Ready condition of a node whose addresses an
// Announcer moves: False with the problems when there are any, False while
// the node is joining (it announces nothing until it counts itself alive),
// else True with reason okReason. summary says what the node does; every
// message ends with it.
func ReadyCondition(problems []string, joining bool, okReason, summary string) metav1.Condition {
	c := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: okReason, Message: summary}
	switch {
	case len(problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonError, strings.Join(problems, "; ")+"; "+summary
	case joining:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonJoining, "joining: this node counts itself alive once it has run for the rejoin time; "+summary
	}
	return c
}
