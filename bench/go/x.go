//go:build !nox

// The workloads on golang.org/x/sync/errgroup and golang.org/x/time/rate,
// from Debian's golang-golang-x-sync-dev and golang-golang-x-time-dev
// (bench/run builds with GOPATH=/usr/share/gocode, GO111MODULE=off). Without
// them bench/run builds with -tags nox and nox.go prints "-".
package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// errgroupBench: an errgroup of 100,000 tasks that return nil, then Wait:
// ns per task, the median of nrounds rounds as spawn's.
func errgroupBench() float64 {
	const n = 100000
	rounds := make([]float64, nrounds)
	for r := range rounds {
		t0 := time.Now()
		g, _ := errgroup.WithContext(context.Background())
		for i := 0; i < n; i++ {
			g.Go(func() error { return nil })
		}
		check(g.Wait())
		rounds[r] = float64(time.Since(t0).Nanoseconds()) / n
	}
	return median(rounds)
}

// rateAllow: Allow on a limiter that always has a token (a finite limit, so
// the bucket's arithmetic runs; rate.Inf would skip it): ns per call.
func rateAllow() float64 {
	const n = 1000000
	l := rate.NewLimiter(1e9, n)
	ok := 0
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if l.Allow() {
			ok++
		}
	}
	d := float64(time.Since(t0).Nanoseconds()) / n
	if ok != n {
		check(fmt.Errorf("rate_allow: %d of %d allowed", ok, n))
	}
	return d
}

// rateWait: Wait at 1,000/s (burst 1) for a second on real time; the mean
// |interval - 1 ms| between consecutive returns, in us.
func rateWait() float64 {
	const n = 1000
	l := rate.NewLimiter(1000, 1)
	ctx := context.Background()
	check(l.Wait(ctx))
	prev := time.Now()
	sum := 0.0
	for i := 0; i < n; i++ {
		check(l.Wait(ctx))
		now := time.Now()
		sum += math.Abs(float64(now.Sub(prev).Nanoseconds())/1e3 - 1000)
		prev = now
	}
	return sum / n
}
