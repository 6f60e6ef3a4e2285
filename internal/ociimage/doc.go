// Package ociimage builds small container images as OCI image-layout tar
// archives, without Docker or a registry, and reads back the name an archive
// gives its image.
//
// The archives are meant for `ctr -n k8s.io images import`: each holds a
// single-platform image with one layer, named by the index annotations
// containerd reads (AnnotationImageName). The OCI structures are those of
// github.com/opencontainers/image-spec, digests those of
// github.com/opencontainers/go-digest, and references are parsed and
// normalised by github.com/distribution/reference. Output is byte-for-byte
// deterministic, so rebuilding an unchanged image yields the same digest and
// nothing is re-imported.
package ociimage
