package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// numNetworks is how many networks the sandboxes of the memory and attach
// benchmarks ask for.
const numNetworks = 4

// hostNetworks is the node side of the benchmark's networks: a bridge link
// (the macvlan master), numNetworks macvlan network config lists in a
// networks dir, with host-local IPAM keeping its leases in a temporary
// dataDir, and the network namespaces made for sandboxes. Every name
// starts with the run's tag, so that leftovers can be told apart.
type hostNetworks struct {
	tag     string
	master  string
	dir     string // the networks dir (-networks-dir)
	ipamDir string // host-local's dataDir
	names   []string
}

// setupHostNetworks creates the master link and the network files under
// work. cleanup undoes it, whatever was done.
func setupHostNetworks(work, tag string) (*hostNetworks, error) {
	h := &hostNetworks{tag: tag, master: tag + "m", dir: filepath.Join(work, "networks"), ipamDir: filepath.Join(work, "ipam")}
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		return h, err
	}
	if err := ip("link", "add", h.master, "type", "bridge"); err != nil {
		return h, err
	}
	if err := ip("link", "set", h.master, "up"); err != nil {
		return h, err
	}
	for i := 1; i <= numNetworks; i++ {
		name := fmt.Sprintf("bench%d", i)
		conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": %q, "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge",
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.254.%d.0/24"}]], "dataDir": %q}}]}`, name, h.master, i, h.ipamDir)
		if err := os.WriteFile(filepath.Join(h.dir, name+".conflist"), []byte(conf), 0o644); err != nil {
			return h, err
		}
		h.names = append(h.names, name)
	}
	return h, nil
}

// addNetns creates the network namespace /run/netns/<tag><name>.
func (h *hostNetworks) addNetns(name string) (string, error) {
	ns := h.tag + name
	if err := ip("netns", "add", ns); err != nil {
		return "", err
	}
	return filepath.Join("/run/netns", ns), nil
}

// leases returns the addresses host-local still holds, per network.
func (h *hostNetworks) leases() (map[string]int, error) {
	held := map[string]int{}
	for _, n := range h.names {
		entries, err := os.ReadDir(filepath.Join(h.ipamDir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if net.ParseIP(e.Name()) != nil {
				held[n]++
			}
		}
	}
	return held, nil
}

// cleanup deletes the run's network namespaces and links.
func (h *hostNetworks) cleanup() error {
	var errs []error
	namespaces, links, err := leftovers(h.tag)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		errs = append(errs, ip("netns", "del", ns))
	}
	for _, l := range links {
		errs = append(errs, ip("link", "del", l))
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
