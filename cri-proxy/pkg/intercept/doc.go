// Package intercept holds the CRI calls the proxy acts on, one file each;
// package forward passes every other call to the runtime untouched and
// calls these handlers with raw request bytes:
//
//   - RunPodSandbox refuses, before forwarding, requests that are invalid or
//     that the node's networks cannot honour (missing, or a capability arg
//     no plugin of the network declares); it records the intent, forwards,
//     then attaches the pod's networks to the sandbox the runtime made; on
//     failure the sandbox is stopped and removed, so a failed call leaves
//     nothing behind. Statuses stay small whatever the request's size.
//   - CreateContainer lets a container start only in a sandbox that has
//     every network its pod asked for; otherwise the sandbox is stopped so
//     kubelet makes a new one. This is the guarantee that survives a killed
//     proxy or a cancelled RunPodSandbox.
//   - StopPodSandbox and RemovePodSandbox detach the networks first, within
//     half of the call's remaining time, so the runtime always gets the call.
//   - Status reports the node's networks (StatusResponse field 5), and
//     PodSandboxStatus shows the attachments when verbose.
package intercept
