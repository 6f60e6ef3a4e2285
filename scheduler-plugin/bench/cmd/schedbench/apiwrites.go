package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// writes counts the apiserver's write requests (apiserver_request_total,
// verbs POST, PUT, PATCH, APPLY and DELETE) by "verb resource[/subresource]".
// Leases are left out: the apiserver's own heartbeat, not the pods'.
type writes map[string]float64

func scrapeWrites(ctx context.Context, cs kubernetes.Interface) (writes, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("apiserver metrics: %w", err)
	}
	return parseWrites(raw)
}

// parseWrites reads the write counters from the apiserver's /metrics text.
func parseWrites(raw []byte) (writes, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("apiserver metrics: %w", err)
	}
	w := writes{}
	fam := fams["apiserver_request_total"]
	if fam == nil {
		return nil, fmt.Errorf("apiserver metrics: no apiserver_request_total")
	}
	for _, m := range fam.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		switch l["verb"] {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE":
		default:
			continue
		}
		if l["resource"] == "leases" {
			continue
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		w[key] += m.GetCounter().GetValue()
	}
	return w, nil
}

// settledWrites scrapes until two scrapes a second apart agree, so that
// writes a round caused late (events, a controller's status patch) count.
func settledWrites(ctx context.Context, cs kubernetes.Interface) (writes, error) {
	var last writes
	err := poll.Until(ctx, time.Second, 30*time.Second, func(ctx context.Context) error {
		w, err := scrapeWrites(ctx, cs)
		if err != nil {
			return poll.Fatal(err)
		}
		same := last != nil && maps.Equal(w, last)
		last = w
		if !same {
			return fmt.Errorf("writes still changing")
		}
		return nil
	})
	return last, err
}

// sub returns w - before.
func (w writes) sub(before writes) writes {
	d := writes{}
	for k, v := range w {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

func (w writes) add(o writes) {
	for k, v := range o {
		w[k] += v
	}
}

// perPod formats the writes divided by pods, largest first, and their sum.
func (w writes) perPod(pods int) (string, float64) {
	keys := slices.Collect(maps.Keys(w))
	slices.SortFunc(keys, func(a, b string) int {
		if w[a] != w[b] {
			if w[a] > w[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	var total float64
	for _, k := range keys {
		v := w[k] / float64(pods)
		total += v
		parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
	}
	return strings.Join(parts, ", "), total
}

// objectsPerPod counts the objects created (POST on a resource, not a
// subresource: bindings are not stored objects) per pod.
func (w writes) objectsPerPod(pods int) float64 {
	var n float64
	for k, v := range w {
		if strings.HasPrefix(k, "POST ") && !strings.Contains(k, "/") {
			n += v
		}
	}
	return n / float64(pods)
}
