package ociimage

import (
	"archive/tar"
	_ "crypto/sha256" // go-digest computes sha256 only when it is linked in
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationImageName is the index.json manifest annotation containerd
// names an image by when `ctr images import` reads an OCI image layout. Its
// value is a fully qualified reference such as
// "localhost/pod-networks/pause:v1".
const AnnotationImageName = "io.containerd.image.name"

// Image is a single-layer image for linux on the architecture this program
// runs on.
//
// Ref names the image, with a tag and without a digest, for example
// "localhost/pod-networks/pause:v1". It is normalised as Docker clients do
// ("pause:v1" means "docker.io/library/pause:v1") because containerd stores
// the name verbatim and the kubelet looks images up by the normalised name.
// Config is what a container starts from; empty fields are left to the
// runtime's defaults.
type Image struct {
	Ref    string
	Files  []File
	Config ocispec.ImageConfig
}

// WriteArchive writes img to w as an OCI image-layout tar archive, ready
// for `ctr images import`, and returns the manifest descriptor as listed in
// the archive's index.json: its Digest is the image's digest, and its
// AnnotationImageName annotation the normalised reference containerd will
// store the image under (ocispec.AnnotationRefName holds the tag).
//
// The archive depends only on img and the Go toolchain: entry order, times
// and owners are fixed, so an unchanged image keeps its digest. Nothing is
// written to w if img is invalid; the error then wraps ErrInvalidReference
// or ErrInvalidFile and names the offending reference or path.
func WriteArchive(w io.Writer, img Image) (ocispec.Descriptor, error) {
	ref, err := normalizeReference(img.Ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layer, layerGz, err := buildLayer(img.Files)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	platform := ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}

	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding %s: %w", ocispec.ImageLayoutFile, err)
	}
	config, err := json.Marshal(ocispec.Image{
		Platform: platform,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}},
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding image config: %w", err)
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    describe(ocispec.MediaTypeImageConfig, config),
		Layers:    []ocispec.Descriptor{describe(ocispec.MediaTypeImageLayerGzip, layerGz)},
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding manifest: %w", err)
	}
	manifestDesc := describe(ocispec.MediaTypeImageManifest, manifest)
	manifestDesc.Platform = &platform
	manifestDesc.Annotations = map[string]string{
		AnnotationImageName:       ref.String(),
		ocispec.AnnotationRefName: ref.Tag(),
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding index: %w", err)
	}

	blobsDir := ocispec.ImageBlobsDir + "/"
	tw := tar.NewWriter(w)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{ocispec.ImageIndexFile, index},
		{blobsDir, nil},
		{blobsDir + digest.Canonical.String() + "/", nil},
		{blobPath(layerGz), layerGz},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
	} {
		if err := writeEntry(tw, e.name, e.data); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("writing image archive for %s: %w", ref, err)
		}
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing image archive for %s: %w", ref, err)
	}
	return manifestDesc, nil
}

// describe returns the descriptor of blob b, of the given media type.
func describe(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// blobPath is where the image-layout spec stores a blob: named by its
// digest, under a directory named by the digest's algorithm.
func blobPath(b []byte) string {
	d := digest.FromBytes(b)
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// writeEntry adds a regular file, or a directory if name ends in "/".
func writeEntry(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}
	if strings.HasSuffix(name, "/") {
		hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
