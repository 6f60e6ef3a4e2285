// Command kube-scheduler is the upstream kube-scheduler with the
// NodeNetworks plugin compiled in (its stock build, annotations only): this
// repository's pod-networks-scheduler, for stock clusters. Enable it in a
// profile with the configuration in scheduler-plugin/config. (In the patched
// Kubernetes the plugin is in-tree, and pod-networks-scheduler is
// cmd/kube-scheduler built with -tags podnetworks_native: see
// hack/build-kube-patched.sh.)
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"sigs.k8s.io/pod-networks/scheduler-plugin/pkg/nodenetworks"
)

func main() {
	cmd := app.NewSchedulerCommand(app.WithPlugin(nodenetworks.Name, nodenetworks.New))
	os.Exit(cli.Run(cmd))
}
