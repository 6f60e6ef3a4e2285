// Command localcluster brings the project's local multi-node cluster up and
// down and runs the demo; see hack/localcluster/app.
package main

import "sigs.k8s.io/pod-networks/hack/localcluster/app"

func main() { app.Main() }
