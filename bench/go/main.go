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

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gobench pingpong|spawn|sleepers|buffered|select")
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
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", w)
		os.Exit(2)
	}
}
