// Package criinfo reads what containerd puts in the verbose info of CRI
// answers, which CRI itself does not type.
package criinfo

import (
	"encoding/json"
	"errors"
)

// NetNSPath returns the sandbox network namespace path from containerd's
// verbose PodSandboxStatus info["info"]. runtimeSpec may be null even when
// the key is there (non-verbose answers); host-network sandboxes have no
// network namespace of their own, which is an error here.
func NetNSPath(info string) (string, error) {
	if info == "" {
		return "", errors.New("no verbose sandbox info from the runtime")
	}
	var v struct {
		RuntimeSpec *struct {
			Linux *struct {
				Namespaces []struct {
					Type string `json:"type"`
					Path string `json:"path"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return "", err
	}
	if v.RuntimeSpec == nil || v.RuntimeSpec.Linux == nil {
		return "", errors.New("sandbox info has no runtime spec")
	}
	for _, ns := range v.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			return ns.Path, nil
		}
	}
	return "", errors.New("sandbox has no network namespace of its own")
}
