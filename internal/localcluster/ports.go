package localcluster

import (
	"errors"
	"fmt"
	"net"
)

// ports lists every TCP port the cluster listens on, with its user.
func (l layout) ports() map[int]string {
	o := l.opts
	p := map[int]string{
		o.EtcdPort:              "etcd client",
		o.EtcdPort + 1:          "etcd peer",
		o.APIServerPort:         "kube-apiserver",
		o.ControllerManagerPort: "kube-controller-manager",
		o.SchedulerPort:         "kube-scheduler",
	}
	for _, n := range l.nodes {
		p[n.KubeletPort] = n.Name + " kubelet"
		p[n.HealthzPort] = n.Name + " kubelet healthz"
		if n.CRIProxy {
			p[n.ProxyPort] = n.Name + " cri-proxy metrics"
		}
	}
	return p
}

// checkPorts fails, naming each one, if a port the cluster needs is taken.
func (l layout) checkPorts() error {
	var errs []error
	for port, user := range l.ports() {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			errs = append(errs, fmt.Errorf("port %d (%s) is in use", port, user))
			continue
		}
		ln.Close()
	}
	return errors.Join(errs...)
}
