package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// criProxy is a running cri-proxy daemon.
type criProxy struct {
	*process
	socket  string
	metrics string // host:port of /metrics
}

// startCRIProxy starts the cri-proxy binary as deployed: its own process,
// default flags except the sockets, the run's networks dir and plugins, a
// state dir of its own, and metrics on a free local port (rather than the
// default 127.0.0.1:9615, which something else on the machine may hold).
// It returns once the proxy serves and lists every network as available.
func startCRIProxy(ctx context.Context, o options, work, name, upstream string, h *hostNetworks) (*criProxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &criProxy{socket: filepath.Join(work, name+".sock"), metrics: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	p.process, err = start(ctx, work, name, p.socket, o.criProxy,
		"-listen", p.socket, "-upstream", upstream,
		"-networks-dir", h.dir, "-cni-bin-dir", o.cniBinDir,
		"-state-dir", filepath.Join(work, name+"-state"),
		"-metrics-address", p.metrics)
	if err != nil {
		return nil, err
	}
	c, err := dialKubeletLike(p.socket)
	if err != nil {
		p.stop()
		return nil, err
	}
	defer c.Close()
	if err := waitNetworks(ctx, c, h.names); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail(p.log, 20))
	}
	return p, nil
}

// waitNetworks waits until the proxy's verbose Status lists every network
// as available (info["podNetworks"]).
func waitNetworks(ctx context.Context, c runtimeapi.RuntimeServiceClient, want []string) error {
	err := poll.Until(ctx, 50*time.Millisecond, 20*time.Second, func(ctx context.Context) error {
		st, err := c.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
		if err != nil {
			return err
		}
		var got []string
		_ = json.Unmarshal([]byte(st.GetInfo()["podNetworks"]), &got)
		if !containsAll(got, want) {
			return fmt.Errorf("available: %v", got)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("networks %v not all available within 20s: %w", want, err)
	}
	return nil
}

// rpcsObserved sums cri_proxy_rpc_duration_seconds_count on /metrics: the
// calls the proxy's metrics recorded.
func (p *criProxy) rpcsObserved() (int64, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var n int64
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "cri_proxy_rpc_duration_seconds_count{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics: %q: %w", s.Text(), err)
			}
			n += int64(f)
		}
	}
	return n, s.Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// describeBinary names a binary by its build (modification) time and the
// start of its SHA-256, so that a report says what was measured.
func describeBinary(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("%s (%v)", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("%s (%v)", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Sprintf("%s (%v)", path, err)
	}
	return fmt.Sprintf("%s, built %s, sha256 %s", path, fi.ModTime().Format("2006-01-02 15:04:05"), hex.EncodeToString(h.Sum(nil))[:12])
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
