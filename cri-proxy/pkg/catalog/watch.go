package catalog

import (
	"context"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
)

// watch adds the dirs not watched yet to w (which may be nil).
func (s *Catalog) watch(ctx context.Context, w *fsnotify.Watcher, watched map[string]bool) {
	if w == nil {
		return
	}
	for _, dir := range append([]string{s.dir}, s.binDirs...) {
		if watched[dir] {
			continue
		}
		if err := w.Add(dir); err != nil {
			klog.FromContext(ctx).V(4).Info("cannot watch dir yet; relying on periodic resync", "dir", dir, "err", err)
			continue
		}
		watched[dir] = true
	}
}

// run refreshes the store on file events (debounced) and every resync
// interval until ctx ends. w may be nil: then only the resync runs.
func (s *Catalog) run(ctx context.Context, w *fsnotify.Watcher, watched map[string]bool) {
	logger := klog.FromContext(ctx)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}

	ticker := time.NewTicker(s.resync)
	defer ticker.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if watched[ev.Name] && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
				// A watched dir itself went away: watch it again once it is back.
				delete(watched, ev.Name)
			}
			debounce.Reset(s.debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			logger.Error(err, "watch networks dir")
			debounce.Reset(s.debounce)
		case <-debounce.C:
			s.Refresh(ctx)
		case <-ticker.C:
			s.watch(ctx, w, watched)
			s.Refresh(ctx)
		}
	}
}
