package ociimage

import (
	"errors"
	"fmt"

	"github.com/distribution/reference"
)

// ErrInvalidReference is wrapped by every error about an image reference.
var ErrInvalidReference = errors.New("invalid image reference")

// normalizeReference parses ref the way the kubelet and containerd's CRI
// plugin do and returns it fully qualified: "pause:v1" becomes
// "docker.io/library/pause:v1", while "localhost/pod-networks/pause:v1" is
// kept as is. containerd stores an imported image under its annotated name
// verbatim, so only the normalised form matches what the kubelet looks up.
//
// The reference must carry a tag and no digest: a freshly built image cannot
// name its digest in advance, and an untagged name would mean ":latest",
// which the kubelet always tries to pull, and a local-only image cannot be
// pulled.
func normalizeReference(ref string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidReference, ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, fmt.Errorf("%w %q: digests are not supported", ErrInvalidReference, ref)
	}
	tagged, ok := named.(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("%w %q: missing tag", ErrInvalidReference, ref)
	}
	return tagged, nil
}
