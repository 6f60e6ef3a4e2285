package localcluster

import (
	"context"
	"fmt"

	"sigs.k8s.io/pod-networks/admission"
)

// proxyGroup is the group of the CRI proxies' client certificates, which
// admission/cri-proxy-policy.yaml grants and restricts; their user names are
// system:pod-networks:cri-proxy:<node>.
const proxyGroup = "pod-networks:cri-proxies"

// installAdmission installs the manifests of package admission: the Network
// CRD and its access policy, and the CRI proxies' RBAC and policy.
func (l layout) installAdmission(ctx context.Context) error {
	cfg, err := l.restConfig()
	if err != nil {
		return err
	}
	if err := admission.Install(ctx, cfg); err != nil {
		return fmt.Errorf("install admission policies: %w", err)
	}
	return nil
}
