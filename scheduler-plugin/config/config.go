// Package config holds the KubeSchedulerConfiguration that enables the
// NodeNetworks plugin (scheduler-config.yaml), for tools that start the
// scheduler, such as the local cluster.
package config

import _ "embed"

// SchedulerConfig returns scheduler-config.yaml. The string {{KUBECONFIG}}
// in it stands for the scheduler's kubeconfig path.
func SchedulerConfig() []byte { return append([]byte(nil), schedulerConfig...) }

//go:embed scheduler-config.yaml
var schedulerConfig []byte
