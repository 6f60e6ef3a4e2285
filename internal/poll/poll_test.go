package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntilDone(t *testing.T) {
	n := 0
	err := Until(t.Context(), time.Millisecond, time.Minute, func(context.Context) error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Until = %v after %d checks, want nil after 3", err, n)
	}
}

func TestUntilTimeoutKeepsLastReason(t *testing.T) {
	n := 0
	err := Until(t.Context(), time.Millisecond, 50*time.Millisecond, func(context.Context) error {
		n++
		return errors.New("node2 not Ready")
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "node2 not Ready") {
		t.Fatalf("Until = %v, want a deadline error naming the last reason", err)
	}
	if n < 2 {
		t.Errorf("checked %d times, want several", n)
	}
}

func TestUntilFatalStops(t *testing.T) {
	boom := errors.New("pod failed")
	n := 0
	err := Until(t.Context(), time.Millisecond, time.Minute, func(context.Context) error {
		n++
		return Fatal(boom)
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Until = %v after %d checks, want %v after 1", err, n, boom)
	}
}

func TestUntilCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	err := Until(ctx, time.Millisecond, 0, func(context.Context) error {
		cancel()
		return errors.New("still waiting")
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still waiting") {
		t.Fatalf("Until = %v, want canceled with the last reason", err)
	}
}
