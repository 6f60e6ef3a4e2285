package publish

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Nodes and Pods are the resources the publishers write, through the
// metadata client: only their metadata travels, and the proxy links none of
// client-go's typed API groups.
var (
	Nodes = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	Pods  = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// Node keeps the node annotation equal to the available networks: one PATCH
// per change, none at steady state.
type Node struct {
	client metadata.Interface
	name   string
	want   chan string
}

// NewNode returns a publisher for node name.
func NewNode(client metadata.Interface, name string) *Node {
	return &Node{client: client, name: name, want: make(chan string, 1)}
}

// Set records the available networks to publish; the latest call wins.
func (n *Node) Set(available []string) {
	v := netrequest.FormatNodeNetworks(available)
	for {
		select {
		case n.want <- v:
			return
		default:
			select { // replace an unpublished older value
			case <-n.want:
			default:
			}
		}
	}
}

// Run publishes until ctx ends, retrying with backoff while the API server
// is unreachable or the node is not registered yet.
func (n *Node) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("node", n.name)
	published, known := "", false
	var want string
	select {
	case want = <-n.want:
	case <-ctx.Done():
		return
	}
	backoff := 200 * time.Millisecond
	for {
		if !known || published != want {
			err := n.publish(ctx, want, &published, &known)
			if err == nil {
				backoff = 200 * time.Millisecond
			} else {
				logger.V(2).Info("publish node networks; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case w := <-n.want:
					want = w
				case <-ctx.Done():
					return
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
		}
		select {
		case want = <-n.want:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) publish(ctx context.Context, want string, published *string, known *bool) error {
	if !*known {
		node, err := n.client.Resource(Nodes).Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		*published, *known = node.Annotations[netrequest.AnnotationKey], true
		if *published == want {
			return nil
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{netrequest.AnnotationKey: want}}})
	if _, err := n.client.Resource(Nodes).Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		*known = false // re-read: someone else may have changed it
		return err
	}
	*published = want
	klog.FromContext(ctx).Info("published node networks", "node", n.name, "networks", want)
	return nil
}
