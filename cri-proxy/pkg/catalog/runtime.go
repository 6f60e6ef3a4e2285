package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultHostLocalDataDir is host-local's dataDir when a config sets none.
const defaultHostLocalDataDir = "/var/lib/cni/networks"

// runtimeNetwork is a network of the runtime's own CNI conf dir: the pod's
// primary network (containerd uses the lexically first file; all are kept
// apart, as a runtime may be configured to load several).
type runtimeNetwork struct {
	name      string
	file      string
	leaseDirs []string
}

// runtimeNetworks reads the networks of the runtime's CNI conf dir. Files
// that do not parse are ignored: they are the runtime's to report.
func runtimeNetworks(dir string) []runtimeNetwork {
	if dir == "" {
		return nil
	}
	files, err := configFiles(dir, ".conf", ".conflist", ".json")
	if err != nil {
		return nil
	}
	var out []runtimeNetwork
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		list, err := ParseConfig(data)
		if err != nil {
			continue
		}
		out = append(out, runtimeNetwork{name: list.Name, file: f, leaseDirs: leaseDirs(list.Name, list.Bytes)})
	}
	return out
}

// leaseDirs returns the directories host-local keeps the network's leases
// in: <dataDir>/<network name> for every host-local IPAM in the list.
func leaseDirs(name string, conf []byte) []string {
	var list struct {
		Type    string `json:"type"`
		IPAM    ipam   `json:"ipam"`
		Plugins []struct {
			IPAM ipam `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(conf, &list) != nil {
		return nil
	}
	ipams := []ipam{list.IPAM}
	for _, p := range list.Plugins {
		ipams = append(ipams, p.IPAM)
	}
	var dirs []string
	for _, i := range ipams {
		if i.Type != "host-local" {
			continue
		}
		d := i.DataDir
		if d == "" {
			d = defaultHostLocalDataDir
		}
		dirs = append(dirs, filepath.Join(d, name))
	}
	return dirs
}

type ipam struct {
	Type    string `json:"type"`
	DataDir string `json:"dataDir"`
}

// collision tells why a network of the catalog must not be used next to
// the runtime's networks: CNI GC of a network releases every lease in its
// lease dir (recursively, for host-local) that is not a valid attachment
// of that network, so sharing a name or a lease dir with the pod's primary
// network would release the primary network's addresses of running pods.
func collision(name string, conf []byte, runtime []runtimeNetwork) error {
	own := leaseDirs(name, conf)
	for _, r := range runtime {
		if r.name == name {
			return fmt.Errorf("network %q: the runtime's network in %s has the same name; CNI GC of one would release the other's addresses", name, r.file)
		}
		for _, a := range own {
			for _, b := range r.leaseDirs {
				if a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/") {
					return fmt.Errorf("network %q: host-local lease dir %s overlaps %s of the runtime's network %q (%s); CNI GC would release its addresses", name, a, b, r.name, r.file)
				}
			}
		}
	}
	return nil
}
