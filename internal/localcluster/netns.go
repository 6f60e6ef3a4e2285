package localcluster

import (
	"encoding/json"
	"errors"
)

// netnsFromInfo extracts the sandbox network namespace path from
// containerd's verbose PodSandboxStatus info["info"]. runtimeSpec may be
// null on non-verbose answers; host-network sandboxes have no path.
func netnsFromInfo(info string) (string, error) {
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
