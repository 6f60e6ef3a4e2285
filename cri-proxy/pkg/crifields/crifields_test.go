package crifields

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The field numbers below are written out on purpose instead of using the
// package's constants: these tests are the proto definition, and must fail
// if the constants drift from it.
//
//	message PodSandboxNetwork { string name = 1; string interface_name = 2; }
//	PodSandboxConfig { ...; repeated PodSandboxNetwork networks = 10; }
//	StatusResponse   { ...; repeated string networks = 5; }

// wireSandboxNetwork hand-encodes one PodSandboxConfig.networks record.
func wireSandboxNetwork(b []byte, name, ifname string) []byte {
	var inner []byte
	if name != "" {
		inner = protowire.AppendTag(inner, 1, protowire.BytesType)
		inner = protowire.AppendString(inner, name)
	}
	if ifname != "" {
		inner = protowire.AppendTag(inner, 2, protowire.BytesType)
		inner = protowire.AppendString(inner, ifname)
	}
	b = protowire.AppendTag(b, 10, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// wireStatusNetwork hand-encodes one StatusResponse.networks record.
func wireStatusNetwork(b []byte, name string) []byte {
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendString(b, name)
}

// wireVarint hand-encodes a varint field, standing for some other unknown
// field (such as a future field 11).
func wireVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "default", Uid: "u1"},
		Hostname:     "p",
		Annotations:  map[string]string{"networking.x-k8s.io/networks": "blue"},
		Labels:       map[string]string{"app": "x"},
		LogDirectory: "/var/log/pods/x",
	}
}

var testNets = []SandboxNetwork{{Name: "blue", InterfaceName: "net1"}, {Name: "red"}, {InterfaceName: "only-if"}}

func TestFieldNumbers(t *testing.T) {
	if PodSandboxConfigNetworksField != 10 || StatusResponseNetworksField != 5 {
		t.Errorf("field numbers %d, %d; the proto says 10, 5", PodSandboxConfigNetworksField, StatusResponseNetworksField)
	}
	// Byte for byte: tag (10<<3)|2, length, then name (tag 1<<3|2) and
	// interface_name (tag 2<<3|2).
	want := []byte{0x52, 12, 0x0a, 4, 'b', 'l', 'u', 'e', 0x12, 4, 'n', 'e', 't', '1'}
	if got := wireSandboxNetwork(nil, "blue", "net1"); !bytes.Equal(got, want) {
		t.Fatalf("test helper encodes %x, want %x", got, want)
	}

	cfg := testConfig()
	SetSandboxNetworks(cfg, testNets)
	var wantUnknown []byte
	for _, n := range testNets {
		wantUnknown = wireSandboxNetwork(wantUnknown, n.Name, n.InterfaceName)
	}
	if got := cfg.ProtoReflect().GetUnknown(); !bytes.Equal(got, wantUnknown) {
		t.Errorf("SetSandboxNetworks wrote %x, want %x", got, wantUnknown)
	}
	// Unknown fields go after the known ones on the wire.
	if got, want := marshal(t, cfg), append(marshal(t, testConfig()), wantUnknown...); !bytes.Equal(got, want) {
		t.Errorf("PodSandboxConfig encodes as\n%x, want\n%x", got, want)
	}

	resp := &runtimeapi.StatusResponse{}
	SetStatusNetworks(resp, []string{"blue", "red"})
	if got, want := marshal(t, resp), []byte{0x2a, 4, 'b', 'l', 'u', 'e', 0x2a, 3, 'r', 'e', 'd'}; !bytes.Equal(got, want) {
		t.Errorf("StatusResponse encodes as %x, want %x", got, want)
	}
}

func TestSandboxNetworksHandEncoded(t *testing.T) {
	// What a kubelet with the field would send: known fields, then field 10.
	b := marshal(t, testConfig())
	b = wireSandboxNetwork(b, "blue", "net1")
	b = wireSandboxNetwork(b, "red", "")
	var cfg runtimeapi.PodSandboxConfig
	if err := proto.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	nets, present, err := SandboxNetworks(&cfg)
	if err != nil || !present {
		t.Fatalf("SandboxNetworks = %v, %v, %v", nets, present, err)
	}
	if want := []SandboxNetwork{{"blue", "net1"}, {"red", ""}}; !reflect.DeepEqual(nets, want) {
		t.Errorf("got %+v, want %+v", nets, want)
	}
	if cfg.GetHostname() != "p" || cfg.GetMetadata().GetUid() != "u1" {
		t.Errorf("known fields lost: %v", &cfg)
	}
}

func TestSandboxNetworksRoundTrip(t *testing.T) {
	cfg := testConfig()
	SetSandboxNetworks(cfg, testNets)
	// Through the stock generated types, as the proxy forwards it: the
	// unknown field survives decoding and re-encoding.
	var mid runtimeapi.PodSandboxConfig
	if err := proto.Unmarshal(marshal(t, cfg), &mid); err != nil {
		t.Fatal(err)
	}
	var out runtimeapi.PodSandboxConfig
	if err := proto.Unmarshal(marshal(t, &mid), &out); err != nil {
		t.Fatal(err)
	}
	nets, present, err := SandboxNetworks(&out)
	if err != nil || !present || !reflect.DeepEqual(nets, testNets) {
		t.Errorf("SandboxNetworks = %+v, %v, %v; want %+v", nets, present, err, testNets)
	}
	out.ProtoReflect().SetUnknown(nil)
	if !proto.Equal(&out, testConfig()) {
		t.Errorf("known fields changed: %v", &out)
	}

	// Replacing, then removing.
	SetSandboxNetworks(&out, []SandboxNetwork{{Name: "green"}})
	if nets, _, _ := SandboxNetworks(&out); !reflect.DeepEqual(nets, []SandboxNetwork{{Name: "green"}}) {
		t.Errorf("after replacing: %+v", nets)
	}
	SetSandboxNetworks(&out, nil)
	if nets, present, err := SandboxNetworks(&out); nets != nil || present || err != nil {
		t.Errorf("after removing: %+v, %v, %v", nets, present, err)
	}
	if len(out.ProtoReflect().GetUnknown()) != 0 {
		t.Errorf("unknown fields left: %x", out.ProtoReflect().GetUnknown())
	}
}

func TestSandboxNetworksOtherUnknownFields(t *testing.T) {
	var unknown []byte
	unknown = wireVarint(unknown, 11, 7)
	unknown = wireSandboxNetwork(unknown, "old", "")
	unknown = protowire.AppendTag(unknown, 12, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "future")
	unknown = wireSandboxNetwork(unknown, "old2", "x")

	cfg := testConfig()
	cfg.ProtoReflect().SetUnknown(unknown)
	nets, present, err := SandboxNetworks(cfg)
	if err != nil || !present || !reflect.DeepEqual(nets, []SandboxNetwork{{Name: "old"}, {"old2", "x"}}) {
		t.Fatalf("SandboxNetworks = %+v, %v, %v", nets, present, err)
	}

	SetSandboxNetworks(cfg, []SandboxNetwork{{"blue", "net1"}})
	var want []byte
	want = wireVarint(want, 11, 7)
	want = protowire.AppendTag(want, 12, protowire.BytesType)
	want = protowire.AppendString(want, "future")
	want = wireSandboxNetwork(want, "blue", "net1")
	if got := cfg.ProtoReflect().GetUnknown(); !bytes.Equal(got, want) {
		t.Errorf("unknown fields\n%x, want\n%x", got, want)
	}
	if nets, _, err := SandboxNetworks(cfg); err != nil || !reflect.DeepEqual(nets, []SandboxNetwork{{"blue", "net1"}}) {
		t.Errorf("after replacing: %+v, %v", nets, err)
	}

	// Only field 11: no networks.
	cfg.ProtoReflect().SetUnknown(wireVarint(nil, 11, 7))
	if nets, present, err := SandboxNetworks(cfg); nets != nil || present || err != nil {
		t.Errorf("with field 11 only: %+v, %v, %v", nets, present, err)
	}
}

func TestSandboxNetworksAbsent(t *testing.T) {
	for name, cfg := range map[string]*runtimeapi.PodSandboxConfig{
		"nil":   nil,
		"empty": {},
		"stock": testConfig(),
		"set to none": func() *runtimeapi.PodSandboxConfig {
			c := testConfig()
			SetSandboxNetworks(c, []SandboxNetwork{})
			return c
		}(),
	} {
		if nets, present, err := SandboxNetworks(cfg); nets != nil || present || err != nil {
			t.Errorf("%s: SandboxNetworks = %+v, %v, %v; want nil, false, nil", name, nets, present, err)
		}
	}
	// An empty element is still an occurrence of the field.
	cfg := testConfig()
	SetSandboxNetworks(cfg, []SandboxNetwork{{}})
	if nets, present, err := SandboxNetworks(cfg); !present || err != nil || !reflect.DeepEqual(nets, []SandboxNetwork{{}}) {
		t.Errorf("one empty element: %+v, %v, %v", nets, present, err)
	}
}

func TestSandboxNetworksMalformed(t *testing.T) {
	good := wireSandboxNetwork(nil, "blue", "net1")
	inner := func(f func([]byte) []byte) []byte {
		b := protowire.AppendTag(nil, 10, protowire.BytesType)
		return protowire.AppendBytes(b, f(nil))
	}
	for name, tc := range map[string]struct {
		unknown []byte
		err     string
	}{
		"truncated record":   {good[:len(good)-2], "field 10: unexpected EOF"},
		"truncated tag":      {[]byte{0xd2}, "unexpected EOF"},
		"varint field 10":    {wireVarint(nil, 10, 1), "field 10: wire type 0, want 2"},
		"truncated field 11": {append(good, protowire.AppendTag(nil, 11, protowire.BytesType)...), "field 11: unexpected EOF"},
		"bad inner tag":      {inner(func(b []byte) []byte { return append(b, 0xff) }), "field 10: networks[0]: unexpected EOF"},
		"varint name": {inner(func(b []byte) []byte { return wireVarint(b, 1, 3) }),
			"field 10: networks[0]: field 1: wire type 0, want 2"},
		"name not UTF-8": {inner(func(b []byte) []byte {
			return protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), "\xff")
		}), "field 10: networks[0]: field 1: not valid UTF-8"},
		"second record bad": {append(append([]byte(nil), good...), inner(func(b []byte) []byte { return wireVarint(b, 2, 3) })...),
			"networks[1]: field 2: wire type 0"},
	} {
		cfg := testConfig()
		cfg.ProtoReflect().SetUnknown(tc.unknown)
		nets, present, err := SandboxNetworks(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: SandboxNetworks = %+v, %v, %v; want an error containing %q", name, nets, present, err, tc.err)
		}
		if nets != nil || present {
			t.Errorf("%s: got %+v, %v with an error", name, nets, present)
		}
	}

	// Unknown fields inside a record (from a newer sender) are skipped.
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "blue")
	b = wireVarint(b, 3, 9)
	cfg := testConfig()
	cfg.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 10, protowire.BytesType), b))
	if nets, present, err := SandboxNetworks(cfg); err != nil || !present || !reflect.DeepEqual(nets, []SandboxNetwork{{Name: "blue"}}) {
		t.Errorf("record with field 3: %+v, %v, %v", nets, present, err)
	}

	// Setting over malformed bytes keeps them, so the corruption stays
	// visible to the next reader.
	cfg.ProtoReflect().SetUnknown(good[:len(good)-2])
	SetSandboxNetworks(cfg, []SandboxNetwork{{Name: "red"}})
	if _, _, err := SandboxNetworks(cfg); err == nil {
		t.Error("malformed bytes disappeared")
	}
}

func TestSandboxNetworksFromRunRequest(t *testing.T) {
	cfg := testConfig()
	SetSandboxNetworks(cfg, testNets)
	req := &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "runc"}
	nets, present, err := SandboxNetworksFromRunRequest(marshal(t, req))
	if err != nil || !present || !reflect.DeepEqual(nets, testNets) {
		t.Errorf("SandboxNetworksFromRunRequest = %+v, %v, %v; want %+v", nets, present, err, testNets)
	}

	// The same answer as decoding the request and asking the config.
	var decoded runtimeapi.RunPodSandboxRequest
	if err := proto.Unmarshal(marshal(t, req), &decoded); err != nil {
		t.Fatal(err)
	}
	if viaDecode, _, _ := SandboxNetworks(decoded.GetConfig()); !reflect.DeepEqual(viaDecode, nets) {
		t.Errorf("decoded: %+v, walked: %+v", viaDecode, nets)
	}

	// A config split over two occurrences of field 1 merges, records in order.
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, wireSandboxNetwork(marshal(t, testConfig()), "blue", ""))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "runc")
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, wireSandboxNetwork(nil, "red", "x"))
	want := []SandboxNetwork{{Name: "blue"}, {"red", "x"}}
	if nets, present, err := SandboxNetworksFromRunRequest(b); err != nil || !present || !reflect.DeepEqual(nets, want) {
		t.Errorf("split config: %+v, %v, %v; want %+v", nets, present, err, want)
	}
	if err := proto.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if viaDecode, _, _ := SandboxNetworks(decoded.GetConfig()); !reflect.DeepEqual(viaDecode, want) {
		t.Errorf("split config decoded by protobuf: %+v, want %+v", viaDecode, want)
	}

	for name, b := range map[string][]byte{
		"empty":        nil,
		"no config":    marshal(t, &runtimeapi.RunPodSandboxRequest{RuntimeHandler: "runc"}),
		"stock config": marshal(t, &runtimeapi.RunPodSandboxRequest{Config: testConfig()}),
	} {
		if nets, present, err := SandboxNetworksFromRunRequest(b); nets != nil || present || err != nil {
			t.Errorf("%s: %+v, %v, %v; want nil, false, nil", name, nets, present, err)
		}
	}

	full := marshal(t, req)
	for name, b := range map[string][]byte{
		"truncated":      full[:len(full)-1],
		"varint config":  wireVarint(nil, 1, 1),
		"bad config":     protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), wireVarint(nil, 10, 1)),
		"bad other":      []byte{0x12, 5, 'r'},
		"bad tag number": {0x00},
	} {
		if nets, present, err := SandboxNetworksFromRunRequest(b); err == nil || nets != nil || present {
			t.Errorf("%s: %+v, %v, %v; want an error", name, nets, present, err)
		}
	}
}

func testStatus() *runtimeapi.StatusResponse {
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		}},
		Info:            map[string]string{"config": "{}"},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "runc", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}}},
		Features:        &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
}

func TestAppendStatusNetworks(t *testing.T) {
	encoded := marshal(t, testStatus())
	orig := append([]byte(nil), encoded...)
	out := AppendStatusNetworks(encoded, []string{"blue", "red"})
	if !bytes.Equal(encoded, orig) {
		t.Error("the input changed")
	}
	if want := wireStatusNetwork(wireStatusNetwork(append([]byte(nil), orig...), "blue"), "red"); !bytes.Equal(out, want) {
		t.Errorf("got %x, want %x", out, want)
	}
	var resp runtimeapi.StatusResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if names, err := StatusNetworks(&resp); err != nil || !reflect.DeepEqual(names, []string{"blue", "red"}) {
		t.Errorf("StatusNetworks = %q, %v", names, err)
	}
	resp.ProtoReflect().SetUnknown(nil)
	if !proto.Equal(&resp, testStatus()) {
		t.Errorf("known fields changed: %v", &resp)
	}

	// Spare capacity is used, as append would.
	withRoom := make([]byte, len(orig), len(orig)+64)
	copy(withRoom, orig)
	if out := AppendStatusNetworks(withRoom, []string{"blue"}); &out[0] != &withRoom[0] {
		t.Error("spare capacity not used")
	}
	if out := AppendStatusNetworks(orig, nil); !bytes.Equal(out, orig) {
		t.Error("no names changed the message")
	}
	// An empty message is a valid StatusResponse.
	if err := proto.Unmarshal(AppendStatusNetworks(nil, []string{"blue"}), &resp); err != nil {
		t.Fatal(err)
	}
	if names, err := StatusNetworks(&resp); err != nil || !reflect.DeepEqual(names, []string{"blue"}) {
		t.Errorf("StatusNetworks = %q, %v", names, err)
	}
}

func TestStatusNetworks(t *testing.T) {
	resp := testStatus()
	if names, err := StatusNetworks(resp); names != nil || err != nil {
		t.Errorf("stock response: %q, %v", names, err)
	}
	if names, err := StatusNetworks(nil); names != nil || err != nil {
		t.Errorf("nil response: %q, %v", names, err)
	}
	resp.ProtoReflect().SetUnknown(wireVarint(nil, 6, 1))
	SetStatusNetworks(resp, []string{"blue", "red"})
	var out runtimeapi.StatusResponse
	if err := proto.Unmarshal(marshal(t, resp), &out); err != nil {
		t.Fatal(err)
	}
	if names, err := StatusNetworks(&out); err != nil || !reflect.DeepEqual(names, []string{"blue", "red"}) {
		t.Errorf("round trip: %q, %v", names, err)
	}
	SetStatusNetworks(&out, []string{"green"})
	if names, _ := StatusNetworks(&out); !reflect.DeepEqual(names, []string{"green"}) {
		t.Errorf("after replacing: %q", names)
	}
	SetStatusNetworks(&out, nil)
	if names, err := StatusNetworks(&out); names != nil || err != nil {
		t.Errorf("after removing: %q, %v", names, err)
	}
	if got, want := out.ProtoReflect().GetUnknown(), wireVarint(nil, 6, 1); !bytes.Equal(got, want) {
		t.Errorf("other unknown fields: %x, want %x", got, want)
	}

	for name, tc := range map[string]struct {
		unknown []byte
		err     string
	}{
		"varint":    {wireVarint(nil, 5, 1), "field 5: wire type 0, want 2"},
		"truncated": {wireStatusNetwork(nil, "blue")[:3], "field 5: unexpected EOF"},
		"not UTF-8": {wireStatusNetwork(nil, "\xfe"), "field 5: networks[0]: not valid UTF-8"},
	} {
		resp := &runtimeapi.StatusResponse{}
		resp.ProtoReflect().SetUnknown(tc.unknown)
		if names, err := StatusNetworks(resp); err == nil || names != nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %q, %v; want an error containing %q", name, names, err, tc.err)
		}
	}
}

func BenchmarkAppendStatusNetworks(b *testing.B) {
	encoded, _ := proto.Marshal(testStatus())
	names := []string{"blue", "green", "red"}
	b.ReportAllocs()
	for b.Loop() {
		AppendStatusNetworks(encoded, names)
	}
}

// The feature bit is merged into the runtime's own features: those stay,
// and a runtime that sends none gets a features message with the bit alone.
func TestAppendPodNetworksFeature(t *testing.T) {
	if StatusResponseFeaturesField != 4 || RuntimeFeaturesPodNetworksField != 4 {
		t.Errorf("field numbers %d, %d; the proto says 4, 4", StatusResponseFeaturesField, RuntimeFeaturesPodNetworksField)
	}
	if got, want := AppendPodNetworksFeature(nil), []byte{0x22, 2, 0x20, 1}; !bytes.Equal(got, want) {
		t.Errorf("encodes as %x, want %x", got, want)
	}
	for _, base := range []*runtimeapi.StatusResponse{testStatus(), {}} {
		var resp runtimeapi.StatusResponse
		if err := proto.Unmarshal(AppendPodNetworksFeature(marshal(t, base)), &resp); err != nil {
			t.Fatal(err)
		}
		if set, err := PodNetworksFeature(&resp); err != nil || !set {
			t.Errorf("PodNetworksFeature = %v, %v; want true", set, err)
		}
		if resp.GetFeatures().GetSupplementalGroupsPolicy() != base.GetFeatures().GetSupplementalGroupsPolicy() {
			t.Errorf("the runtime's features changed: %v", resp.GetFeatures())
		}
	}
	if set, err := PodNetworksFeature(testStatus()); err != nil || set {
		t.Errorf("PodNetworksFeature of a runtime without the bit = %v, %v", set, err)
	}
}
