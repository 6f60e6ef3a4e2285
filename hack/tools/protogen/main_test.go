package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegeneratesUpstream: run over the stock k8s.io/cri-api api.proto,
// protogen writes upstream's api.pb.go, but for the license header and the
// generator version lines.
func TestRegeneratesUpstream(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/cri-api").Output()
	if err != nil {
		t.Fatalf("go list k8s.io/cri-api: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "pkg", "apis", "runtime", "v1")
	const rel = "staging/src/k8s.io/cri-api/pkg/apis/runtime/v1"
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, rel), 0o755); err != nil {
		t.Fatal(err)
	}
	proto, err := os.ReadFile(filepath.Join(src, "api.proto"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, rel, "api.proto"), proto, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-I", tmp, rel + "/api.proto"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tmp, rel, "api.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "api.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	g, w := comparable(string(got)), comparable(string(want))
	if g != w {
		gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("generated code differs from upstream at line %d:\n got: %s\nwant: %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("generated code has %d lines, upstream %d", len(gl), len(wl))
	}
}

// comparable drops the license header and the generator versions.
func comparable(s string) string {
	if strings.HasPrefix(s, "/*") {
		s = s[strings.Index(s, "*/")+2:]
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimLeft(s, "\n"), "\n") {
		if strings.HasPrefix(l, "// \tprotoc-gen-go v") || strings.HasPrefix(l, "// \tprotoc ") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
