package crifields

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxConfigNetworksField is the field number of
// PodSandboxConfig.networks (repeated PodSandboxNetwork).
const PodSandboxConfigNetworksField = 10

// StatusResponseNetworksField is the field number of StatusResponse.networks
// (repeated string): the networks the node has.
const StatusResponseNetworksField = 5

// StatusResponseFeaturesField is the field number of StatusResponse.features
// (RuntimeFeatures), and RuntimeFeaturesPodNetworksField that of
// RuntimeFeatures.pod_networks (bool) inside it: the runtime attaches
// PodSandboxConfig.networks. kubelet declares the PodNetworks node feature
// from it.
const (
	StatusResponseFeaturesField     = 4
	RuntimeFeaturesPodNetworksField = 4
)

// Field numbers inside messages this package walks.
const (
	sandboxNetworkNameField      = 1 // PodSandboxNetwork.name
	sandboxNetworkInterfaceField = 2 // PodSandboxNetwork.interface_name
	runRequestConfigField        = 1 // RunPodSandboxRequest.config
)

// SandboxNetwork is one PodSandboxNetwork: a requested network and the
// interface name to give it in the pod, empty to let the runtime choose.
type SandboxNetwork struct {
	Name, InterfaceName string
}

// SandboxNetworks returns the networks field of cfg. present reports whether
// the field occurs at all, so callers can fall back to the annotation when it
// does not. An empty list cannot be told from an absent one on the wire (a
// repeated field with no elements encodes as nothing), so present implies at
// least one network. Malformed bytes or a wrong wire type are an error; a
// nil cfg has no networks.
func SandboxNetworks(cfg *runtimeapi.PodSandboxConfig) (nets []SandboxNetwork, present bool, err error) {
	if cfg == nil {
		return nil, false, nil
	}
	nets, present, err = appendConfigNetworks(nil, cfg.ProtoReflect().GetUnknown())
	if err != nil {
		return nil, false, fmt.Errorf("PodSandboxConfig unknown fields: %w", err)
	}
	return nets, present, nil
}

// SetSandboxNetworks replaces the networks field of cfg with nets (none
// removes it), keeping cfg's other unknown fields in their order. Unknown
// bytes that do not parse are kept, last, so SandboxNetworks still reports
// them. cfg must not be nil.
func SetSandboxNetworks(cfg *runtimeapi.PodSandboxConfig, nets []SandboxNetwork) {
	m := cfg.ProtoReflect()
	b, tail := withoutField(m.GetUnknown(), PodSandboxConfigNetworksField)
	for _, n := range nets {
		b = protowire.AppendTag(b, PodSandboxConfigNetworksField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sandboxNetworkSize(n)))
		b = appendSandboxNetwork(b, n)
	}
	m.SetUnknown(append(b, tail...))
}

// SandboxNetworksFromRunRequest returns the networks field of the config
// inside an encoded RunPodSandboxRequest, like SandboxNetworks but without
// decoding the rest of the request: only the config (field 1) is walked.
// A config split over several occurrences of field 1 is merged, as protobuf
// decoding would.
func SandboxNetworksFromRunRequest(encoded []byte) (nets []SandboxNetwork, present bool, err error) {
	b := encoded
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, fmt.Errorf("RunPodSandboxRequest: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num != runRequestConfigField {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, false, fmt.Errorf("RunPodSandboxRequest field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType {
			return nil, false, fmt.Errorf("RunPodSandboxRequest.config: wire type %d, want %d", typ, protowire.BytesType)
		}
		cfg, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false, fmt.Errorf("RunPodSandboxRequest.config: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var p bool
		if nets, p, err = appendConfigNetworks(nets, cfg); err != nil {
			return nil, false, fmt.Errorf("RunPodSandboxRequest.config: %w", err)
		}
		present = present || p
	}
	return nets, present, nil
}

// StatusNetworks returns the networks field of resp: the networks the node
// has, nil when the field is absent. Malformed bytes, a wrong wire type or a
// name that is not UTF-8 are an error; a nil resp has no networks.
func StatusNetworks(resp *runtimeapi.StatusResponse) ([]string, error) {
	if resp == nil {
		return nil, nil
	}
	var names []string
	err := eachField(resp.ProtoReflect().GetUnknown(), StatusResponseNetworksField, func(v []byte) error {
		if !utf8.Valid(v) {
			return fmt.Errorf("networks[%d]: not valid UTF-8", len(names))
		}
		names = append(names, string(v))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("StatusResponse unknown fields: %w", err)
	}
	return names, nil
}

// SetStatusNetworks replaces the networks field of resp with names (none
// removes it), keeping resp's other unknown fields in their order (and
// unparsable bytes last, as SetSandboxNetworks does). resp must not be nil.
func SetStatusNetworks(resp *runtimeapi.StatusResponse, names []string) {
	m := resp.ProtoReflect()
	b, tail := withoutField(m.GetUnknown(), StatusResponseNetworksField)
	m.SetUnknown(append(AppendStatusNetworks(b, names), tail...))
}

// AppendStatusNetworks appends field-5 records for names to encoded, an
// encoded StatusResponse, and returns the extended slice (append semantics:
// encoded's spare capacity may be used). Protobuf decoding concatenates the
// occurrences of a repeated field wherever they are, so a proxy can add the
// field without decoding the runtime's answer. Records already in encoded
// stay, so callers append to answers that have none. No names: encoded is
// returned unchanged.
func AppendStatusNetworks(encoded []byte, names []string) []byte {
	if len(names) == 0 {
		return encoded
	}
	size := 0
	for _, s := range names {
		size += protowire.SizeTag(StatusResponseNetworksField) + protowire.SizeBytes(len(s))
	}
	b := encoded
	if cap(b)-len(b) < size {
		b = make([]byte, len(encoded), len(encoded)+size)
		copy(b, encoded)
	}
	for _, s := range names {
		b = protowire.AppendTag(b, StatusResponseNetworksField, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// podNetworksFeature is StatusResponse{features: {pod_networks: true}}
// encoded.
var podNetworksFeature = protowire.AppendVarint(
	protowire.AppendTag(
		protowire.AppendVarint(protowire.AppendTag(nil, StatusResponseFeaturesField, protowire.BytesType), 2),
		RuntimeFeaturesPodNetworksField, protowire.VarintType),
	1)

// AppendPodNetworksFeature appends features.pod_networks = true to encoded,
// an encoded StatusResponse, and returns the extended slice (append
// semantics). Protobuf decoding merges the occurrences of a message field,
// so the runtime's own features are kept without decoding its answer.
func AppendPodNetworksFeature(encoded []byte) []byte {
	return append(encoded, podNetworksFeature...)
}

// PodNetworksFeature reports whether resp's features set pod_networks (an
// unknown field of the stock RuntimeFeatures).
func PodNetworksFeature(resp *runtimeapi.StatusResponse) (bool, error) {
	f := resp.GetFeatures()
	if f == nil {
		return false, nil
	}
	set := false
	b := f.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, fmt.Errorf("RuntimeFeatures unknown fields: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == RuntimeFeaturesPodNetworksField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false, fmt.Errorf("RuntimeFeatures.pod_networks: %w", protowire.ParseError(m))
			}
			set, b = v != 0, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false, fmt.Errorf("RuntimeFeatures unknown fields: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return set, nil
}

// appendConfigNetworks appends the networks field found among the fields of
// an encoded PodSandboxConfig (or its unknown fields) to nets. Other fields
// are skipped, but must be well-formed.
func appendConfigNetworks(nets []SandboxNetwork, b []byte) ([]SandboxNetwork, bool, error) {
	present := false
	err := eachField(b, PodSandboxConfigNetworksField, func(v []byte) error {
		n, err := parseSandboxNetwork(v)
		if err != nil {
			return fmt.Errorf("networks[%d]: %w", len(nets), err)
		}
		nets, present = append(nets, n), true
		return nil
	})
	return nets, present, err
}

// parseSandboxNetwork decodes one PodSandboxNetwork. Fields it does not know
// are skipped, for messages from a newer sender; like generated proto3 code
// it requires strings to be UTF-8 and lets the last occurrence win.
func parseSandboxNetwork(b []byte) (SandboxNetwork, error) {
	var n SandboxNetwork
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n, protowire.ParseError(l)
		}
		b = b[l:]
		var dst *string
		switch num {
		case sandboxNetworkNameField:
			dst = &n.Name
		case sandboxNetworkInterfaceField:
			dst = &n.InterfaceName
		default:
			if l = protowire.ConsumeFieldValue(num, typ, b); l < 0 {
				return n, fmt.Errorf("field %d: %w", num, protowire.ParseError(l))
			}
			b = b[l:]
			continue
		}
		if typ != protowire.BytesType {
			return n, fmt.Errorf("field %d: wire type %d, want %d", num, typ, protowire.BytesType)
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return n, fmt.Errorf("field %d: %w", num, protowire.ParseError(l))
		}
		if !utf8.Valid(v) {
			return n, fmt.Errorf("field %d: not valid UTF-8", num)
		}
		*dst = string(v)
		b = b[l:]
	}
	return n, nil
}

// sandboxNetworkSize is the encoded size of n, as appendSandboxNetwork
// writes it (proto3: empty strings are omitted).
func sandboxNetworkSize(n SandboxNetwork) int {
	size := 0
	if n.Name != "" {
		size += protowire.SizeTag(sandboxNetworkNameField) + protowire.SizeBytes(len(n.Name))
	}
	if n.InterfaceName != "" {
		size += protowire.SizeTag(sandboxNetworkInterfaceField) + protowire.SizeBytes(len(n.InterfaceName))
	}
	return size
}

// appendSandboxNetwork appends the fields of n (without a length prefix).
func appendSandboxNetwork(b []byte, n SandboxNetwork) []byte {
	if n.Name != "" {
		b = protowire.AppendTag(b, sandboxNetworkNameField, protowire.BytesType)
		b = protowire.AppendString(b, n.Name)
	}
	if n.InterfaceName != "" {
		b = protowire.AppendTag(b, sandboxNetworkInterfaceField, protowire.BytesType)
		b = protowire.AppendString(b, n.InterfaceName)
	}
	return b
}

// eachField calls fn with the value of every occurrence of field num in the
// encoded fields b, which must be length-delimited. Every other field is
// skipped but must be well-formed. Errors name the field.
func eachField(b []byte, num protowire.Number, fn func(v []byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n != num {
			if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
				return fmt.Errorf("field %d: %w", n, protowire.ParseError(l))
			}
			b = b[l:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: wire type %d, want %d", n, typ, protowire.BytesType)
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return fmt.Errorf("field %d: %w", n, protowire.ParseError(l))
		}
		b = b[l:]
		if err := fn(v); err != nil {
			return fmt.Errorf("field %d: %w", n, err)
		}
	}
	return nil
}

// withoutField splits the encoded fields b into the fields other than num
// (in a new slice) and a tail it cannot parse. Callers put the tail back
// last, after what they add: dropping it would hide the corruption from the
// next reader, and anything appended after it could be swallowed by a
// truncated length and vanish.
func withoutField(b []byte, num protowire.Number) (kept, tail []byte) {
	kept = make([]byte, 0, len(b))
	for len(b) > 0 {
		n, _, l := protowire.ConsumeField(b)
		if l < 0 {
			return kept, b
		}
		if n != num {
			kept = append(kept, b[:l]...)
		}
		b = b[l:]
	}
	return kept, nil
}
