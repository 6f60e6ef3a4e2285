package attachment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
)

// Defaults of Config.
const (
	DefaultConcurrency    = 4
	DefaultTimeout        = 30 * time.Second
	DefaultReconcileGrace = time.Minute
)

// Config configures a Manager.
type Config struct {
	// StateDir holds one record per sandbox with attachments. Required.
	StateDir string
	// CacheDir is libcni's cache. It must belong to this Manager alone:
	// Reconcile deletes cached attachments it has no record of. Default
	// <StateDir>/cni-cache.
	CacheDir string
	// BinDirs are searched for plugin binaries, in order. Required.
	BinDirs []string
	// Concurrency bounds how many networks of one sandbox are added or
	// deleted at once. Default 4.
	Concurrency int
	// Timeout bounds one network's ADD or DEL. Default 30s.
	Timeout time.Duration
	// ReconcileGrace protects attachments this process made recently from
	// Reconcile: the caller's list of live sandboxes may predate them.
	// Default 1m; negative protects nothing. Records loaded at start are
	// never protected.
	ReconcileGrace time.Duration
	// Exec runs plugins; nil runs the real binaries.
	Exec invoke.Exec
	// Observer receives durations, errors and counts; nil ignores them.
	Observer Observer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NetworkSource is what a Manager needs of a network store; *catalog.Catalog is one.
type NetworkSource interface {
	// Lookup returns the network named name.
	Lookup(name string) (catalog.Network, bool)
	// Networks returns every known network.
	Networks() []catalog.Network
}

var _ NetworkSource = &catalog.Catalog{}

// Manager attaches networks to sandboxes and detaches them. Operations on
// one sandbox are serialized; different sandboxes proceed in parallel.
type Manager struct {
	cfg      Config
	networks NetworkSource
	cni      *libcni.CNIConfig
	obs      Observer
	now      func() time.Time

	// gcMu keeps GC apart from ADD and DEL: they hold it for reading
	// around each plugin call, GC holds it for writing.
	gcMu sync.RWMutex

	mu      sync.Mutex
	records map[string]*record
	locks   map[string]*sandboxLock
}

type sandboxLock struct {
	mu   sync.Mutex
	refs int
}

// NewManager returns a Manager for the networks of source, with the records
// found in cfg.StateDir (created if missing). Unreadable records are logged
// and skipped; they are not fatal.
func NewManager(source NetworkSource, cfg Config) (*Manager, error) {
	if source == nil {
		return nil, errors.New("network source: not set")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("state dir: not set")
	}
	if len(cfg.BinDirs) == 0 {
		return nil, errors.New("plugin bin dirs: not set")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.StateDir, "cni-cache")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ReconcileGrace == 0 {
		cfg.ReconcileGrace = DefaultReconcileGrace
	}
	if cfg.Exec == nil {
		cfg.Exec = cniexec.New(cniexec.Options{})
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BinDirs = slices.Clone(cfg.BinDirs)
	for _, dir := range []string{cfg.StateDir, cfg.CacheDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	records, errs := loadRecords(cfg.StateDir)
	for _, err := range errs {
		klog.Background().Error(err, "skipping unreadable attachment record")
	}
	if records == nil {
		records = map[string]*record{}
	}
	m := &Manager{
		cfg:      cfg,
		networks: source,
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, cfg.Exec),
		obs:      cfg.Observer,
		now:      cfg.Now,
		records:  records,
		locks:    map[string]*sandboxLock{},
	}
	m.mu.Lock()
	m.reportInUseLocked()
	m.mu.Unlock()
	return m, nil
}

// Attachments returns the sandbox's attachments: those recorded, with what
// their CNI results said once their ADD succeeded. It reads memory only.
func (m *Manager) Attachments(sandboxID string) []Attachment {
	m.mu.Lock()
	rec := m.records[sandboxID]
	m.mu.Unlock()
	if rec == nil {
		return nil
	}
	out := make([]Attachment, 0, len(rec.Attachments))
	for _, a := range rec.Attachments {
		out = append(out, a.attachment())
	}
	return out
}

// Sandboxes returns the IDs of the sandboxes with recorded attachments,
// sorted.
func (m *Manager) Sandboxes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.records))
	for id := range m.records {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// lockSandbox serializes the operations on one sandbox.
func (m *Manager) lockSandbox(id string) (unlock func()) {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &sandboxLock{}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
}

func (m *Manager) record(id string) *record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.records[id]
}

// save persists rec and makes it the sandbox's record. The caller holds
// the sandbox's lock.
func (m *Manager) save(rec *record) error {
	if err := writeRecord(m.cfg.StateDir, rec); err != nil {
		return fmt.Errorf("sandbox %s: write record: %w", rec.Pod.SandboxID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[rec.Pod.SandboxID] = rec
	m.reportInUseLocked()
	return nil
}

// forget removes the sandbox's record. The caller holds its lock.
func (m *Manager) forget(id string) error {
	if err := removeRecord(m.cfg.StateDir, id); err != nil {
		return fmt.Errorf("sandbox %s: remove record: %w", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, id)
	m.reportInUseLocked()
	return nil
}

// reportInUseLocked tells the observer the number of recorded attachments.
// It is called under m.mu so that concurrent changes report in order and
// the last report is the current count.
func (m *Manager) reportInUseLocked() {
	n := 0
	for _, r := range m.records {
		n += len(r.Attachments)
	}
	m.obs.AttachmentsInUse(n)
}
