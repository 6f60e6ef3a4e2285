package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The DRA arm's objects: a driver publishing each node's networks as
// devices, the class of those devices, and the claim template pods name.
const (
	draDriver      = "networks.x-k8s.io"
	draClass       = "network.networks.x-k8s.io"
	draTemplate    = "network-x"
	draClaimName   = "net"     // the pod's name for its claim
	draAttrNetwork = "network" // device attribute: the network's name
)

// nodeNetworks are the networks of node i: a and b everywhere, x on every
// (100/withPercent)th node.
func nodeNetworks(o options, i int) []string {
	if i%(100/o.withPercent) == 0 {
		return []string{"a", "b", "x"}
	}
	return []string{"a", "b"}
}

// createNodes makes the fake nodes: networks in status.networks (native),
// a label on those with x (selector), and, when withSlices, one
// ResourceSlice per node with a device per network (dra).
func createNodes(ctx context.Context, cs kubernetes.Interface, o options, withSlices bool) error {
	return parallel(ctx, o.nodes, 32, func(i int) error {
		name := fmt.Sprintf("fake-%05d", i)
		networks := nodeNetworks(o, i)
		if _, err := create(ctx, cs, "nodes", "", benchNode(name, networks), func(obj map[string]any) {
			obj["status"].(map[string]any)["networks"] = networks
		}, "status", "networks"); err != nil {
			return err
		}
		if !withSlices {
			return nil
		}
		_, err := cs.ResourceV1().ResourceSlices().Create(ctx, networkSlice(name, networks), metav1.CreateOptions{})
		return err
	})
}

func benchNode(name string, networks []string) *corev1.Node {
	list := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "fake"}},
		Status: corev1.NodeStatus{
			Allocatable: list, Capacity: list,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			// As a patched kubelet with the gate on declares it: pods
			// with spec.networks need it (NodeDeclaredFeatures).
			DeclaredFeatures: []string{"PodNetworks"},
		},
	}
	if slices.Contains(networks, "x") {
		n.Labels[labelX] = "true"
	}
	return n
}

// networkSlice is what a DRA driver for networks would publish for a node:
// one pool, one device per network, each allocatable to any number of
// claims at once (DRAConsumableCapacity, beta and on since 1.36), since a
// network is shared by every pod of the node that asks for it.
func networkSlice(node string, networks []string) *resourcev1.ResourceSlice {
	s := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-networks"},
		Spec: resourcev1.ResourceSliceSpec{
			Driver:   draDriver,
			Pool:     resourcev1.ResourcePool{Name: node, Generation: 1, ResourceSliceCount: 1},
			NodeName: ptr.To(node),
		},
	}
	for _, n := range networks {
		s.Spec.Devices = append(s.Spec.Devices, resourcev1.Device{
			Name:                     n,
			Attributes:               map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{draAttrNetwork: {StringValue: ptr.To(n)}},
			AllowMultipleAllocations: ptr.To(true),
		})
	}
	return s
}

// createDRAObjects makes the DeviceClass of the networks' devices and the
// claim template asking for network x in namespace ns.
func createDRAObjects(ctx context.Context, cs kubernetes.Interface, ns string) error {
	class := &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: draClass},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{
			CEL: &resourcev1.CELDeviceSelector{Expression: fmt.Sprintf("device.driver == %q", draDriver)},
		}}},
	}
	if _, err := cs.ResourceV1().DeviceClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("device class %s: %w", draClass, err)
	}
	tmpl := &resourcev1.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: draTemplate, Namespace: ns},
		Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{
			Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
				Name: "x",
				Exactly: &resourcev1.ExactDeviceRequest{
					DeviceClassName: draClass,
					Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
						Expression: fmt.Sprintf("device.attributes[%q].%s == \"x\"", draDriver, draAttrNetwork),
					}}},
				},
			}}},
		}},
	}
	if _, err := cs.ResourceV1().ResourceClaimTemplates(ns).Create(ctx, tmpl, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("claim template %s: %w", draTemplate, err)
	}
	return nil
}

// draPod makes a pod use the template: one claim, used by its container.
func draPod(pod map[string]any) {
	spec := pod["spec"].(map[string]any)
	spec["resourceClaims"] = []map[string]any{{"name": draClaimName, "resourceClaimTemplateName": draTemplate}}
	c := spec["containers"].([]any)[0].(map[string]any)
	c["resources"].(map[string]any)["claims"] = []map[string]any{{"name": draClaimName}}
}

// create posts obj as JSON, changed by edit, and checks that the stored
// object still has the field at path: the apiserver drops the native
// fields when it is not the patched one or the gate is off.
func create(ctx context.Context, cs kubernetes.Interface, resource, namespace string, obj any, edit func(map[string]any), path ...string) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		return nil, err
	}
	req := cs.CoreV1().RESTClient().Post().Resource(resource).Body(b)
	if namespace != "" {
		req = req.Namespace(namespace)
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, err
	}
	v := any(stored)
	for _, k := range path {
		if mm, ok := v.(map[string]any); ok {
			v = mm[k]
		} else {
			v = nil
		}
	}
	if len(path) > 0 && v == nil {
		return nil, fmt.Errorf("%s: %v was dropped: is the apiserver patched, with PodNetworks=true?", resource, path)
	}
	return stored, nil
}
