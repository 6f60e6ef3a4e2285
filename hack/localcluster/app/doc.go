// Package app is the localcluster command: `up`, `down` and `demo` over
// package localcluster. Run is what tests call; Main wires it to the process.
//
// Output contract: progress lines go to stderr, results (the kubeconfig path,
// the demo summary) to stdout. `down` with nothing running prints nothing.
package app
