package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// histo is a histogram's cumulative sum (seconds) and count.
type histo struct {
	sum   float64
	count uint64
}

func (h histo) sub(before histo) histo { return histo{h.sum - before.sum, h.count - before.count} }

// proxyMetrics is what startupbench reads of the node's CRI proxy /metrics.
// They are cumulative: the difference of two scrapes around one pod, with
// no other pod on the node, is that pod's.
type proxyMetrics struct {
	runSandbox      histo // cri_proxy_rpc_duration_seconds, RunPodSandbox, every code
	createContainer histo // ... CreateContainer
	startContainer  histo // ... StartContainer
	attach          histo // cri_proxy_attach_duration_seconds, every network
	attachFailures  float64
}

func (m proxyMetrics) sub(before proxyMetrics) proxyMetrics {
	return proxyMetrics{
		runSandbox:      m.runSandbox.sub(before.runSandbox),
		createContainer: m.createContainer.sub(before.createContainer),
		startContainer:  m.startContainer.sub(before.startContainer),
		attach:          m.attach.sub(before.attach),
		attachFailures:  m.attachFailures - before.attachFailures,
	}
}

const runtimeService = "/runtime.v1.RuntimeService/"

// scrapeProxy reads the proxy's /metrics at addr (host:port).
func scrapeProxy(ctx context.Context, client *http.Client, addr string) (proxyMetrics, error) {
	var m proxyMetrics
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return m, fmt.Errorf("cri-proxy metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("cri-proxy metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return m, fmt.Errorf("cri-proxy metrics: %w", err)
	}
	// A vector has no series until its first observation: absent is zero.
	for _, s := range fams["cri_proxy_rpc_duration_seconds"].GetMetric() {
		var h *histo
		for _, l := range s.GetLabel() {
			if l.GetName() != "method" {
				continue
			}
			switch l.GetValue() {
			case runtimeService + "RunPodSandbox":
				h = &m.runSandbox
			case runtimeService + "CreateContainer":
				h = &m.createContainer
			case runtimeService + "StartContainer":
				h = &m.startContainer
			}
		}
		if h != nil {
			h.sum += s.GetHistogram().GetSampleSum()
			h.count += s.GetHistogram().GetSampleCount()
		}
	}
	for _, s := range fams["cri_proxy_attach_duration_seconds"].GetMetric() {
		m.attach.sum += s.GetHistogram().GetSampleSum()
		m.attach.count += s.GetHistogram().GetSampleCount()
	}
	for _, s := range fams["cri_proxy_attach_failures_total"].GetMetric() {
		m.attachFailures += s.GetCounter().GetValue()
	}
	return m, nil
}
