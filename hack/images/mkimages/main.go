// Command mkimages builds the cluster's local container images (the pod
// sandbox "pause" image and the busybox "toolbox" test image) as OCI
// image-layout archives for `ctr -n k8s.io images import`.
//
// It prints one line per image, "<ref> <digest> <path>", where ref is the
// normalised name containerd will store the image under. An archive whose
// bytes are unchanged is left untouched, so its mtime only moves when the
// image does.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"sigs.k8s.io/pod-networks/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fls := flag.NewFlagSet("mkimages", flag.ContinueOnError)
	outDir := fls.String("out-dir", "", "directory to write pause.tar and toolbox.tar to (required)")
	pauseBinary := fls.String("pause-binary", "", "statically linked pause binary (required)")
	busybox := fls.String("busybox", "/bin/busybox", "statically linked busybox binary")
	pauseRef := fls.String("pause-ref", "", "full reference of the pause image, e.g. localhost/pod-networks/pause:v1 (required)")
	toolboxRef := fls.String("toolbox-ref", "", "full reference of the toolbox image (required)")
	if err := fls.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fls.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fls.Args())
	}
	for _, f := range []struct{ name, value string }{
		{"-out-dir", *outDir}, {"-pause-binary", *pauseBinary}, {"-pause-ref", *pauseRef}, {"-toolbox-ref", *toolboxRef},
	} {
		if f.value == "" {
			return fmt.Errorf("flag %s is required", f.name)
		}
	}

	pause, err := os.ReadFile(*pauseBinary)
	if err != nil {
		return fmt.Errorf("reading pause binary: %w", err)
	}
	toolboxFiles, err := ociimage.BusyboxFiles(*busybox)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	for _, img := range []struct {
		file  string
		image ociimage.Image
	}{
		{"pause.tar", ociimage.PauseImage(*pauseRef, pause)},
		{"toolbox.tar", ociimage.ToolboxImage(*toolboxRef, toolboxFiles)},
	} {
		var buf bytes.Buffer
		desc, err := ociimage.WriteArchive(&buf, img.image)
		if err != nil {
			return err
		}
		path := filepath.Join(*outDir, img.file)
		if err := writeIfChanged(path, buf.Bytes()); err != nil {
			return err
		}
		fmt.Fprintln(stdout, desc.Annotations[ociimage.AnnotationImageName], desc.Digest, path)
	}
	return nil
}

// writeIfChanged replaces path with data atomically, unless it already
// holds exactly data: a reader (ctr import, make) sees either the old archive
// or the new one, never half of one.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := renameio.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
