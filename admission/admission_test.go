package admission

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestObjects checks what the manifests hold, in apply order: a changed
// file must still give the CRD first and the proxies no more than they use.
func TestObjects(t *testing.T) {
	objs, err := Objects()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := []string{
		"CustomResourceDefinition/networks.networking.x-k8s.io",
		"ClusterRole/pod-networks:cri-proxy",
		"ClusterRoleBinding/pod-networks:cri-proxy",
		"ValidatingAdmissionPolicy/pod-networks-cri-proxy",
		"ValidatingAdmissionPolicyBinding/pod-networks-cri-proxy",
		"ValidatingAdmissionPolicy/pod-networks-access",
		"ValidatingAdmissionPolicyBinding/pod-networks-access",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("objects:\n got %q\nwant %q", got, want)
	}
	// The proxy reads and patches its Node and patches pods' metadata:
	// nothing else.
	rules, _, _ := unstructured.NestedSlice(objs[1].Object, "rules")
	var grants []string
	for _, r := range rules {
		r := r.(map[string]any)
		for _, res := range r["resources"].([]any) {
			for _, v := range r["verbs"].([]any) {
				grants = append(grants, res.(string)+":"+v.(string))
			}
		}
	}
	if want := []string{"nodes:get", "nodes:patch", "pods:patch"}; !slices.Equal(grants, want) {
		t.Errorf("ClusterRole grants %q, want %q", grants, want)
	}
	for _, o := range objs {
		if o.GetKind() != "ValidatingAdmissionPolicy" {
			continue
		}
		if fp, _, _ := unstructured.NestedString(o.Object, "spec", "failurePolicy"); fp != "Fail" {
			t.Errorf("%s: failurePolicy %q, want Fail (an error must refuse, not admit)", o.GetName(), fp)
		}
	}
}
