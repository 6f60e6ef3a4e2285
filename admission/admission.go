package admission

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// Files are the manifests in the order they must be applied: the CRD before
// the policy whose parameters are its objects.
var Files = []string{"network-crd.yaml", "cri-proxy-policy.yaml", "network-access-policy.yaml"}

//go:embed *.yaml
var manifests embed.FS

// FieldManager is the server-side apply field manager of Install.
const FieldManager = "pod-networks-admission"

// NetworkResource is the resource of the Network objects.
var NetworkResource = schema.GroupVersionResource{Group: "networking.x-k8s.io", Version: "v1alpha1", Resource: "networks"}

// Objects returns the objects of every file of Files, in order.
func Objects() ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range Files {
		b, err := manifests.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, &u)
			}
		}
	}
	return objs, nil
}

// Install applies every object of Objects to the cluster of cfg, with
// server-side apply (so it also updates an older install), and waits for
// the Network CRD to be established before applying the policies.
func Install(ctx context.Context, cfg *rest.Config) error {
	objs, err := Objects()
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		if gvk.Kind == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, dyn, o.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitEstablished waits until the CRD name serves its resource.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	return poll.Until(ctx, 100*time.Millisecond, 30*time.Second, func(ctx context.Context) error {
		crd, err := dyn.Resource(crds).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("CRD %s: not found", name)
			}
			return fmt.Errorf("CRD %s: %w", name, err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			c, _ := c.(map[string]any)
			if c["type"] == "Established" && c["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("CRD %s: not established", name)
	})
}
