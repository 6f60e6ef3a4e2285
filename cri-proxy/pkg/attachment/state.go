package attachment

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/utils"
	"github.com/google/renameio/v2"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// recordVersion is the version of the record format.
const recordVersion = 1

// recordState is where a sandbox's attachments are in their life.
type recordState string

const (
	// stateAttaching: the ADDs may be running. On load this means the
	// process that ran them died: the record is treated as detaching.
	stateAttaching recordState = "attaching"
	// stateAttached: every ADD succeeded.
	stateAttached recordState = "attached"
	// stateDetaching: the attachments are to be deleted; those listed
	// failed to delete so far (or were never tried).
	stateDetaching recordState = "detaching"
)

// record is what is known of one sandbox's attachments, persisted as
// <StateDir>/<sandboxID>.json before the first ADD so that a process killed
// at any point can DEL later with the very config it used. Records in the
// Manager's map are never modified: changes replace them.
type record struct {
	Version     int                  `json:"version"`
	Pod         PodRef               `json:"pod"`
	NetNS       string               `json:"netns"`
	State       recordState          `json:"state"`
	Attachments []recordedAttachment `json:"attachments"`

	// created is when this process created the record; zero for records
	// loaded from disk.
	created time.Time
}

// recordedAttachment is one network of a record. The request's keys are
// all optional, so records written before a key existed still load.
type recordedAttachment struct {
	Network   string `json:"network"`
	Interface string `json:"interface"`
	// IPs, MAC, PortMappings and Bandwidth are the request's capability
	// args, passed again on DEL (portmap and bandwidth undo what they
	// name).
	IPs          []string                 `json:"ips,omitempty"`
	MAC          string                   `json:"mac,omitempty"`
	PortMappings []netrequest.PortMapping `json:"portMappings,omitempty"`
	Bandwidth    *netrequest.Bandwidth    `json:"bandwidth,omitempty"`
	// DefaultRoute and CNIArgs are the request's, kept to tell a repeated
	// request from another one; CNIArgs is merged into Config already.
	DefaultRoute []string        `json:"defaultRoute,omitempty"`
	CNIArgs      json.RawMessage `json:"cniArgs,omitempty"`
	// Config is the exact config list ADD was given: the network's, with
	// CNIArgs merged into every plugin's args.cni.
	Config []byte `json:"config"`
	// Result is set once the ADD succeeded.
	Result *Attachment `json:"result,omitempty"`
}

func (a recordedAttachment) request() Request {
	return Request{Name: a.Network, Interface: a.Interface, IPs: a.IPs, MAC: a.MAC, DefaultRoute: a.DefaultRoute,
		CNIArgs: a.CNIArgs, PortMappings: a.PortMappings, Bandwidth: a.Bandwidth}
}

// attachment returns what the CNI result said, or the bare network and
// interface while the ADD has not succeeded.
func (a recordedAttachment) attachment() Attachment {
	if a.Result != nil {
		r := *a.Result
		r.IPs = slices.Clone(r.IPs)
		r.Gateways = slices.Clone(r.Gateways)
		return r
	}
	return Attachment{Network: a.Network, Interface: a.Interface}
}

// clone returns a copy whose attachment slice may be changed.
func (r *record) clone() *record {
	c := *r
	c.Attachments = slices.Clone(r.Attachments)
	return &c
}

// recordFile returns the path of a sandbox's record.
func recordFile(dir, sandboxID string) string {
	return filepath.Join(dir, sandboxID+".json")
}

// writeRecord persists rec atomically and durably.
func writeRecord(dir string, rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileDurable(recordFile(dir, rec.Pod.SandboxID), data)
}

// writeFileDurable writes path so that a crash leaves either the old file
// or the new one, and the new one is on disk when it returns.
func writeFileDurable(path string, data []byte) error {
	dir := filepath.Dir(path)
	// The temporary goes next to path, not to os.TempDir: the rename stays
	// on one file system and isTempFile finds what a crash leaves.
	if err := renameio.WriteFile(path, data, 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	// renameio does not fsync the directory: a crash could lose the rename.
	return syncDir(dir)
}

// isTempFile reports whether name is the temporary of an interrupted
// write: renameio's ".<name><random digits>", or ".<name>.<random>.tmp" of
// versions before it.
func isTempFile(name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	if strings.HasSuffix(name, ".tmp") {
		return true
	}
	i := strings.LastIndex(name, ".json")
	if i < 1 {
		return false
	}
	digits := name[i+len(".json"):]
	return digits != "" && strings.Trim(digits, "0123456789") == ""
}

// removeRecord deletes a sandbox's record; a missing one is not an error.
func removeRecord(dir, sandboxID string) error {
	return removeFile(recordFile(dir, sandboxID))
}

// removeFile removes path durably; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadRecords reads every record in dir. Unreadable records are returned as
// errors and skipped; temporaries of interrupted writes are removed.
// Records of sandboxes whose ADDs were interrupted come back detaching.
func loadRecords(dir string) (map[string]*record, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("state dir %s: %w", dir, err)}
	}
	records := map[string]*record{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() {
			continue
		}
		if isTempFile(name) {
			_ = os.Remove(path)
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		rec, err := readRecord(path, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", path, err))
			continue
		}
		records[id] = rec
	}
	return records, errs
}

func readRecord(path, sandboxID string) (*record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, err
	}
	switch {
	case rec.Version != recordVersion:
		return nil, fmt.Errorf("unknown version %d", rec.Version)
	case rec.Pod.SandboxID != sandboxID:
		return nil, fmt.Errorf("sandbox %q does not match the file name", rec.Pod.SandboxID)
	}
	if err := utils.ValidateContainerID(sandboxID); err != nil {
		return nil, err
	}
	for i, a := range rec.Attachments {
		if len(a.Config) == 0 {
			return nil, fmt.Errorf("attachment %d (%s): no config", i, a.Interface)
		}
	}
	if rec.State != stateAttached {
		rec.State = stateDetaching
	}
	return &rec, nil
}
