package attachment

import (
	"context"
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
	DefaultConcurrency = 4
	DefaultTimeout     = 30 * time.Second
	// DefaultIntentTTL is how long the runtime is given to finish the
	// sandbox of an interrupted RunPodSandbox (its caller is gone, so it
	// gives up on the first step that checks). A sandbox that appears
	// later is still refused by Admit when kubelet creates a container.
	DefaultIntentTTL = time.Minute
)

// Config configures a Manager.
type Config struct {
	// StateDir holds one record per sandbox with attachments, and the
	// intents (StateDir/intents). Required.
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
	// IntentTTL is how long an intent whose sandbox never appeared is kept
	// (measured from its creation to the time of a Reconcile's list).
	// Default 1m.
	IntentTTL time.Duration
	// Runtime stops sandboxes that must not run without their networks.
	// Required.
	Runtime Runtime
	// Exec runs plugins; nil runs the real binaries.
	Exec invoke.Exec
	// Observer receives durations, errors and counts; nil ignores them.
	Observer Observer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Runtime is what a Manager asks of the container runtime.
type Runtime interface {
	// StopSandbox stops a sandbox: its containers and its network
	// namespace. Kubelet then makes the pod a new sandbox.
	StopSandbox(ctx context.Context, sandboxID string) error
}

// NetworkSource is what a Manager needs of a network store; *catalog.Catalog is one.
type NetworkSource interface {
	// Lookup returns the network named name.
	Lookup(name string) (catalog.Network, bool)
	// Networks returns every known network.
	Networks() []catalog.Network
}

var _ NetworkSource = &catalog.Catalog{}

// Manager attaches networks to sandboxes and detaches them, and makes sure
// no sandbox runs containers without the networks its pod asked for.
// Operations on one sandbox are serialized; different sandboxes proceed in
// parallel.
type Manager struct {
	cfg      Config
	networks NetworkSource
	cni      *libcni.CNIConfig
	obs      Observer
	now      func() time.Time
	runtime  Runtime
	// kick asks the caller's reconcile loop for a Reconcile soon.
	kick chan struct{}

	// gcMu keeps GC apart from ADD and DEL: they hold it for reading
	// around each plugin call, GC holds it for writing.
	gcMu sync.RWMutex

	mu      sync.Mutex
	records map[string]*record
	intents map[sandboxKey]*Intent
	locks   map[string]*sandboxLock
}

// sandboxLock is a mutex that a waiter can give up on (a channel of one).
type sandboxLock struct {
	ch   chan struct{}
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
	if cfg.IntentTTL <= 0 {
		cfg.IntentTTL = DefaultIntentTTL
	}
	if cfg.Runtime == nil {
		return nil, errors.New("runtime: not set")
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
	for _, dir := range []string{cfg.StateDir, cfg.CacheDir, intentDir(cfg.StateDir)} {
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
	intents, errs := loadIntents(cfg.StateDir)
	for _, err := range errs {
		klog.Background().Error(err, "skipping unreadable intent")
	}
	m := &Manager{
		cfg:      cfg,
		networks: source,
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, cfg.Exec),
		obs:      cfg.Observer,
		now:      cfg.Now,
		runtime:  cfg.Runtime,
		kick:     make(chan struct{}, 1),
		records:  records,
		intents:  intents,
		locks:    map[string]*sandboxLock{},
	}
	for _, in := range intents {
		in.m = m
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

// Kicked receives when the Manager wants a Reconcile soon: an outcome it
// could not settle on the call's path (an interrupted RunPodSandbox, a
// failed DEL) waits for one.
func (m *Manager) Kicked() <-chan struct{} { return m.kick }

func (m *Manager) kickReconcile() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// lockSandbox serializes the operations on one sandbox. It gives up when
// ctx ends first.
func (m *Manager) lockSandbox(ctx context.Context, id string) (unlock func(), err error) {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &sandboxLock{ch: make(chan struct{}, 1)}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	release := func() {
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("sandbox %s: waiting for another operation on it: %w", id, ctx.Err())
	}
	return func() {
		<-l.ch
		release()
	}, nil
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
