//go:build !podnetworks_intree

package nodenetworks

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Args are the plugin's arguments (pluginConfig.args of a
// KubeSchedulerConfiguration profile).
type Args struct {
	// PodAnnotation is the pod annotation that lists the networks a pod
	// asks for. Default networking.x-k8s.io/networks.
	PodAnnotation string `json:"podAnnotation,omitempty"`
	// NodeAnnotation is the node annotation that lists the networks a node
	// has. Default networking.x-k8s.io/networks.
	NodeAnnotation string `json:"nodeAnnotation,omitempty"`
	// AlwaysAvailable are networks every node is assumed to have: a pod
	// asking only for these is not filtered.
	AlwaysAvailable []string `json:"alwaysAvailable,omitempty"`
}

// decodeArgs reads args from the scheduler configuration, defaults and
// validates them.
func decodeArgs(obj runtime.Object) (Args, error) {
	var a Args
	if err := frameworkruntime.DecodeInto(obj, &a); err != nil {
		return Args{}, fmt.Errorf("%s args: %w", Name, err)
	}
	a.Default()
	if err := a.Validate(); err != nil {
		return Args{}, fmt.Errorf("%s args: %w", Name, err)
	}
	return a, nil
}

// Default fills the annotation keys that are empty.
func (a *Args) Default() {
	if a.PodAnnotation == "" {
		a.PodAnnotation = netrequest.AnnotationKey
	}
	if a.NodeAnnotation == "" {
		a.NodeAnnotation = netrequest.AnnotationKey
	}
}

// Validate reports every invalid field: the annotation keys must be
// qualified names, and AlwaysAvailable network names DNS-1123 labels,
// without duplicates.
func (a *Args) Validate() error {
	var errs []error
	for field, key := range map[string]string{"podAnnotation": a.PodAnnotation, "nodeAnnotation": a.NodeAnnotation} {
		if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: %q: %s", field, key, msgs[0]))
		}
	}
	for i, n := range a.AlwaysAvailable {
		if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("alwaysAvailable[%d]: %q: %s", i, n, msgs[0]))
		} else if slices.Index(a.AlwaysAvailable, n) < i {
			errs = append(errs, fmt.Errorf("alwaysAvailable[%d]: %q: duplicate", i, n))
		}
	}
	slices.SortFunc(errs, func(x, y error) int {
		if x.Error() < y.Error() {
			return -1
		}
		return 1
	})
	return errors.Join(errs...)
}
