package ociimage

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidReference is wrapped by every error about an image reference.
var ErrInvalidReference = errors.New("invalid image reference")

var (
	// The grammar of github.com/distribution/reference, minus digests,
	// which a freshly built image cannot name in advance.
	domainRE    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$`)
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
)

// splitReference checks that ref is a full reference (domain/path:tag) and
// returns its tag. Short names are refused because containerd stores the
// name verbatim: "pause:v1" would never match what the kubelet asks for.
func splitReference(ref string) (tag string, err error) {
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("%w %q: digests are not supported", ErrInvalidReference, ref)
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i+1:], "/") {
		return "", fmt.Errorf("%w %q: missing tag", ErrInvalidReference, ref)
	}
	name, tag := ref[:i], ref[i+1:]
	if !tagRE.MatchString(tag) {
		return "", fmt.Errorf("%w %q: bad tag %q", ErrInvalidReference, ref, tag)
	}
	if len(name) > 255 {
		return "", fmt.Errorf("%w %q: name longer than 255 characters", ErrInvalidReference, ref)
	}
	parts := strings.Split(name, "/")
	domain := parts[0]
	if len(parts) < 2 || (domain != "localhost" && !strings.ContainsAny(domain, ".:")) {
		return "", fmt.Errorf("%w %q: not a full reference (want domain/path:tag)", ErrInvalidReference, ref)
	}
	if !domainRE.MatchString(domain) {
		return "", fmt.Errorf("%w %q: bad domain %q", ErrInvalidReference, ref, domain)
	}
	for _, c := range parts[1:] {
		if !componentRE.MatchString(c) {
			return "", fmt.Errorf("%w %q: bad path component %q", ErrInvalidReference, ref, c)
		}
	}
	return tag, nil
}
