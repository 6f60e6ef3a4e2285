// Command cri-proxy sits between kubelet and containerd: it forwards every
// CRI call untouched and attaches the networks pods ask for. See
// cri-proxy/README.md.
package main

import "sigs.k8s.io/pod-networks/cri-proxy/app"

func main() { app.Main() }
