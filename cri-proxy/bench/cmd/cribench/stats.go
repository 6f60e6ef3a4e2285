package main

import (
	"slices"
	"time"
)

// median returns the middle of xs (the mean of the two middle values when
// their number is even); 0 for none.
func median[T time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio is a/b; 0 when b is 0.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// pairedRatios returns a[i]/b[i] for samples taken in the same round.
func pairedRatios(a, b []time.Duration) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = ratio(a[i], b[i])
	}
	return out
}

// rotation returns the order in which n paths are called in round i: each
// round starts one further, so every path is as often first, second, ...
func rotation(i, n int) []int {
	order := make([]int, n)
	for j := range order {
		order[j] = (i + j) % n
	}
	return order
}
