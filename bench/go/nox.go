//go:build nox

// Built when golang.org/x/sync and golang.org/x/time are not installed:
// the workloads that need them print "-", never a stand-in.
package main

import "math"

func errgroupBench() float64 { return math.NaN() }
func rateAllow() float64     { return math.NaN() }
func rateWait() float64      { return math.NaN() }
