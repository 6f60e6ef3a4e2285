package attachment

import "time"

// Observer receives what the package does, for metrics and logs. Calls are
// made synchronously from the goroutine doing the work, possibly from
// several goroutines at once: implementations must be safe for concurrent
// use and must not block.
type Observer interface {
	// AttachDone reports one network's ADD: its duration and error.
	AttachDone(network string, d time.Duration, err error)
	// DetachDone reports one network's DEL, including rollback DELs.
	DetachDone(network string, d time.Duration, err error)
	// ConfigError reports a network config file that was skipped, once per
	// file and distinct error (not on every resync).
	ConfigError(file string, err error)
	// AttachmentsInUse reports the number of recorded attachments after it
	// changed.
	AttachmentsInUse(n int)
}

// NopObserver is an Observer that ignores everything.
type NopObserver struct{}

var _ Observer = NopObserver{}

// AttachDone does nothing.
func (NopObserver) AttachDone(string, time.Duration, error) {}

// DetachDone does nothing.
func (NopObserver) DetachDone(string, time.Duration, error) {}

// ConfigError does nothing.
func (NopObserver) ConfigError(string, error) {}

// AttachmentsInUse does nothing.
func (NopObserver) AttachmentsInUse(int) {}
