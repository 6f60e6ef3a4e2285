package main

import (
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2, integer
		{[]time.Duration{10, 30, 20, 40}, 25},
	} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median sorted its input: %v", tc.in)
		}
	}
	if got := median([]float64{0.5, 1.5, 1}); got != 1 {
		t.Errorf("median of floats = %v, want 1", got)
	}
}

func TestRatios(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v", got)
	}
	if got := ratio(3, 0); got != 0 {
		t.Errorf("ratio(3, 0) = %v, want 0", got)
	}
	got := pairedRatios([]time.Duration{2, 6, 9}, []time.Duration{1, 3})
	if !slices.Equal(got, []float64{2, 2}) {
		t.Errorf("pairedRatios = %v, want [2 2]", got)
	}
}

func TestRotation(t *testing.T) {
	first := map[int]int{}
	for i := range 8 {
		order := rotation(i, 4)
		sorted := slices.Sorted(slices.Values(order))
		if !slices.Equal(sorted, []int{0, 1, 2, 3}) {
			t.Fatalf("rotation(%d, 4) = %v, not a permutation", i, order)
		}
		first[order[0]]++
	}
	for p := range 4 {
		if first[p] != 2 {
			t.Errorf("path %d first %d times in 8 rounds, want 2", p, first[p])
		}
	}
}
