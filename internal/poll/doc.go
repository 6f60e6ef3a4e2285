// Package poll waits for a condition on apimachinery's wait package, and
// keeps the condition's last reason for not being done, so that a timeout
// says what was still missing rather than only "context deadline exceeded".
//
// It is the one polling helper of the local cluster, its e2e tests, the
// demo and the benchmark tools.
package poll
