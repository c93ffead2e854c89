// Go's figures for the same workloads as bench/weft_bench.lua, printed as
// "name value" lines. Run by bench/run with GOMAXPROCS set per workload.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
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
	rounds := make([]float64, nrounds)
	for r := range rounds {
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { wg.Done() }()
		}
		wg.Wait()
		rounds[r] = float64(time.Since(t0).Nanoseconds()) / n
	}
	return median(rounds)
}

// nrounds of spawn and errgroup in one process, the median taken: as
// bench/weft_bench.lua's.
const nrounds = 15

// median of rounds, as the Lua scripts take it (the lower middle one of an
// even count).
func median(rounds []float64) float64 {
	sort.Float64s(rounds)
	return rounds[(len(rounds)-1)/2]
}

func maxrssKB() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss
}

// sleepers: n goroutines each sleeping 100 ms: wall seconds, peak RSS per
// goroutine.
func sleepers(n int) (float64, float64) {
	base := maxrssKB()
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { time.Sleep(100 * time.Millisecond); wg.Done() }()
	}
	wg.Wait()
	return time.Since(t0).Seconds(), float64(maxrssKB()-base) * 1024 / float64(n)
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

// I/O, on loopback only, server and clients in this one process, as
// weft's figures are measured.

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// echo: 100 connections, each 1,000 round trips of 64 bytes, all at once,
// a goroutine per connection on each side; requests per second. The
// connections are made before the clock starts.
func echo() float64 {
	const c, n, size = 100, 1000, 64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	var serving sync.WaitGroup
	go func() {
		for i := 0; i < c; i++ {
			conn, err := ln.Accept()
			check(err)
			serving.Add(1)
			go func() {
				buf := make([]byte, 65536)
				for {
					k, err := conn.Read(buf)
					if err != nil {
						break
					}
					_, err = conn.Write(buf[:k])
					check(err)
				}
				conn.Close()
				serving.Done()
			}()
		}
	}()
	conns := make([]net.Conn, c)
	for i := range conns {
		conns[i], err = net.Dial("tcp", ln.Addr().String())
		check(err)
	}
	msg := bytes.Repeat([]byte("x"), size)
	var clients sync.WaitGroup
	t0 := time.Now()
	for _, conn := range conns {
		clients.Add(1)
		go func(conn net.Conn) {
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				_, err := conn.Write(msg)
				check(err)
				_, err = io.ReadFull(conn, buf)
				check(err)
				if !bytes.Equal(buf, msg) {
					check(fmt.Errorf("echo: wrong bytes"))
				}
			}
			clients.Done()
		}(conn)
	}
	clients.Wait()
	dt := time.Since(t0).Seconds()
	for _, conn := range conns {
		conn.Close()
	}
	serving.Wait()
	ln.Close()
	return c * n / dt
}

// bulk: mib * 16 writes of 64 KiB + 1 random bytes over one connection
// (weft's figure needs the odd size; Go does not care), read 64 KiB at a
// time until EOF: MB/s (1e6 bytes) and the bytes.
func bulk(mib int) (float64, int) {
	writes := mib * 16
	chunk := make([]byte, 65537)
	rand.New(rand.NewSource(1)).Read(chunk)
	total := writes * len(chunk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	t0 := time.Now()
	done := make(chan struct{})
	go func() {
		conn, err := net.Dial("tcp", ln.Addr().String())
		check(err)
		for i := 0; i < writes; i++ {
			_, err := conn.Write(chunk)
			check(err)
		}
		check(conn.(*net.TCPConn).CloseWrite())
		conn.Close()
		close(done)
	}()
	conn, err := ln.Accept()
	check(err)
	buf := make([]byte, 65536)
	got := 0
	for {
		k, err := conn.Read(buf)
		got += k
		if err == io.EOF {
			break
		}
		check(err)
	}
	dt := time.Since(t0).Seconds()
	<-done
	conn.Close()
	ln.Close()
	if got != total {
		check(fmt.Errorf("bulk: %d bytes, want %d", got, total))
	}
	return float64(total) / dt / 1e6, total
}

// rssKB is VmRSS from /proc/self/status, as weft's figure reads it.
func rssKB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	check(err)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			v, err := strconv.ParseInt(f[1], 10, 64)
			check(err)
			return v
		}
	}
	return 0
}

// idle: n idle connections held open, both ends in this process, a
// goroutine on the server end of each blocked in Read: RSS (after minus
// before, once every reader waits) per connection, in bytes.
func idle(n int) (float64, int) {
	base := rssKB()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	var readers sync.WaitGroup
	accepted := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			conn, err := ln.Accept()
			check(err)
			readers.Add(1)
			go func() {
				buf := make([]byte, 64)
				conn.Read(buf) // EOF when the client closes
				conn.Close()
				readers.Done()
			}()
		}
		close(accepted)
	}()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i], err = net.Dial("tcp", ln.Addr().String())
		check(err)
	}
	<-accepted
	time.Sleep(100 * time.Millisecond) // every reader is waiting
	rss := rssKB()
	for _, conn := range conns {
		conn.Close()
	}
	readers.Wait()
	ln.Close()
	return float64(rss-base) * 1024 / float64(n), n
}

// arg is the optional numeric argument of a workload.
func arg(def int) int {
	if len(os.Args) < 3 {
		return def
	}
	v, err := strconv.Atoi(os.Args[2])
	check(err)
	return v
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gobench pingpong|spawn|sleepers [N]|errgroup|rate_allow|rate_wait|startup|buffered|select|cpu16|workrt|echo|bulk [MiB]|idle [N]")
		os.Exit(2)
	}
	if os.Args[1] == "startup" {
		return // bench/run times the exec of the binary itself
	}
	runtime.GC()
	switch w := os.Args[1]; w {
	case "pingpong":
		fmt.Println(w, pingpong())
	case "spawn":
		fmt.Println(w, spawn())
	case "sleepers":
		s, b := sleepers(arg(1000000))
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
	case "echo":
		fmt.Println(w, echo())
	case "bulk":
		r, b := bulk(arg(1024))
		fmt.Println(w, r, b)
	case "idle":
		r, k := idle(arg(10000))
		fmt.Println(w, r, k)
	case "errgroup":
		fmt.Println(w, errgroupBench())
	case "rate_allow":
		fmt.Println(w, rateAllow())
	case "rate_wait":
		fmt.Println(w, rateWait())
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", w)
		os.Exit(2)
	}
}
