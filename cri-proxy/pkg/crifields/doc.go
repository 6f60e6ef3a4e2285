// Package crifields reads and writes the CRI fields this project proposes
// before k8s.io/cri-api has them:
//
//	message PodSandboxNetwork { string name = 1; string interface_name = 2; }
//	PodSandboxConfig: repeated PodSandboxNetwork networks = 10;
//	StatusResponse:   repeated string networks = 5;
//
// A kubelet built with the fields sends and receives them; the stock
// generated types (k8s.io/cri-api v0.37.2) keep them as protobuf unknown
// fields, which survive decoding and re-encoding. This package works on
// those unknown fields with protowire, so the proxy needs no generated code
// of its own. Once cri-api declares the fields, the generated types will
// decode them as known fields and these helpers will no longer see them:
// that is the moment to switch to the typed getters.
package crifields
