package ociimage

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// toolboxPath is the usual Debian PATH, so every busybox applet directory
// is on it.
const toolboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// busyboxTarget is where BusyboxFiles puts the binary; applet symlinks
// point here by absolute path so they resolve from any directory.
const busyboxTarget = "bin/busybox"

// BusyboxFiles returns a minimal root filesystem around the static busybox
// binary at busyboxPath: the binary at bin/busybox, one symlink to it per
// applet that `busybox --list-full` reports, an etc/passwd and etc/group
// with root and nobody, and the directories a container expects (tmp with
// mode 1777, proc, sys, dev, root).
//
// The binary must be statically linked: no shared libraries are copied.
func BusyboxFiles(busyboxPath string) ([]File, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(busyboxPath, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox applets: %w: %s", err, strings.TrimSpace(stderr.String()))
	}

	files := []File{
		{Path: busyboxTarget, Mode: 0o755, Data: bin},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "root", Mode: fs.ModeDir | 0o700},
		{Path: "proc", Mode: fs.ModeDir | 0o755},
		{Path: "sys", Mode: fs.ModeDir | 0o755},
		{Path: "dev", Mode: fs.ModeDir | 0o755},
	}
	seen := map[string]bool{busyboxTarget: true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		applet := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "/")
		// Some builds list an applet twice; one link is enough.
		if applet == "" || seen[applet] {
			continue
		}
		seen[applet] = true
		files = append(files, File{Path: applet, Mode: fs.ModeSymlink | 0o777, Linkname: "/" + busyboxTarget})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading busybox applet list: %w", err)
	}
	if len(seen) == 1 {
		return nil, fmt.Errorf("busybox %s lists no applets", busyboxPath)
	}
	return files, nil
}

// PauseImage returns the pod sandbox image: pauseBinary, which must be
// statically linked, at /pause as the entrypoint.
func PauseImage(ref string, pauseBinary []byte) Image {
	return Image{
		Ref:    ref,
		Files:  []File{{Path: "pause", Mode: 0o755, Data: pauseBinary}},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}},
	}
}

// ToolboxImage returns a test image made of files, typically from
// BusyboxFiles, that runs /bin/sh with the usual Debian PATH
// (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
func ToolboxImage(ref string, files []File) Image {
	return Image{
		Ref:   ref,
		Files: files,
		Config: ocispec.ImageConfig{
			Cmd: []string{"/bin/sh"},
			Env: []string{"PATH=" + toolboxPath},
		},
	}
}
