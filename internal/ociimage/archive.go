package ociimage

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArchiveName returns the name containerd gives the image in the OCI
// image-layout tar archive at path when importing it: the
// AnnotationImageName annotation of the single manifest its index.json
// lists, as WriteArchive sets it.
//
// Every error names path. When the archive does not exist the error wraps
// fs.ErrNotExist and says to run `make images`; an archive that is not a tar,
// has no index.json, or whose index does not list exactly one manifest with
// a non-empty AnnotationImageName is reported as such.
func ArchiveName(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image archive missing (run make images): %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("opening image archive: %w", err)
	}
	defer f.Close()
	idx, err := readIndex(f)
	if err != nil {
		return "", fmt.Errorf("reading image archive %s: %w", path, err)
	}
	named := 0
	for _, m := range idx.Manifests {
		if m.Annotations[AnnotationImageName] != "" {
			named++
		}
	}
	if len(idx.Manifests) != 1 || named != 1 {
		return "", fmt.Errorf("image archive %s: want one manifest named by %s, index.json lists %d with %d named",
			path, AnnotationImageName, len(idx.Manifests), named)
	}
	return idx.Manifests[0].Annotations[AnnotationImageName], nil
}

// readIndex decodes the first index.json entry of the image-layout tar r.
func readIndex(r io.Reader) (ocispec.Index, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ocispec.Index{}, fmt.Errorf("no %s", ocispec.ImageIndexFile)
		}
		if err != nil {
			return ocispec.Index{}, err
		}
		if !hdr.FileInfo().Mode().IsRegular() || path.Clean(hdr.Name) != ocispec.ImageIndexFile {
			continue
		}
		var idx ocispec.Index
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return ocispec.Index{}, fmt.Errorf("decoding %s: %w", ocispec.ImageIndexFile, err)
		}
		return idx, nil
	}
}
