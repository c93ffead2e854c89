// readfile.go: Go's os.ReadFile on one file, the median of five reads in
// this process, in MB/s (bench/fs_floor.sh).
package main

import (
	"fmt"
	"os"
	"sort"
	"time"
)

func main() {
	var t []float64
	size := 0
	for r := 0; r < 5; r++ {
		t0 := time.Now()
		b, err := os.ReadFile(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		t = append(t, time.Since(t0).Seconds())
		size = len(b)
	}
	sort.Float64s(t)
	fmt.Printf("%.0f\n", float64(size)/t[2]/1e6)
}
