package intercept

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/crifields"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// requestedNetworks returns what the pod asked for: the native CRI field
// (PodSandboxConfig field 10, name and interface only) when present, else
// the annotation, with every NPWG key netrequest accepts (ips, mac,
// default-route, cni-args, portMappings, bandwidth). Requests are validated
// and interfaces assigned before any file is looked up. Errors are not
// bounded: callers bound what they return.
func requestedNetworks(cfg *runtimeapi.PodSandboxConfig) ([]attachment.Request, error) {
	var reqs []netrequest.Request
	nets, present, err := crifields.SandboxNetworks(cfg)
	switch {
	case err != nil:
		return nil, fmt.Errorf("PodSandboxConfig.networks: %w", err)
	case present:
		for _, n := range nets {
			reqs = append(reqs, netrequest.Request{Name: n.Name, Interface: n.InterfaceName})
		}
	default:
		if reqs, err = netrequest.ParseAnnotation(cfg.GetAnnotations()[netrequest.AnnotationKey]); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", netrequest.AnnotationKey, err)
		}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	if err := netrequest.Validate(reqs); err != nil {
		return nil, err
	}
	out := make([]attachment.Request, 0, len(reqs))
	for _, r := range netrequest.AssignInterfaces(reqs) {
		out = append(out, attachment.Request{
			Name:         r.Name,
			Interface:    r.Interface,
			IPs:          r.IPs,
			MAC:          r.MAC,
			DefaultRoute: r.DefaultRoute,
			CNIArgs:      r.CNIArgs,
			PortMappings: r.PortMappings,
			Bandwidth:    r.Bandwidth,
		})
	}
	return out, nil
}
