// Package app is the localcluster command: `up`, `down` and `demo` over
// package localcluster. Run is what tests call; Main wires it to the process.
//
// Output contract: progress lines go to stderr, results (the kubeconfig path,
// the demo summary) to stdout. `down` with nothing running prints nothing.
// `demo` also writes what it found as JSON (DemoResult) to -result-json,
// <state-dir>/demo-result.json by default; its stdout is that result
// rendered (RenderDemo), a section at a time as the demo completes each. A
// section that cannot be completed fails the demo before any of it is
// printed, and no result is written.
package app
