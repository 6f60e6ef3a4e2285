//go:build !podnetworks_native && !podnetworks_intree

package nodenetworks

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The stock build: pods and nodes use the annotation.

const readFrom = "annotation " + netrequest.AnnotationKey

const wantNodeEvents = fwk.Add | fwk.UpdateNodeAnnotation

func podWith(request string) *v1.Pod { return annotatedPod(request) }

func nodeWith(name, networks string) *v1.Node { return annotatedNode(name, networks) }

func newTestPlugin(t testing.TB, always ...string) *Plugin {
	t.Helper()
	return newAnnotationPlugin(t, always...)
}
