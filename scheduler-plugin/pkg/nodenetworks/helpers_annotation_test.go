//go:build !podnetworks_intree

package nodenetworks

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// annotatedPod asks for request in the annotation ("" none).
func annotatedPod(request string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u"}}
	if request != "" {
		p.Annotations = map[string]string{netrequest.AnnotationKey: request}
	}
	return p
}

// annotatedNode lists networks in the annotation ("-": no annotation).
func annotatedNode(name, networks string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if networks != "-" {
		n.Annotations = map[string]string{netrequest.AnnotationKey: networks}
	}
	return n
}

// newAnnotationPlugin makes the plugin as New does with default args and
// alwaysAvailable networks.
func newAnnotationPlugin(t testing.TB, always ...string) *Plugin {
	t.Helper()
	args := `{"alwaysAvailable": ["` + strings.Join(always, `", "`) + `"]}`
	if len(always) == 0 {
		args = `{}`
	}
	p, err := New(context.Background(), &runtime.Unknown{Raw: []byte(args), ContentType: runtime.ContentTypeJSON}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Plugin)
}
