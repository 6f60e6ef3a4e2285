package localcluster

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The image archives carry their references (hack/versions.env sets them
// at build time), so the cluster reads them instead of repeating them.
const (
	pauseArchive   = "pause.tar"
	toolboxArchive = "toolbox.tar"
)

// archiveRef returns the io.containerd.image.name annotation of the single
// manifest in an OCI image-layout archive.
func archiveRef(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image archive missing (run make images): %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: no index.json", path)
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", path, err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["io.containerd.image.name"] == "" {
			return "", fmt.Errorf("%s: want one manifest named by io.containerd.image.name", path)
		}
		return idx.Manifests[0].Annotations["io.containerd.image.name"], nil
	}
}

// PauseImage is the sandbox image reference.
func (o *Options) PauseImage() (string, error) {
	return archiveRef(filepath.Join(o.ImagesDir, pauseArchive))
}

// ToolboxImage is the reference of the test image (a shell and ip).
func (o *Options) ToolboxImage() (string, error) {
	return archiveRef(filepath.Join(o.ImagesDir, toolboxArchive))
}

// importImages imports the pause and toolbox archives into the node's
// containerd, in the k8s.io namespace where the CRI plugin looks.
func (o *Options) importImages(ctx context.Context, n Node) error {
	for _, img := range []string{pauseArchive, toolboxArchive} {
		path := filepath.Join(o.ImagesDir, img)
		if err := o.ctr(ctx, n, "-n", "k8s.io", "images", "import", "--local", path); err != nil {
			return fmt.Errorf("%s: import %s: %w", n.Name, img, err)
		}
	}
	return nil
}
