// Package server holds the CRI proxy's intercepted RPCs, one file each:
// RunPodSandbox attaches a pod's requested networks after containerd made
// the sandbox, Stop/RemovePodSandbox detach them before containerd tears the
// sandbox down, Status reports the node's networks, and PodSandboxStatus
// shows the attachments. Every other call is forwarded untouched by package
// forward, which calls these handlers with raw request bytes.
package intercept
