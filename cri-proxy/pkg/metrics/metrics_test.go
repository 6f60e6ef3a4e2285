package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// The method label takes CRI's methods and one value for everything else,
// however many distinct names clients send.
func TestMethodLabelIsBounded(t *testing.T) {
	for method, want := range map[string]string{
		"/runtime.v1.RuntimeService/RunPodSandbox":       "/runtime.v1.RuntimeService/RunPodSandbox",
		"/runtime.v1.RuntimeService/GetContainerEvents":  "/runtime.v1.RuntimeService/GetContainerEvents",
		"/runtime.v1.ImageService/PullImage":             "/runtime.v1.ImageService/PullImage",
		"/runtime.v1.RuntimeService/NoSuchMethod":        OtherMethod,
		"/grpc.health.v1.Health/Check":                   OtherMethod,
		"/runtime.v1alpha2.RuntimeService/RunPodSandbox": OtherMethod,
	} {
		if got := MethodLabel(method); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", method, got, want)
		}
	}
	m := New()
	for i := range 1000 {
		m.ObserveRPC(fmt.Sprintf("/x.y%d/Z", i), time.Millisecond, codes.Unimplemented)
	}
	m.ObserveRPC("/runtime.v1.RuntimeService/Version", time.Millisecond, codes.OK)
	rec := httptest.NewRecorder()
	m.Handler(func() error { return nil }).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	var series []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "cri_proxy_rpc_duration_seconds_count") {
			series = append(series, l)
		}
	}
	want := []string{
		`cri_proxy_rpc_duration_seconds_count{code="OK",method="/runtime.v1.RuntimeService/Version"} 1`,
		`cri_proxy_rpc_duration_seconds_count{code="Unimplemented",method="other"} 1000`,
	}
	if strings.Join(series, "\n") != strings.Join(want, "\n") {
		t.Errorf("series:\n%s\nwant:\n%s", strings.Join(series, "\n"), strings.Join(want, "\n"))
	}
}
