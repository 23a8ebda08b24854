// Command pipeline is the Go side of the edge distributor benchmark
// (scripts/bench-distributor.sh): what a Go gateway built on
// github.com/google/pprof/profile would do with a gzip'd pprof profile, timed on the
// inputs benches/distributor.rs writes with PYROGATE_BENCH_DUMP=DIR.
//
// Variants, per input:
//
//	full             profile.Parse (inflates and runs CheckValid), drop the samples whose
//	                 values are all zero, Compact (merges samples with the same stack and
//	                 labels, drops what is unreferenced), Write (gzip at Go's default level)
//	full_l1          the same, but gzip at level 1 (BestSpeed), the level pyrogate uses
//	decode_validate  profile.Parse only (inflate, decode, CheckValid)
//
// Output: one tab-separated line per variant and input:
//
//	go <variant> <label> <decoded_bytes> <iterations> <median ns/iteration> <MiB/s>
//
// MiB/s counts decoded (uncompressed) bytes, like the Rust benchmark. Each case is warmed
// up, then timed in batches for -duration; the figure is the median batch. Build it with
// Debian's golang-github-google-pprof-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o pipeline ./benches/go/pipeline
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

type input struct {
	label   string
	decoded int
	raw     []byte
}

// Batches per case; the median batch is reported.
const batches = 10

func main() {
	dir := flag.String("dir", "", "directory with manifest.tsv and LABEL.pb.gz (PYROGATE_BENCH_DUMP)")
	duration := flag.Duration("duration", 2*time.Second, "measured time per case")
	warmup := flag.Duration("warmup", 300*time.Millisecond, "warm-up time per case")
	variants := flag.String("variants", "full,full_l1,decode_validate", "comma-separated variants")
	flag.Parse()
	if *dir == "" {
		fail("-dir is required")
	}
	if *duration <= 0 || *duration > 5*time.Minute || *warmup < 0 || *warmup > time.Minute {
		fail("-duration must be within (0, 5m], -warmup within [0, 1m]")
	}
	inputs := readInputs(*dir)
	for _, v := range strings.Split(*variants, ",") {
		run := pipeline(v)
		if run == nil {
			fail("unknown variant " + v)
		}
		for _, in := range inputs {
			// Check the input goes through before timing it.
			if err := run(in.raw); err != nil {
				fail(fmt.Sprintf("%s %s: %v", v, in.label, err))
			}
			iters, ns := measure(run, in.raw, *warmup, *duration)
			mibs := float64(in.decoded) / ns * 1e9 / (1 << 20)
			fmt.Printf("go\t%s\t%s\t%d\t%d\t%.0f\t%.2f\n", v, in.label, in.decoded, iters, ns, mibs)
		}
	}
}

func pipeline(variant string) func([]byte) error {
	switch variant {
	case "full":
		return func(raw []byte) error { return full(raw, -1) }
	case "full_l1":
		return func(raw []byte) error { return full(raw, gzip.BestSpeed) }
	case "decode_validate":
		return func(raw []byte) error {
			_, err := profile.Parse(bytes.NewReader(raw))
			return err
		}
	}
	return nil
}

// full: Parse, drop all-zero samples, Compact, gzip'd serialisation. level < 0: Write
// (Go's default level), else WriteUncompressed and gzip at that level.
func full(raw []byte, level int) error {
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	kept := p.Sample[:0]
	for _, s := range p.Sample {
		for _, v := range s.Value {
			if v != 0 {
				kept = append(kept, s)
				break
			}
		}
	}
	p.Sample = kept
	p = p.Compact()
	var out bytes.Buffer
	out.Grow(len(raw))
	if level < 0 {
		return p.Write(&out)
	}
	var plain bytes.Buffer
	if err := p.WriteUncompressed(&plain); err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		return err
	}
	if _, err := zw.Write(plain.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

// measure warms up, then runs batches of roughly duration/batches each; returns the
// iterations timed and the median nanoseconds per iteration over the batches.
func measure(run func([]byte) error, raw []byte, warmup, duration time.Duration) (int, float64) {
	runtime.GC()
	start := time.Now()
	n := 0
	for n < 3 || time.Since(start) < warmup {
		_ = run(raw)
		n++
	}
	per := time.Since(start) / time.Duration(n)
	if per <= 0 {
		per = 1
	}
	each := int(duration / batches / per)
	if each < 1 {
		each = 1
	}
	total := 0
	samples := make([]float64, 0, batches)
	for b := 0; b < batches; b++ {
		t := time.Now()
		for i := 0; i < each; i++ {
			_ = run(raw)
		}
		samples = append(samples, float64(time.Since(t).Nanoseconds())/float64(each))
		total += each
	}
	sort.Float64s(samples)
	med := (samples[batches/2-1] + samples[batches/2]) / 2
	return total, med
}

func readInputs(dir string) []input {
	f, err := os.Open(filepath.Join(dir, "manifest.tsv"))
	if err != nil {
		fail(err.Error())
	}
	defer f.Close()
	var out []input
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		fields := strings.Split(sc.Text(), "\t")
		if line == 0 || len(fields) < 2 {
			continue
		}
		decoded, err := strconv.Atoi(fields[1])
		if err != nil {
			fail("manifest.tsv: " + err.Error())
		}
		raw, err := os.ReadFile(filepath.Join(dir, fields[0]+".pb.gz"))
		if err != nil {
			fail(err.Error())
		}
		out = append(out, input{label: fields[0], decoded: decoded, raw: raw})
	}
	if len(out) == 0 {
		fail("no inputs in " + dir)
	}
	return out
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "pipeline:", msg)
	os.Exit(2)
}
