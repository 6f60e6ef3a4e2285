package attachment

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/utils"
)

// intentVersion is the version of the intent file format.
const intentVersion = 1

// Intent is the durable note, written before a RunPodSandbox that asks for
// networks is forwarded, that the runtime may make a sandbox for the pod's
// UID and attempt whose networks must be attached. The runtime does not
// keep the CRI field that carried the request (containerd stores sandbox
// metadata as JSON and drops unknown fields), so after a crash or an
// interrupted call this note is how Reconcile recognises such a sandbox
// and stops it: kubelet then makes a new one, which gets its networks.
//
// An Intent is settled once the call's outcome is known (the sandbox has
// every network, or it was never made or is removed again) and abandoned
// when it is not (the call was cancelled, or the runtime's answer was
// lost); Reconcile settles abandoned intents and those left by an earlier
// process.
type Intent struct {
	m       *Manager
	file    string
	Pod     PodRef    `json:"pod"`
	Version int       `json:"version"`
	Nets    []string  `json:"networks"`
	Created time.Time `json:"created"`
	// inFlight: the RunPodSandbox of this process is still running. Guarded
	// by m.mu.
	inFlight bool
}

// Intend records, durably, that pod's sandbox is about to be made with the
// networks of reqs. pod needs a UID (its SandboxID is not known yet); a
// second call for the same UID and attempt while the first is in flight
// fails.
func (m *Manager) Intend(pod PodRef, reqs []Request) (*Intent, error) {
	if err := utils.ValidateContainerID(pod.UID); err != nil {
		return nil, fmt.Errorf("pod %s: uid %q: %w", pod, pod.UID, err)
	}
	pod.SandboxID = ""
	in := &Intent{m: m, file: intentFile(m.cfg.StateDir, pod.key()), Pod: pod, Version: intentVersion,
		Created: m.now(), inFlight: true}
	for _, r := range reqs {
		in.Nets = append(in.Nets, r.Name)
	}
	m.mu.Lock()
	if old := m.intents[pod.key()]; old != nil && old.inFlight {
		m.mu.Unlock()
		return nil, fmt.Errorf("pod %s: a sandbox for attempt %d is being made already", pod, pod.Attempt)
	}
	m.intents[pod.key()] = in
	m.mu.Unlock()

	data, err := json.Marshal(in)
	if err == nil {
		err = writeFileDurable(in.file, data)
	}
	if err != nil {
		m.mu.Lock()
		if m.intents[pod.key()] == in {
			delete(m.intents, pod.key())
		}
		m.mu.Unlock()
		return nil, fmt.Errorf("pod %s: write intent: %w", pod, err)
	}
	return in, nil
}

// Settle forgets the intent: the call's outcome is known.
func (in *Intent) Settle() error {
	m := in.m
	m.mu.Lock()
	mine := m.intents[in.Pod.key()] == in
	if mine {
		delete(m.intents, in.Pod.key())
	}
	m.mu.Unlock()
	if !mine {
		return nil // replaced by a newer call for the same attempt
	}
	if err := removeFile(in.file); err != nil {
		return fmt.Errorf("pod %s: remove intent: %w", in.Pod, err)
	}
	return nil
}

// Abandon leaves the intent to Reconcile: the call ended without knowing
// whether the runtime made the sandbox. It asks for a Reconcile soon.
func (in *Intent) Abandon() {
	in.m.mu.Lock()
	in.inFlight = false
	in.m.mu.Unlock()
	in.m.kickReconcile()
}

// intentDir holds the intents of a state dir.
func intentDir(stateDir string) string { return filepath.Join(stateDir, "intents") }

// intentFile is <StateDir>/intents/<uid>_<attempt>.json.
func intentFile(stateDir string, k sandboxKey) string {
	return filepath.Join(intentDir(stateDir), k.uid+"_"+strconv.FormatUint(uint64(k.attempt), 10)+".json")
}

// loadIntents reads the intents an earlier process left. Unreadable ones
// are returned as errors and removed: the CreateContainer check of the
// proxy does not depend on them.
func loadIntents(stateDir string) (map[sandboxKey]*Intent, []error) {
	dir := intentDir(stateDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return map[sandboxKey]*Intent{}, []error{fmt.Errorf("intents dir %s: %w", dir, err)}
	}
	out := map[sandboxKey]*Intent{}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if isTempFile(e.Name()) {
			_ = os.Remove(path)
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
			continue
		}
		in, err := readIntent(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("intent %s: %w", path, err))
			_ = os.Remove(path)
			continue
		}
		out[in.Pod.key()] = in
	}
	return out, errs
}

func readIntent(path string) (*Intent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	in := &Intent{file: path}
	if err := json.Unmarshal(data, in); err != nil {
		return nil, err
	}
	switch {
	case in.Version != intentVersion:
		return nil, fmt.Errorf("unknown version %d", in.Version)
	case path != intentFile(filepath.Dir(filepath.Dir(path)), in.Pod.key()):
		return nil, errors.New("pod uid and attempt do not match the file name")
	}
	in.Nets = slices.Clip(in.Nets)
	return in, nil
}
