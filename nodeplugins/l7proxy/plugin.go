package l7proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	corev1 "k8s.io/api/core/v1"

	ciliumv2 "github.com/plexus-net/plexus/apis/cilium/v2"
	nodesv1alpha1 "github.com/plexus-net/plexus/apis/nodes/v1alpha1"
	"github.com/plexus-net/plexus/internal/conditions"
	"github.com/plexus-net/plexus/internal/nodeplugin"
	"github.com/plexus-net/plexus/internal/statuswrite"
)

// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l7proxies,verbs=get;list;watch
// +kubebuilder:rbac:groups=nodes.plexus.dev,resources=l7proxies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cilium.io,resources=ciliumenvoyconfigs;ciliumclusterwideenvoyconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=cilium-secrets,resources=secrets,verbs=get;list;watch

// Ready reasons of an L7Proxy.
const (
	ReasonServing      = "Serving"
	ReasonNotConnected = "ProxyNotConnected"
	ReasonProgressing  = "Progressing"
	ReasonNotServed    = "ConfigsNotServed"
	// ReasonFrontendsNotTaken: the node cannot redirect its frontends'
	// connections to its proxy (they still arrive through the Service).
	ReasonFrontendsNotTaken = "FrontendsNotTaken"
)

// FrontendTable takes the connections to the frontends into the node's
// proxy (frontends.Table on a node).
type FrontendTable interface {
	Apply([]nodesv1alpha1.L7Frontend) error
}

// Plugin connects a Server to the API server.
type Plugin struct {
	Client   client.Client
	NodeName string
	// SecretsNamespace is the one namespace whose Secrets are read.
	SecretsNamespace string
	Server           *Server
	// StatePath, if set, keeps the last accepted snapshot across restarts.
	StatePath string
	// Frontends, if set, is given the node's frontends on every change.
	Frontends FrontendTable

	builder   Builder
	mu        sync.Mutex
	buildErrs map[nodesv1alpha1.EnvoyConfigRef]string
	// frontendErr is why the frontends could not be applied ("" when
	// they were).
	frontendErr string
	saved       string
	trigger     chan struct{}
	writer      statuswrite.Writer
}

// SetupWithManager serves the saved snapshot (if any) and registers the
// rebuild on every change of the node's L7Proxy, the configs and the
// secrets, and the status writer.
func (p *Plugin) SetupWithManager(mgr ctrl.Manager) error {
	if p.StatePath != "" {
		snap, ok, err := loadState(p.StatePath)
		if err != nil {
			ctrl.Log.Info("ignoring the state file", "error", err.Error())
		} else if ok {
			if err := p.Server.Set(context.Background(), snap); err != nil {
				return err
			}
			p.saved = snap.Version
		}
	}
	p.trigger = make(chan struct{}, 1)
	p.writer.Client = p.Client
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: p.NodeName}}}
	})
	own := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == p.NodeName })
	secrets := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == p.SecretsNamespace })
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("l7proxy").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&nodesv1alpha1.L7Proxy{}, all, builder.WithPredicates(own)).
		Watches(&ciliumv2.CiliumEnvoyConfig{}, all).
		Watches(&ciliumv2.CiliumClusterwideEnvoyConfig{}, all).
		Watches(&corev1.Secret{}, all, builder.WithPredicates(secrets)).
		Complete(reconcile.Func(p.rebuild)); err != nil {
		return err
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return nodeplugin.WriteStatus(ctx, log.FromContext(ctx).WithName("status"), 100*time.Millisecond, p.Server.Changes(), p.trigger, p.writeStatus)
	}))
}

// rebuild reads the node's configs and serves what they make.
func (p *Plugin) rebuild(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var lp nodesv1alpha1.L7Proxy
	if err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &lp); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	var configs []Config
	for _, ref := range lp.Spec.Configs {
		c, err := p.config(ctx, ref)
		if apierrors.IsNotFound(err) {
			continue // listed before it exists: nothing to serve yet
		}
		if err != nil {
			return reconcile.Result{}, err
		}
		configs = append(configs, c)
	}
	var secrets corev1.SecretList
	if err := p.Client.List(ctx, &secrets, client.InNamespace(p.SecretsNamespace)); err != nil {
		return reconcile.Result{}, err
	}
	snap, errs := p.builder.Build(configs, secrets.Items)
	var frontErr error
	if p.Frontends != nil {
		frontErr = p.Frontends.Apply(lp.Spec.Frontends)
	}
	p.mu.Lock()
	p.buildErrs = errs
	p.frontendErr = ""
	if frontErr != nil {
		p.frontendErr = frontErr.Error()
	}
	p.mu.Unlock()
	if err := p.Server.Set(ctx, snap); err != nil {
		return reconcile.Result{}, err
	}
	select {
	case p.trigger <- struct{}{}:
	default:
	}
	if frontErr != nil {
		return reconcile.Result{}, fmt.Errorf("taking in the frontends: %w", frontErr) // retried with backoff
	}
	return reconcile.Result{}, nil
}

func (p *Plugin) config(ctx context.Context, ref nodesv1alpha1.EnvoyConfigRef) (Config, error) {
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	if ref.Kind == "CiliumClusterwideEnvoyConfig" {
		var c ciliumv2.CiliumClusterwideEnvoyConfig
		if err := p.Client.Get(ctx, key, &c); err != nil {
			return Config{}, err
		}
		return Config{Ref: ref, Generation: c.Generation, Resources: c.Spec.Resources}, nil
	}
	var c ciliumv2.CiliumEnvoyConfig
	if err := p.Client.Get(ctx, key, &c); err != nil {
		return Config{}, err
	}
	return Config{Ref: ref, Generation: c.Generation, Resources: c.Spec.Resources}, nil
}

// writeStatus writes the report into the node's L7Proxy, and keeps the
// accepted snapshot in the state file.
func (p *Plugin) writeStatus(ctx context.Context) error {
	if snap, ok := p.Server.accepted(); ok && p.StatePath != "" && snap.Version != p.saved {
		if err := saveState(p.StatePath, snap); err != nil {
			log.FromContext(ctx).Info("cannot keep the accepted snapshot", "error", err.Error())
		} else {
			p.saved = snap.Version
		}
	}
	var lp nodesv1alpha1.L7Proxy
	if err := p.Client.Get(ctx, client.ObjectKey{Name: p.NodeName}, &lp); err != nil {
		return client.IgnoreNotFound(err)
	}
	p.mu.Lock()
	errs, frontErr := p.buildErrs, p.frontendErr
	p.mu.Unlock()
	rep := p.Server.Report()
	_, err := p.writer.Patch(ctx, &lp, func(o client.Object) { ApplyReport(o.(*nodesv1alpha1.L7Proxy), rep, errs, frontErr) })
	return err
}

// ApplyReport puts what the proxy has into an L7Proxy's status;
// frontendErr is why the node could not take in its frontends ("": it
// did).
func ApplyReport(lp *nodesv1alpha1.L7Proxy, rep Report, buildErrs map[nodesv1alpha1.EnvoyConfigRef]string, frontendErr string) {
	st := &lp.Status
	st.ObservedGeneration = lp.Generation
	st.ConfigCount = int32(len(lp.Spec.Configs)) //nolint:gosec // a list length
	st.Version = rep.Version
	st.Configs = nil
	var problems []string
	served := 0
	for _, ref := range lp.Spec.Configs {
		s := nodesv1alpha1.EnvoyConfigServed{EnvoyConfigRef: ref, Generation: rep.Generations[ref]}
		if e := buildErrs[ref]; e != "" {
			s.Error = e
		} else if e := rep.Refused[ref]; e != "" {
			s.Error = e
		}
		if s.Error != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", ref, s.Error))
		} else if s.Generation > 0 {
			served++
		}
		st.Configs = append(st.Configs, s)
	}
	slices.Sort(problems)
	c := metav1.Condition{Type: conditions.TypeReady}
	switch {
	case len(problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonNotServed, strings.Join(problems, "; ")
	case frontendErr != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonFrontendsNotTaken,
			"Connections to the load-balancer addresses reach the proxy only through the Service (clients' addresses may be lost): "+frontendErr
	case !rep.Connected:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonNotConnected, "No proxy is connected to this node's xDS server"
	case served < len(lp.Spec.Configs):
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonProgressing, fmt.Sprintf("The proxy acknowledged %d of %d configs", served, len(lp.Spec.Configs))
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, ReasonServing, fmt.Sprintf("The proxy serves %d configs (version %s)", served, rep.Version)
	}
	conditions.Set(&st.Conditions, lp.Generation, c)
}
