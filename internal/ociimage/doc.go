// Package ociimage builds small container images as OCI image-layout tar
// archives, without Docker or a registry.
//
// The archives are meant for `ctr -n k8s.io images import`: each holds a
// single-platform image with one layer, named by the index annotations
// containerd reads. Output is byte-for-byte deterministic, so rebuilding an
// unchanged image yields the same digest and nothing is re-imported.
package ociimage
