package main

import (
	"maps"
	"testing"
)

const sampleMetrics = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 99
apiserver_request_total{code="200",component="apiserver",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",group="resource.k8s.io",resource="resourceclaims",scope="resource",subresource="status",verb="PUT",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",group="resource.k8s.io",resource="resourceclaims",scope="resource",subresource="",verb="POST",version="v1"} 10
`

func TestParseWrites(t *testing.T) {
	w, err := parseWrites([]byte(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	want := writes{"POST pods": 10, "POST pods/binding": 11, "PUT resourceclaims/status": 10, "POST resourceclaims": 10}
	if !maps.Equal(w, want) {
		t.Errorf("parseWrites = %v, want %v (reads and leases left out, codes summed)", w, want)
	}
	before := writes{"POST pods": 4, "POST pods/binding": 5, "PUT resourceclaims/status": 10}
	d := w.sub(before)
	if want := (writes{"POST pods": 6, "POST pods/binding": 6, "POST resourceclaims": 10}); !maps.Equal(d, want) {
		t.Errorf("sub = %v, want %v (unchanged counters dropped)", d, want)
	}
	detail, total := d.perPod(2)
	if total != 11 || detail != "POST resourceclaims 5.00, POST pods 3.00, POST pods/binding 3.00" {
		t.Errorf("perPod(2) = %q, %v", detail, total)
	}
	if got := d.objectsPerPod(2); got != 8 { // pods and claims, not bindings
		t.Errorf("objectsPerPod(2) = %v, want 8", got)
	}
}

func TestParseWritesNeedsTheCounter(t *testing.T) {
	if _, err := parseWrites([]byte("# nothing here\n")); err == nil {
		t.Fatal("no error without apiserver_request_total")
	}
}
