// Package metrics holds the CRI proxy's Prometheus metrics and its single
// per-RPC instrumentation point (latency metric and log line), so the RPC
// handlers stay free of bookkeeping.
package metrics
