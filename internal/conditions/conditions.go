// Package conditions sets metav1.Conditions the way every Plexus status does:
// a Ready condition in the kstatus convention beside feature conditions, each
// stamped with the generation it describes, and the transition time changed
// only when the status does (so a resync writes nothing).
package conditions

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	maxMessage = 4096
	truncated  = " …(truncated)"
)

// TypeReady is the kstatus readiness condition that Argo CD and Flux read.
const TypeReady = "Ready"

// Set puts c into conds for an object at generation and reports whether
// anything but the transition time changed.
func Set(conds *[]metav1.Condition, generation int64, c metav1.Condition) bool {
	c.ObservedGeneration = generation
	if len(c.Message) > maxMessage {
		// The API server refuses longer messages, and would refuse the
		// whole status with them.
		c.Message = strings.ToValidUTF8(c.Message[:maxMessage-len(truncated)], "") + truncated
	}
	return meta.SetStatusCondition(conds, c)
}

// Remove deletes the condition of type t and reports whether it was there.
func Remove(conds *[]metav1.Condition, t string) bool {
	return meta.RemoveStatusCondition(conds, t)
}

// Status turns a bool into a condition status.
func Status(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}
