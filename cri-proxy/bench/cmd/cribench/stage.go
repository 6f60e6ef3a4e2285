package main

import (
	"io"
	"os"
	"path/filepath"
)

// stage points o at links (or copies) of the binaries the run executes, in
// dir: the same files, but not under _output/bin, whose processes the local
// cluster's teardown SIGKILLs (it kills whatever runs from its bin dir), and
// not changed by a rebuild during the run.
func stage(o *options, dir string) error {
	bin, cni := filepath.Join(dir, "bin"), filepath.Join(dir, "cni")
	for _, d := range []string{bin, cni} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		path *string
		into string
	}{{&o.criProxy, bin}, {&o.anchor, bin}, {&o.h2, bin}} {
		staged := filepath.Join(f.into, filepath.Base(*f.path))
		if err := linkOrCopy(*f.path, staged); err != nil {
			return err
		}
		*f.path = staged
	}
	for _, p := range []string{"macvlan", "host-local"} {
		if err := linkOrCopy(filepath.Join(o.cniBinDir, p), filepath.Join(cni, p)); err != nil {
			return err
		}
	}
	o.cniBinDir = cni
	return nil
}

func linkOrCopy(from, to string) error {
	if os.Link(from, to) == nil {
		return nil
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
