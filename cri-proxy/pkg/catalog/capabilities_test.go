package catalog

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
)

func TestCatalogCapabilities(t *testing.T) {
	dir := t.TempDir()
	fakecni.WriteFile(t, dir, "blue.conflist", `{"cniVersion": "1.0.0", "name": "blue", "plugins": [
  {"type": "bridge", "capabilities": {"ips": true, "mac": false}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "tuning", "capabilities": {"mac": true, "ips": true}}]}`)
	fakecni.WriteFile(t, dir, "plain.json", `{"cniVersion": "1.0.0", "name": "plain", "type": "bridge", "capabilities": {"bandwidth": true}}`)
	fakecni.WriteFile(t, dir, "none.conflist", fakecni.ConflistWithCapabilities("none", "1.0.0", nil, "bridge"))
	s := newTestCatalog(t, dir, fakecni.New(), nil)
	s.Refresh(context.Background())

	for name, want := range map[string][]string{
		"blue":  {"ips", "mac", "portMappings"},
		"plain": {"bandwidth"},
		"none":  nil,
	} {
		n, ok := s.Lookup(name)
		if !ok || !slices.Equal(n.Capabilities, want) {
			t.Errorf("Lookup(%s).Capabilities = %q (found %v), want %q", name, n.Capabilities, ok, want)
		}
	}

	blue, _ := s.Lookup("blue")
	if err := blue.CheckCapabilities([]string{"ips", "mac", "portMappings"}); err != nil {
		t.Errorf("CheckCapabilities of declared ones: %v", err)
	}
	if err := blue.CheckCapabilities(nil); err != nil {
		t.Errorf("CheckCapabilities(nil): %v", err)
	}
	err := blue.CheckCapabilities([]string{"ips", "bandwidth", "portMappings", "infiniband"})
	for _, want := range []string{
		`network "blue" cannot honour "bandwidth": no plugin of its config declares the "bandwidth" capability`,
		`network "blue" cannot honour "infiniband"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckCapabilities error = %v, want it to contain %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), `"ips"`) || strings.Contains(err.Error(), `"portMappings"`)) {
		t.Errorf("CheckCapabilities error %q names a declared capability", err)
	}
}
