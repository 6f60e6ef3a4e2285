package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Metrics are the proxy's metrics, in their own registry.
type Metrics struct {
	reg            *prometheus.Registry
	forward        *prometheus.HistogramVec
	attach, detach *prometheus.HistogramVec
	attachFailed   *prometheus.CounterVec
	detachFailed   *prometheus.CounterVec
	inUse          prometheus.Gauge
	configErrors   *prometheus.CounterVec
}

// New registers the metrics.
func New() *Metrics {
	buckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		forward: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cri_proxy_rpc_duration_seconds", Help: "CRI call latency through the proxy, by method and gRPC code.", Buckets: buckets,
		}, []string{"method", "code"}),
		attach: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cri_proxy_attach_duration_seconds", Help: "CNI ADD of one network, by network.", Buckets: buckets,
		}, []string{"network"}),
		detach: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cri_proxy_detach_duration_seconds", Help: "CNI DEL of one network, by network.", Buckets: buckets,
		}, []string{"network"}),
		attachFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_proxy_attach_failures_total", Help: "Failed CNI ADDs, by network.",
		}, []string{"network"}),
		detachFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_proxy_detach_failures_total", Help: "Failed CNI DELs, by network.",
		}, []string{"network"}),
		inUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cri_proxy_attachments", Help: "Network attachments in use on this node.",
		}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_proxy_network_config_errors_total", Help: "Invalid network config files seen, by file.",
		}, []string{"file"}),
	}
	m.reg.MustRegister(m.forward, m.attach, m.detach, m.attachFailed, m.detachFailed, m.inUse, m.configErrors,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// quiet lists the calls kubelet makes every few seconds: logged at -v=6.
var quiet = []string{"/List", "/Status", "/Version", "/ImageFsInfo", "/PodSandboxStatus", "/ContainerStatus",
	"/ContainerStats", "/PodSandboxStats", "/Stream", "/ImageStatus", "/RuntimeConfig", "/GetContainerEvents"}

// OtherMethod is the method label of calls to methods CRI does not define:
// the label's values stay bounded whatever clients call.
const OtherMethod = "other"

// criMethods are the full names of the methods of CRI v1's services, as
// the cri-api module this proxy is built with defines them.
var criMethods = func() map[string]bool {
	out := map[string]bool{}
	services := runtimeapi.File_staging_src_k8s_io_cri_api_pkg_apis_runtime_v1_api_proto.Services()
	for i := range services.Len() {
		s := services.Get(i)
		for j := range s.Methods().Len() {
			out["/"+string(s.FullName())+"/"+string(s.Methods().Get(j).Name())] = true
		}
	}
	return out
}()

// MethodLabel is the method label of a call: its full name if CRI defines
// it, else OtherMethod.
func MethodLabel(method string) string {
	if criMethods[method] {
		return method
	}
	return OtherMethod
}

// ObserveRPC records one forwarded call: the single instrumentation point.
func (m *Metrics) ObserveRPC(method string, d time.Duration, code codes.Code) {
	m.forward.WithLabelValues(MethodLabel(method), code.String()).Observe(d.Seconds())
	level := klog.Level(2)
	for _, q := range quiet {
		if strings.Contains(method, q) {
			level = 6
			break
		}
	}
	if klog.V(level).Enabled() {
		klog.V(level).InfoS("CRI call", "method", method, "code", code, "duration", d)
	}
}

// AttachDone records one network's ADD.
func (m *Metrics) AttachDone(network string, d time.Duration, err error) {
	m.attach.WithLabelValues(network).Observe(d.Seconds())
	if err != nil {
		m.attachFailed.WithLabelValues(network).Inc()
	}
}

// DetachDone records one network's DEL.
func (m *Metrics) DetachDone(network string, d time.Duration, err error) {
	m.detach.WithLabelValues(network).Observe(d.Seconds())
	if err != nil {
		m.detachFailed.WithLabelValues(network).Inc()
	}
}

// ConfigError records an invalid network config file and logs it.
func (m *Metrics) ConfigError(file string, err error) {
	m.configErrors.WithLabelValues(file).Inc()
	klog.ErrorS(err, "invalid network config skipped", "file", file)
}

// AttachmentsInUse sets the number of attachments in use.
func (m *Metrics) AttachmentsInUse(n int) { m.inUse.Set(float64(n)) }

// Handler serves /metrics, and /healthz from healthy.
func (m *Metrics) Handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}
