package poll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Condition is checked until it returns nil. Any other error is the reason
// it is not done yet; wrap an error with Fatal to stop polling with it.
type Condition func(ctx context.Context) error

type fatal struct{ err error }

func (f fatal) Error() string { return f.err.Error() }
func (f fatal) Unwrap() error { return f.err }

// Fatal marks err as final: Until returns it at once instead of polling on.
func Fatal(err error) error { return fatal{err} }

// Until checks cond at once and then every interval until it returns nil,
// returns a Fatal error, ctx ends or timeout (0: none) passes. The error of a
// timeout or cancel wraps ctx's error and cond's last reason.
func Until(ctx context.Context, interval, timeout time.Duration, cond Condition) error {
	var last error
	check := func(ctx context.Context) (bool, error) {
		err := cond(ctx)
		var f fatal
		if errors.As(err, &f) {
			return false, f.err
		}
		if err != nil {
			last = err
		}
		return err == nil, nil
	}
	var err error
	if timeout > 0 {
		err = wait.PollUntilContextTimeout(ctx, interval, timeout, true, check)
	} else {
		err = wait.PollUntilContextCancel(ctx, interval, true, check)
	}
	if err == nil || !wait.Interrupted(err) {
		return err
	}
	if ctx.Err() == nil {
		err = context.DeadlineExceeded // the timeout's, not the caller's
	}
	if last == nil {
		return fmt.Errorf("%w before the first check finished", err)
	}
	return fmt.Errorf("%w: %w", err, last)
}
