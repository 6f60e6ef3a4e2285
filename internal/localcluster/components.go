package localcluster

import "context"

// component is one daemon of the cluster, in bring-up order: how to start
// it, when it is ready, and what to do once it is. Adding a component to
// the cluster is adding it to controlPlane or nodeComponents.
type component struct {
	daemon
	// ready is polled until it returns nil (or the daemon exits).
	ready func(context.Context) error
	// then, if set, runs once the component is ready, before the next one
	// starts (import images, install admission policies).
	then func(context.Context) error
	// needsAPI components start only once the apiserver is ready;
	// servesAPI marks the apiserver itself.
	needsAPI, servesAPI bool
	// step is the bring-up milestone logged once ready and then are done.
	step string
}

// controlPlane lists the control plane's components in start order.
func (l layout) controlPlane() []component {
	cs := []component{
		{daemon: l.etcd(), ready: l.etcdHealthy, step: "etcd healthy"},
		{daemon: l.apiserver(), ready: l.apiserverReady(), then: l.installAdmission, servesAPI: true, step: "kube-apiserver ready"},
		{daemon: l.controllerManager(), ready: l.healthz(l.opts.ControllerManagerPort), needsAPI: true, step: "kube-controller-manager healthy"},
		{daemon: l.scheduler(), ready: l.healthz(l.opts.SchedulerPort), needsAPI: true, step: "kube-scheduler healthy"},
	}
	return cs
}

// nodeComponents lists one node's components in start order.
func (l layout) nodeComponents(n Node) []component {
	cs := []component{{daemon: l.containerd(n), ready: l.containerdReady(n), then: l.importImages(n),
		step: n.Name + " containerd ready, images imported"}}
	if n.CRIProxy {
		cs = append(cs, component{daemon: l.criProxy(n), ready: l.proxyHealthy(n), step: n.Name + " cri-proxy healthy"})
	}
	return append(cs, component{daemon: l.kubelet(n), ready: l.kubeletHealthy(n), needsAPI: true, step: n.Name + " kubelet healthy"})
}
