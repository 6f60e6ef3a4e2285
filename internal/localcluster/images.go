package localcluster

import (
	"path/filepath"

	"sigs.k8s.io/pod-networks/internal/ociimage"
)

// The image archives carry their references (hack/versions.env sets them
// at build time), so the cluster reads them instead of repeating them.
const (
	pauseArchive   = "pause.tar"
	toolboxArchive = "toolbox.tar"
)

func (l layout) pauseImage() (string, error) {
	return ociimage.ArchiveName(filepath.Join(l.opts.ImagesDir, pauseArchive))
}

// ToolboxImage is the reference of the test image (a shell and ip).
func (c *Cluster) ToolboxImage() (string, error) {
	return ociimage.ArchiveName(filepath.Join(c.l.opts.ImagesDir, toolboxArchive))
}
