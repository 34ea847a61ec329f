package l2announcer

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/l2announce"
	"github.com/plexus-net/plexus/internal/nodeplugin"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l2announcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l2announcements/status,verbs=get;update;patch

// ReasonAnnouncing is the Ready reason of a node that does what its
// L2Announcement says (the other reasons are l2announce's).
const ReasonAnnouncing = "Announcing"

// Plugin connects an Announcer to the API server: it feeds it the node's
// L2Announcement and writes its Report into that object's status.
type Plugin struct {
	// Client reads from the manager's cache and writes status.
	Client    client.Client
	NodeName  string
	Announcer *l2announce.Announcer
	// Coalesce: after a report changes, wait this long for more changes
	// before writing (a failover changes the report more than once).
	// Default 100 ms.
	Coalesce time.Duration
}

// SetupWithManager registers the spec feed, the announcer and the status
// writer with mgr. Announcing never waits for the status writes.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	w := &nodeplugin.Wiring[nodesv1alpha1.L2Announcement, *nodesv1alpha1.L2Announcement]{
		Name: "l2announcer", Client: p.Client, NodeName: p.NodeName, Coalesce: p.Coalesce,
		Feed: func(a *nodesv1alpha1.L2Announcement) {
			if a == nil {
				p.Announcer.SetDesired(l2announce.Desired{}) // no policy selects this node: announce nothing
				return
			}
			p.Announcer.SetDesired(l2announce.Desired{Generation: a.Generation, Spec: a.Spec})
		},
		Run: p.Announcer.Run, Reports: p.Announcer.Reports(),
		HasReport: func() bool { return p.Announcer.Report().Generation != 0 },
		Status:    func(a *nodesv1alpha1.L2Announcement) { ApplyReport(&a.Status, p.Announcer.Report()) },
	}
	return w.SetupWithManager(mgr)
}

// ApplyReport puts rep into status: the announced addresses (their start
// second: status holds seconds), live peers, counts and the Ready condition.
func ApplyReport(st *nodesv1alpha1.L2AnnouncementStatus, rep l2announce.Report) {
	st.ObservedGeneration = rep.Generation
	st.AddressCount = int32(rep.AddressCount)
	st.LivePeers = rep.LivePeers
	st.Announcing = nil
	for _, a := range rep.Announcing {
		st.Announcing = append(st.Announcing, nodesv1alpha1.L2Announcing{
			IP: a.IP, Interfaces: a.Interfaces, Since: metav1.NewTime(a.Since.Truncate(time.Second)),
		})
	}
	peers := "none"
	if len(rep.LivePeers) > 0 {
		peers = strings.Join(rep.LivePeers, ", ")
	}
	summary := fmt.Sprintf("announcing %d of %d addresses; peers alive: %s", len(rep.Announcing), rep.AddressCount, peers)
	conditions.Set(&st.Conditions, rep.Generation, l2announce.ReadyCondition(rep.Problems, rep.Joining, ReasonAnnouncing, summary))
}
