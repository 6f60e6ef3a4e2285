package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/pod-networks/internal/ociimage"
)

func TestWriteIfChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pause.tar")
	if err := writeIfChanged(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// An unchanged archive keeps its mtime, so make sees nothing to redo.
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := writeIfChanged(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("rewriting the same bytes touched the file: %v, %v", fi.ModTime(), err)
	}
	if err := writeIfChanged(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "two" {
		t.Errorf("after a change the file holds %q, %v", got, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v, %v; want only pause.tar", entries, err)
	}
	if err := writeIfChanged(filepath.Join(dir, "missing", "x.tar"), nil); err == nil || !strings.Contains(err.Error(), "x.tar") {
		t.Errorf("writing into a missing directory = %v, want an error naming the file", err)
	}
}

func TestRun(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("no busybox: %v", err)
	}
	dir := t.TempDir()
	pause := filepath.Join(dir, "pause")
	if err := os.WriteFile(pause, []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images")
	args := []string{"-out-dir", out, "-pause-binary", pause, "-busybox", busybox,
		"-pause-ref", "localhost/pod-networks/pause:v1", "-toolbox-ref", "toolbox:v2"}

	var first, second bytes.Buffer
	if err := run(args, &first); err != nil {
		t.Fatal(err)
	}
	archives := map[string][]byte{}
	for _, f := range []string{"pause.tar", "toolbox.tar"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		archives[f] = b
	}
	if err := run(args, &second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("second run printed\n%s\nfirst printed\n%s", &second, &first)
	}
	for f, b := range archives {
		if again, err := os.ReadFile(filepath.Join(out, f)); err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s changed on rebuild (%v)", f, err)
		}
	}

	lines := strings.Split(strings.TrimSpace(first.String()), "\n")
	want := []struct{ ref, file string }{
		{"localhost/pod-networks/pause:v1", "pause.tar"},
		{"docker.io/library/toolbox:v2", "toolbox.tar"},
	}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want %d lines", first.String(), len(want))
	}
	for i, w := range want {
		fields := strings.Fields(lines[i])
		path := filepath.Join(out, w.file)
		if len(fields) != 3 || fields[0] != w.ref || !strings.HasPrefix(fields[1], "sha256:") || fields[2] != path {
			t.Errorf("line %q, want %q <digest> %q", lines[i], w.ref, path)
		}
		if name, err := ociimage.ArchiveName(path); err != nil || name != w.ref {
			t.Errorf("ArchiveName(%s) = %q, %v; want %q", path, name, err, w.ref)
		}
	}
}

func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "flag -out-dir is required"},
		{[]string{"-out-dir", "x", "-pause-binary", "p", "-pause-ref", "r"}, "flag -toolbox-ref is required"},
		{[]string{"-out-dir", "x", "extra"}, "unexpected arguments"},
		{[]string{"-out-dir", "x", "-pause-binary", "/nonexistent", "-pause-ref", "r", "-toolbox-ref", "r"}, "reading pause binary"},
	} {
		if err := run(tc.args, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
