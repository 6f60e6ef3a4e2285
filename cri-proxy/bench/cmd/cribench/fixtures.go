package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fixtures are the fake runtime's answers: sandboxes and containers shaped
// like the ones kubelet makes, with kubelet's io.kubernetes.* labels and
// annotations, so that the lists have realistic sizes.
type fixtures struct {
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
}

var (
	namespaces = []string{"default", "kube-system", "monitoring", "payments", "frontend", "batch-jobs"}
	apps       = []string{"web", "api-gateway", "checkout", "inventory", "redis-cache", "metrics-exporter", "log-shipper", "worker"}
	images     = []string{
		"registry.k8s.io/pause:3.10",
		"docker.io/library/nginx:1.27.3",
		"quay.io/prometheus/node-exporter:v1.8.2",
		"ghcr.io/example/checkout-service:v2.14.1",
		"registry.example.com/platform/inventory@sha256:4f1d9a5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
	}
)

// newFixtures makes sandboxes sandboxes and containers containers spread
// over them, deterministically.
func newFixtures(sandboxes, containers int) *fixtures {
	rng := rand.New(rand.NewPCG(1, 2))
	f := &fixtures{}
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	type pod struct{ name, ns, uid, app string }
	pods := make([]pod, sandboxes)
	for i := range sandboxes {
		app := apps[i%len(apps)]
		p := pod{
			name: fmt.Sprintf("%s-%s-%s", app, hexID(rng, 5), hexID(rng, 3)),
			ns:   namespaces[i%len(namespaces)],
			uid:  uuid(rng),
			app:  app,
		}
		pods[i] = p
		f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandbox{
			Id:        hexID(rng, 32),
			Metadata:  &runtimeapi.PodSandboxMetadata{Name: p.name, Uid: p.uid, Namespace: p.ns, Attempt: uint32(i % 2)},
			State:     runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: created + int64(i)*int64(time.Second),
			Labels: map[string]string{
				"io.kubernetes.pod.name":      p.name,
				"io.kubernetes.pod.namespace": p.ns,
				"io.kubernetes.pod.uid":       p.uid,
				"app.kubernetes.io/name":      app,
				"app.kubernetes.io/part-of":   "shop",
				"pod-template-hash":           hexID(rng, 5),
			},
			Annotations: map[string]string{
				"kubernetes.io/config.seen":   time.Unix(0, created).Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
				"kubernetes.io/config.source": "api",
				"prometheus.io/scrape":        "true",
				"prometheus.io/port":          "9090",
			},
		})
	}
	for i := range containers {
		sb := f.sandboxes[i%sandboxes]
		p := pods[i%sandboxes]
		name := fmt.Sprintf("%s-%d", p.app, i/sandboxes)
		image := images[i%len(images)]
		imageID := "sha256:" + hexID(rng, 32)
		f.containers = append(f.containers, &runtimeapi.Container{
			Id:           hexID(rng, 32),
			PodSandboxId: sb.Id,
			Metadata:     &runtimeapi.ContainerMetadata{Name: name, Attempt: uint32(i % 3)},
			Image:        &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: image},
			ImageRef:     imageID,
			ImageId:      imageID,
			State:        runtimeapi.ContainerState_CONTAINER_RUNNING,
			CreatedAt:    created + int64(i)*int64(time.Second),
			Labels: map[string]string{
				"io.kubernetes.container.name": name,
				"io.kubernetes.pod.name":       p.name,
				"io.kubernetes.pod.namespace":  p.ns,
				"io.kubernetes.pod.uid":        p.uid,
			},
			Annotations: map[string]string{
				"io.kubernetes.container.hash":                     hexID(rng, 4),
				"io.kubernetes.container.restartCount":             fmt.Sprint(i % 3),
				"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
				"io.kubernetes.container.terminationMessagePolicy": "File",
				"io.kubernetes.pod.terminationGracePeriod":         "30",
				"io.kubernetes.container.ports":                    `[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}]`,
			},
		})
	}
	return f
}

// hexID returns n random bytes in hex: 32 bytes make a container id.
func hexID(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func uuid(rng *rand.Rand) string {
	h := hexID(rng, 16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
