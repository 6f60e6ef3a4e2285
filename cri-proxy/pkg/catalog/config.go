package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/apimachinery/pkg/util/validation"
)

// configExtensions are the file name extensions of network config lists.
var configExtensions = []string{".conflist", ".json"}

// configFiles returns the files in dir with one of the extensions,
// lexically sorted. Hidden files (editors' and atomic writers'
// temporaries) are ignored. A missing dir has no files.
func configFiles(dir string, extensions ...string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("networks dir %s: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		for _, ext := range extensions {
			if strings.HasSuffix(name, ext) {
				files = append(files, filepath.Join(dir, name))
				break
			}
		}
	}
	return files, nil
}

// loadConfigFile reads and validates one network config list. A plain
// plugin config in a .json file is accepted as a one-plugin list. The
// returned list's Bytes are the bytes Attach records and ADD uses.
func loadConfigFile(file string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data)
}

// ParseConfig parses and validates a network config list.
func ParseConfig(data []byte) (*libcni.NetworkConfigList, error) {
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	if len(list.Plugins) == 0 {
		var top map[string]interface{}
		if err := json.Unmarshal(data, &top); err == nil && top["type"] != nil && top["plugins"] == nil {
			plugin, err := libcni.NetworkPluginConfFromBytes(data)
			if err != nil {
				return nil, err
			}
			if list, err = libcni.ConfListFromConf(plugin); err != nil {
				return nil, err
			}
		}
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network %q: no plugins", list.Name)
	}
	if errs := validation.IsDNS1123Label(list.Name); len(errs) > 0 {
		return nil, fmt.Errorf("network name %q is not a DNS-1123 label: %s", list.Name, strings.Join(errs, "; "))
	}
	if list.CNIVersion != "" {
		if _, _, _, err := version.ParseVersion(list.CNIVersion); err != nil {
			return nil, fmt.Errorf("network %q: cniVersion: %w", list.Name, err)
		}
	}
	for i, p := range list.Plugins {
		if p.Network.Type == "" {
			return nil, fmt.Errorf("network %q: plugin %d: no type", list.Name, i)
		}
	}
	return list, nil
}

// pluginBinaries returns the plugin and IPAM plugin types list runs, in
// order, without duplicates.
func pluginBinaries(list *libcni.NetworkConfigList) []string {
	var bins []string
	seen := map[string]bool{}
	for _, p := range list.Plugins {
		for _, t := range []string{p.Network.Type, p.Network.IPAM.Type} {
			if t != "" && !seen[t] {
				seen[t] = true
				bins = append(bins, t)
			}
		}
	}
	return bins
}

// SupportsStatusAndGC tells whether cniVersion supports STATUS and GC.
func SupportsStatusAndGC(cniVersion string) bool {
	ok, err := version.GreaterThanOrEqualTo(cniVersion, "1.1.0")
	return err == nil && ok
}
