package catalog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
)

// Defaults of Config.
const (
	DefaultResyncInterval = 30 * time.Second
	DefaultStatusTimeout  = 10 * time.Second
	// statusConcurrency bounds the STATUS calls of one refresh.
	statusConcurrency = 4
)

// Config configures a Catalog.
type Config struct {
	// Dir holds the node's network config lists (*.conflist, *.json). It
	// must not be containerd's CNI conf dir. It may not exist yet.
	Dir string
	// RuntimeConfDir is the runtime's (containerd's) CNI conf dir, whose
	// networks are the pods' primary network. A network of Dir that shares
	// a name or a host-local lease dir with one of them is refused: CNI GC
	// of one would release the other's addresses. Empty: not checked.
	RuntimeConfDir string
	// BinDirs are searched for plugin binaries, in order.
	BinDirs []string
	// ResyncInterval is how often availability is re-checked besides on
	// file events (plugin binaries appearing, STATUS changing). Default 30s.
	ResyncInterval time.Duration
	// StatusTimeout bounds one network's CNI STATUS call. Default 10s.
	StatusTimeout time.Duration
	// Exec runs plugins; nil runs the real binaries.
	Exec invoke.Exec
	// Observer receives ConfigError for every skipped file; nil ignores.
	Observer Observer
}

// Network is one network of a Catalog.
type Network struct {
	// Name is the config list's name.
	Name string
	// File is the config list's file.
	File string
	// CNIVersion is the config list's cniVersion.
	CNIVersion string
	// Bytes are the file's contents: what ADD is given. Do not modify.
	Bytes []byte
	// Plugins are the binaries the list runs (plugin and IPAM types).
	Plugins []string
	// Capabilities are the CNI capabilities ("ips", "mac", "portMappings",
	// "bandwidth", ...) some plugin of the list declares, sorted: the
	// capability args a request for this network can use. Do not modify.
	Capabilities []string
	// Available tells whether every plugin binary exists and, for
	// cniVersion 1.1.0 and later, CNI STATUS succeeded.
	Available bool
	// Err says why the network is not available.
	Err error
}

// Catalog is a node's networks: the valid config lists of a directory, and
// which of them are available. Available, Lookup and Networks are in-memory
// reads that never touch the disk or run a plugin; Start keeps the view
// current in the background.
type Catalog struct {
	dir           string
	runtimeDir    string
	binDirs       []string
	resync        time.Duration
	statusTimeout time.Duration
	exec          invoke.Exec
	cni           *libcni.CNIConfig
	obs           Observer
	debounce      time.Duration

	// refreshMu serializes refreshes and guards reported.
	refreshMu sync.Mutex
	// reported maps a file to the error last reported for it.
	reported map[string]string

	mu        sync.RWMutex
	networks  map[string]Network
	available []string

	// notifyMu serializes change notifications and guards the fields below.
	notifyMu sync.Mutex
	notified bool
	last     []string
	subs     []func(available []string)
}

// New returns a Catalog with no networks: Start (or Refresh) loads them.
func New(cfg Config) (*Catalog, error) {
	if cfg.Dir == "" {
		return nil, errors.New("networks dir: not set")
	}
	if len(cfg.BinDirs) == 0 {
		return nil, errors.New("plugin bin dirs: not set")
	}
	if cfg.RuntimeConfDir != "" && filepath.Clean(cfg.RuntimeConfDir) == filepath.Clean(cfg.Dir) {
		return nil, fmt.Errorf("networks dir %s: is the runtime's CNI conf dir, whose first file is every pod's primary network", cfg.Dir)
	}
	s := &Catalog{
		dir:           cfg.Dir,
		runtimeDir:    cfg.RuntimeConfDir,
		binDirs:       slices.Clone(cfg.BinDirs),
		resync:        cfg.ResyncInterval,
		statusTimeout: cfg.StatusTimeout,
		exec:          cfg.Exec,
		obs:           cfg.Observer,
		debounce:      100 * time.Millisecond,
		reported:      map[string]string{},
		networks:      map[string]Network{},
	}
	if s.resync <= 0 {
		s.resync = DefaultResyncInterval
	}
	if s.statusTimeout <= 0 {
		s.statusTimeout = DefaultStatusTimeout
	}
	if s.exec == nil {
		s.exec = cniexec.New(cniexec.Options{})
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.cni = libcni.NewCNIConfig(s.binDirs, s.exec)
	return s, nil
}

// Available returns the names of the available networks, sorted. The
// caller may keep the slice but must not modify it.
func (s *Catalog) Available() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.available
}

// Lookup returns the network named name, available or not.
func (s *Catalog) Lookup(name string) (Network, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.networks[name]
	return n, ok
}

// Networks returns every valid network, available or not, sorted by name.
func (s *Catalog) Networks() []Network {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Network, 0, len(s.networks))
	for _, n := range s.networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OnChange registers f, which is called with the available networks after
// the first refresh and then once each time the set changes (not on every
// resync). If the first refresh is done already, f is called before
// OnChange returns. Calls are serialized; f must not block, must not
// modify available and must not call OnChange.
func (s *Catalog) OnChange(f func(available []string)) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.subs = append(s.subs, f)
	if s.notified {
		f(s.last)
	}
}

// Start loads the networks once, then keeps them current until ctx ends:
// on file events in the networks dir and the bin dirs, and every
// ResyncInterval. The first load is done when Start returns. A networks
// dir that does not exist yet is watched from the resync after it appears.
// Start must be called once.
func (s *Catalog) Start(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		klog.FromContext(ctx).Error(err, "watch networks dir; relying on periodic resync", "dir", s.dir)
		w = nil
	}
	watched := map[string]bool{}
	s.watch(ctx, w, watched) // before loading: no change is missed in between
	s.Refresh(ctx)
	go s.run(ctx, w, watched)
}

// Refresh re-reads the networks dir and re-checks availability now. It
// reports new config errors and notifies OnChange subscribers of a change.
func (s *Catalog) Refresh(ctx context.Context) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	logger := klog.FromContext(ctx)

	networks, err := s.load()
	if err != nil {
		// An unreadable dir (not a missing one) keeps the last known view.
		logger.Error(err, "read networks dir; keeping the networks known so far", "dir", s.dir)
		return
	}
	s.checkAvailability(ctx, networks)

	available := []string{}
	for name, n := range networks {
		if n.Available {
			available = append(available, name)
		}
	}
	sort.Strings(available)

	s.mu.Lock()
	old := s.networks
	s.networks, s.available = networks, available
	s.mu.Unlock()

	for name, n := range networks {
		if o, ok := old[name]; !ok || o.Available != n.Available || errText(o.Err) != errText(n.Err) {
			if n.Available {
				logger.Info("network available", "network", name, "file", n.File)
			} else {
				logger.Info("network not available", "network", name, "file", n.File, "reason", errText(n.Err))
			}
		}
	}
	for name, o := range old {
		if _, ok := networks[name]; !ok {
			logger.Info("network removed", "network", name, "file", o.File)
		}
	}
	s.notify(available)
}

// load parses every config file, reporting and skipping invalid ones.
func (s *Catalog) load() (map[string]Network, error) {
	files, err := configFiles(s.dir, configExtensions...)
	if err != nil {
		return nil, err
	}
	runtime := runtimeNetworks(s.runtimeDir)
	networks := map[string]Network{}
	current := map[string]bool{}
	for _, file := range files {
		current[file] = true
		list, err := loadConfigFile(file)
		if err == nil {
			if prev, dup := networks[list.Name]; dup {
				err = fmt.Errorf("network %q: already defined by %s", list.Name, prev.File)
			} else {
				err = collision(list.Name, list.Bytes, runtime)
			}
		}
		if err != nil {
			s.report(file, err)
			continue
		}
		delete(s.reported, file)
		networks[list.Name] = Network{
			Name:         list.Name,
			File:         file,
			CNIVersion:   list.CNIVersion,
			Bytes:        list.Bytes,
			Plugins:      pluginBinaries(list),
			Capabilities: declaredCapabilities(list),
		}
	}
	for file := range s.reported {
		if !current[file] {
			delete(s.reported, file)
		}
	}
	return networks, nil
}

// report passes a file's error to the observer unless it was the last one
// reported for that file.
func (s *Catalog) report(file string, err error) {
	if s.reported[file] == err.Error() {
		return
	}
	s.reported[file] = err.Error()
	s.obs.ConfigError(file, err)
}

// checkAvailability sets Available and Err of every network.
func (s *Catalog) checkAvailability(ctx context.Context, networks map[string]Network) {
	names := make([]string, 0, len(networks))
	for name := range networks {
		names = append(names, name)
	}
	errs := make([]error, len(names))
	g := errgroup.Group{}
	g.SetLimit(statusConcurrency)
	for i, name := range names {
		n := networks[name]
		g.Go(func() error {
			errs[i] = s.check(ctx, n)
			return nil
		})
	}
	_ = g.Wait()
	for i, name := range names {
		n := networks[name]
		n.Available, n.Err = errs[i] == nil, errs[i]
		networks[name] = n
	}
}

// check tells why n cannot be used, or returns nil.
func (s *Catalog) check(ctx context.Context, n Network) error {
	for _, bin := range n.Plugins {
		if _, err := s.exec.FindInPath(bin, s.binDirs); err != nil {
			return err
		}
	}
	if !SupportsStatusAndGC(n.CNIVersion) {
		return nil
	}
	list, err := ParseConfig(n.Bytes)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.statusTimeout)
	defer cancel()
	if err := s.cni.GetStatusNetworkList(ctx, list); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// notify calls the subscribers if available differs from what they saw.
func (s *Catalog) notify(available []string) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.notified && slices.Equal(s.last, available) {
		return
	}
	s.notified, s.last = true, available
	for _, f := range s.subs {
		f(available)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Observer receives what a Catalog finds wrong with the node's files. It is
// called from the refreshing goroutine and must not block.
type Observer interface {
	// ConfigError reports a network config file that was skipped, once per
	// file and distinct error (not on every resync).
	ConfigError(file string, err error)
}

type nopObserver struct{}

func (nopObserver) ConfigError(string, error) {}
