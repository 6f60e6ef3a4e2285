// Package config holds the KubeSchedulerConfiguration that enables the
// NodeNetworks plugin (scheduler-config.yaml), for tools that start the
// scheduler, such as the local cluster.
package config

import _ "embed"

// SchedulerConfig returns scheduler-config.yaml. Its kubeconfig is
// kubeadm's path for the scheduler; tools set their own.
func SchedulerConfig() []byte { return append([]byte(nil), schedulerConfig...) }

//go:embed scheduler-config.yaml
var schedulerConfig []byte
