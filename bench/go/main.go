// Go's figures for the same workloads as bench/weft_bench.lua, printed as
// "name value" lines. Run by bench/run with GOMAXPROCS set per workload.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func pingpong() float64 {
	const n = 1000000
	a, b := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			b <- <-a
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		a <- i
		<-b
	}
	return float64(time.Since(t0).Nanoseconds()) / n
}

func spawn() float64 {
	const n = 100000
	best := 1e18
	for r := 0; r < 5; r++ {
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { wg.Done() }()
		}
		wg.Wait()
		if d := float64(time.Since(t0).Nanoseconds()) / n; d < best {
			best = d
		}
	}
	return best
}

func maxrssKB() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss
}

func sleepers() (float64, float64) {
	const n = 1000000
	base := maxrssKB()
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { time.Sleep(100 * time.Millisecond); wg.Done() }()
	}
	wg.Wait()
	return time.Since(t0).Seconds(), float64(maxrssKB()-base) * 1024 / n
}

func buffered() float64 {
	const n = 2000000
	ch := make(chan int, 128)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	for range ch {
	}
	return float64(time.Since(t0).Nanoseconds()) / n
}

func selects() float64 {
	const n = 1000000
	a, b, c, d := make(chan int, 1), make(chan int, 1), make(chan int, 1), make(chan int, 1)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		c <- i
		select {
		case <-a:
		case <-b:
		case <-c:
		case <-d:
		}
	}
	mid := time.Now()
	for i := 0; i < n; i++ {
		c <- i
		<-c
	}
	sel := mid.Sub(t0).Nanoseconds()
	plain := time.Since(mid).Nanoseconds()
	return float64(sel-plain/2) / n
}

// spin is the CPU-bound job of weft's cpu16: the same arithmetic.
func spin(n int) int {
	s := 0
	for i := 1; i <= n; i++ {
		s = (s + i*7) % 1000003
	}
	return s
}

var sink int

// cpu16 runs 16 jobs of ~50 ms one after another, then on goroutines:
// the speed-up, the serial and the parallel seconds.
func cpu16() (float64, float64, float64) {
	n := 1
	for {
		n *= 2
		t0 := time.Now()
		sink += spin(n)
		if d := time.Since(t0).Seconds(); d > 0.025 {
			n = int(float64(n) * 0.05 / d)
			break
		}
	}
	t0 := time.Now()
	for i := 0; i < 16; i++ {
		sink += spin(n)
	}
	serial := time.Since(t0).Seconds()
	var wg sync.WaitGroup
	res := make([]int, 16)
	t0 = time.Now()
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) { res[i] = spin(n); wg.Done() }(i)
	}
	wg.Wait()
	par := time.Since(t0).Seconds()
	return serial / par, serial, par
}

// workrt is weft.work's trivial round trip in Go: a goroutine that
// computes nothing and answers on a channel, one at a time; us per job.
func workrt() float64 {
	const n = 20000
	ch := make(chan int)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func(x int) { ch <- x }(i)
		<-ch
	}
	return float64(time.Since(t0).Nanoseconds()) / n / 1000
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gobench pingpong|spawn|sleepers|buffered|select|cpu16|workrt")
		os.Exit(2)
	}
	runtime.GC()
	switch w := os.Args[1]; w {
	case "pingpong":
		fmt.Println(w, pingpong())
	case "spawn":
		fmt.Println(w, spawn())
	case "sleepers":
		s, b := sleepers()
		fmt.Println(w, s, b)
	case "buffered":
		fmt.Println(w, buffered())
	case "select":
		fmt.Println(w, selects())
	case "cpu16":
		s, a, b := cpu16()
		fmt.Println(w, s, a, b)
	case "workrt":
		fmt.Println(w, workrt())
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", w)
		os.Exit(2)
	}
}
