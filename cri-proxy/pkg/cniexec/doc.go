// Package cniexec runs CNI plugin processes for libcni (an invoke.Exec):
// each in its own process group, killed with it when the call's context
// ends or the proxy dies, at most a configured number at once on the node.
// KillOrphans finds and kills what a killed proxy's plugins left running,
// before a restarted proxy deletes anything.
package cniexec
