package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes cribench adopt the orphans of its children (CNI
// plugins a killed proxy left running), so that they can be found and
// killed at the end.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// leftovers lists the network namespaces and links whose names start with
// tag.
func leftovers(tag string) (namespaces, links []string, err error) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tag) {
			namespaces = append(namespaces, e.Name())
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, tag) {
			links = append(links, i.Name)
		}
	}
	return namespaces, links, nil
}

// children returns the pids of cribench's child processes (with
// becomeSubreaper, its orphaned descendants too), and whether each is a
// zombie.
func children() (map[int]bool, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	pids := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(self) {
			pids[pid] = f[0] == "Z"
		}
	}
	return pids, nil
}

// checkLeftovers kills cribench's leftover processes and deletes the
// run's leftover namespaces and links, and reports what it found. Call it
// once every child cribench started was waited for.
func checkLeftovers(tag string) error {
	var errs []error
	pids, err := children()
	if err != nil {
		errs = append(errs, err)
	}
	for pid, zombie := range pids {
		if !zombie {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			errs = append(errs, fmt.Errorf("leftover process %d (%s), killed", pid, strings.TrimSpace(string(comm))))
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		_, _ = unix.Wait4(pid, nil, 0, nil) // reap it: an adopted orphan
	}
	namespaces, links, err := leftovers(tag)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range namespaces {
		errs = append(errs, fmt.Errorf("leftover network namespace %s, deleted", ns), ip("netns", "del", ns))
	}
	for _, l := range links {
		errs = append(errs, fmt.Errorf("leftover link %s, deleted", l), ip("link", "del", l))
	}
	return errors.Join(errs...)
}

// tagPrefix starts every run's tag: crb<pid>-.
const tagPrefix = "crb"

// runTag is the prefix of the names of this run's links and namespaces.
func runTag() string { return fmt.Sprintf("%s%d-", tagPrefix, os.Getpid()) }

// sweepStale deletes the links, namespaces and work dirs of earlier runs
// whose cribench is gone (killed before it could clean up), and says how
// many.
func sweepStale() (int, error) {
	namespaces, links, err := leftovers(tagPrefix)
	if err != nil {
		return 0, err
	}
	stale := func(name string) bool {
		pid, _, ok := strings.Cut(strings.TrimPrefix(name, tagPrefix), "-")
		if !ok {
			return false
		}
		if _, err := strconv.Atoi(pid); err != nil {
			return false
		}
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		return err != nil || strings.TrimSpace(string(comm)) != "cribench"
	}
	var errs []error
	n := 0
	for _, ns := range namespaces {
		if stale(ns) {
			n++
			errs = append(errs, ip("netns", "del", ns))
		}
	}
	for _, l := range links {
		if stale(l) {
			n++
			errs = append(errs, ip("link", "del", l))
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tagPrefix+"*"))
	for _, d := range dirs {
		if stale(filepath.Base(d)) {
			n++
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return n, errors.Join(errs...)
}
