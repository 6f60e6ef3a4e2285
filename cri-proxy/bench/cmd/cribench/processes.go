package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// process is a child process serving on a unix socket: the fake runtime
// (this program re-executed with a role), a proxy binary. Its output goes
// to <dir>/<name>.log, shown when the run fails.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
	err  error         // its exit status, once done
}

// start runs bin with args and waits until it accepts connections on
// socket. The child is killed if cribench dies (parent-death signal).
func start(ctx context.Context, dir, name, socket, bin string, args ...string) (*process, error) {
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := p.waitSocket(ctx, socket); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail(p.log, 20))
	}
	return p, nil
}

// startRole starts this program in a role (see main).
func startRole(ctx context.Context, dir, role, socket string, args ...string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return start(ctx, dir, role, socket, self, append([]string{role}, args...)...)
}

func (p *process) waitSocket(ctx context.Context, socket string) error {
	var d net.Dialer
	err := poll.Until(ctx, 20*time.Millisecond, 15*time.Second, func(ctx context.Context) error {
		select {
		case <-p.done:
			return poll.Fatal(fmt.Errorf("exited before serving: %v", p.err))
		default:
		}
		c, err := d.DialContext(ctx, "unix", socket)
		if err != nil {
			return err
		}
		_ = c.Close()
		return nil
	})
	if err != nil {
		return fmt.Errorf("socket %s not serving (waited up to 15s): %w", socket, err)
	}
	return nil
}

// stop signals the process and waits for it, killing it after a few
// seconds. It may be called more than once.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// memory is a process's memory from /proc/<pid>/status, in bytes.
type memory struct {
	rss     int64 // VmRSS: resident now
	hwm     int64 // VmHWM: peak resident
	anon    int64 // RssAnon: heap, stacks
	fileMap int64 // RssFile: mapped files (the binary's pages)
}

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %s = RssAnon %s + RssFile %s (+shmem), VmHWM %s", mib(m.rss), mib(m.anon), mib(m.fileMap), mib(m.hwm))
}

func (p *process) memory() (memory, error) {
	var m memory
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon, "RssFile": &m.fileMap}
	for s.Scan() {
		key, val, _ := strings.Cut(s.Text(), ":")
		into, ok := fields[key]
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse %s %q: %w", key, val, err)
		}
		*into = kb << 10
	}
	if err := s.Err(); err != nil {
		return m, err
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	}
	return m, nil
}

// tail returns the last n lines of a file, indented.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
