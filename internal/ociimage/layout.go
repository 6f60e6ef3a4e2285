package ociimage

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
)

// Media types and annotations of the OCI image and image-layout specs, and
// the one containerd reads to name an imported image.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Config is the part of the OCI image config a container starts from. Empty
// fields are left to the runtime's defaults.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

// Image is a single-layer image for the platform this program runs on.
//
// Ref must be a full reference with a tag, such as
// "localhost/pod-networks/pause:v1": it is the name containerd gives the
// image on import, and the kubelet looks images up by exactly that name.
type Image struct {
	Ref    string
	Files  []File
	Config Config
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       Config `json:"config"`
	RootFS       rootFS `json:"rootfs"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func describe(mediaType string, b []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: digestOf(b), Size: int64(len(b))}
}

// WriteArchive writes img to w as an OCI image-layout tar archive, ready
// for `ctr images import`, and returns the manifest digest ("sha256:...").
//
// The archive depends only on img and the Go toolchain: entry order, times
// and owners are fixed, so an unchanged image keeps its digest. Nothing is
// written to w if img is invalid; the error then wraps ErrInvalidReference
// or ErrInvalidFile and names the offending reference or path.
func WriteArchive(w io.Writer, img Image) (digest string, err error) {
	tag, err := splitReference(img.Ref)
	if err != nil {
		return "", err
	}
	layer, layerGz, err := buildLayer(img.Files)
	if err != nil {
		return "", err
	}

	config, err := json.Marshal(imageConfig{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config:       img.Config,
		RootFS:       rootFS{Type: "layers", DiffIDs: []string{digestOf(layer)}},
	})
	if err != nil {
		return "", fmt.Errorf("encoding image config: %w", err)
	}
	man, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        describe(mediaTypeConfig, config),
		Layers:        []descriptor{describe(mediaTypeLayer, layerGz)},
	})
	if err != nil {
		return "", fmt.Errorf("encoding manifest: %w", err)
	}
	manDesc := describe(mediaTypeManifest, man)
	manDesc.Platform = &platform{Architecture: runtime.GOARCH, OS: "linux"}
	manDesc.Annotations = map[string]string{
		annotationContainerdName: img.Ref,
		annotationRefName:        tag,
	}
	idx, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{manDesc}})
	if err != nil {
		return "", fmt.Errorf("encoding index: %w", err)
	}

	tw := tar.NewWriter(w)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idx},
		{"blobs/", nil},
		{"blobs/sha256/", nil},
		{blobPath(layerGz), layerGz},
		{blobPath(config), config},
		{blobPath(man), man},
	} {
		if err := writeEntry(tw, e.name, e.data); err != nil {
			return "", fmt.Errorf("writing image archive for %s: %w", img.Ref, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("writing image archive for %s: %w", img.Ref, err)
	}
	return manDesc.Digest, nil
}

// blobPath is where the image-layout spec stores a blob: named by its digest.
func blobPath(b []byte) string {
	return "blobs/sha256/" + strings.TrimPrefix(digestOf(b), "sha256:")
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
