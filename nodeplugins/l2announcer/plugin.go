package l2announcer

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l2announcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l2announcements/status,verbs=get;update;patch

// Ready condition reasons.
const (
	ReasonAnnouncing = "Announcing"
	ReasonJoining    = "Joining"
	ReasonError      = "Error"
)

// CacheOptions restricts the manager's L2Announcement informer to this
// node's own object, so a node reads one object whatever the cluster size.
func CacheOptions(nodeName string) cache.Options {
	return nodeplugin.OwnObject(&nodesv1alpha1.L2Announcement{}, nodeName)
}

// Plugin connects an Announcer to the API server: it feeds it the node's
// L2Announcement and writes its Report into that object's status.
type Plugin struct {
	// Client reads from the manager's cache and writes status.
	Client    client.Client
	NodeName  string
	Announcer *Announcer
	// Coalesce: after a report changes, wait this long for more changes
	// before writing (a failover changes the report more than once).
	// Default 100 ms.
	Coalesce time.Duration

	writer  statuswrite.Writer
	trigger chan struct{}
}

// SetupWithManager registers the reconciler that feeds the spec, the status
// writer and the announcer itself with mgr.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	if p.Coalesce <= 0 {
		p.Coalesce = 100 * time.Millisecond
	}
	p.writer.Client = p.Client
	p.trigger = make(chan struct{}, 1)
	own := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == p.NodeName })
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("l2announcer").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		For(&nodesv1alpha1.L2Announcement{}, builder.WithPredicates(own)).
		Complete(reconcile.Func(p.reconcile)); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(p.Announcer.Run)); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(p.writeStatus))
}

// reconcile hands the cached spec to the announcer. Every event (status
// ones too: the cache then shows this plugin's own write) also wakes the
// status writer, which writes only if something differs.
func (p *Plugin) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var obj nodesv1alpha1.L2Announcement
	err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		// No policy selects this node: announce nothing.
		p.Announcer.SetDesired(Desired{})
	case err != nil:
		return reconcile.Result{}, err
	default:
		p.Announcer.SetDesired(Desired{Generation: obj.Generation, Spec: obj.Spec})
	}
	notify(p.trigger)
	return reconcile.Result{}, nil
}

// writeStatus writes the announcer's report into status, asynchronously and
// coalesced. Announcing never waits for it.
func (p *Plugin) writeStatus(ctx context.Context) error {
	return nodeplugin.WriteStatus(ctx, log.FromContext(ctx).WithName("status"), p.Coalesce, p.Announcer.Reports(), p.trigger, p.writeOnce)
}

func (p *Plugin) writeOnce(ctx context.Context) error {
	var obj nodesv1alpha1.L2Announcement
	if err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	rep := p.Announcer.Report()
	if rep.Generation == 0 {
		return nil // the announcer has not seen the spec yet: nothing to say
	}
	_, err := p.writer.Patch(ctx, &obj, func(o client.Object) {
		ApplyReport(&o.(*nodesv1alpha1.L2Announcement).Status, rep)
	})
	return err
}

// ApplyReport puts rep into status: the announced addresses (their start
// second: status holds seconds), live peers, counts and the Ready condition.
func ApplyReport(st *nodesv1alpha1.L2AnnouncementStatus, rep Report) {
	st.ObservedGeneration = rep.Generation
	st.AddressCount = int32(rep.AddressCount)
	st.LivePeers = rep.LivePeers
	st.Announcing = nil
	for _, a := range rep.Announcing {
		st.Announcing = append(st.Announcing, nodesv1alpha1.L2Announcing{
			IP: a.IP, Interfaces: a.Interfaces, Since: metav1.NewTime(a.Since.Truncate(time.Second)),
		})
	}
	summary := fmt.Sprintf("announcing %d of %d addresses; peers alive: %s", len(rep.Announcing), rep.AddressCount, describe(rep.LivePeers))
	c := metav1.Condition{Type: conditions.TypeReady, Status: metav1.ConditionTrue, Reason: ReasonAnnouncing, Message: summary}
	switch {
	case len(rep.Problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonError, strings.Join(rep.Problems, "; ")+"; "+summary
	case rep.Joining:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonJoining, "joining: this node counts itself alive once it has run for the rejoin time; "+summary
	}
	conditions.Set(&st.Conditions, rep.Generation, c)
}
