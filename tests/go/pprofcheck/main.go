// pprofcheck decodes pprof files with Go's reference implementation
// (github.com/google/pprof/profile), checks them with CheckValid, and prints, per file,
// one line: the number of samples and the sum of each sample type's values.
// The distributor tests use it as a second, independent decoder of what pyrogate forwards.
//
// Usage: pprofcheck FILE...
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/pprof/profile"
)

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			fmt.Printf("%s ERROR open: %v\n", path, err)
			failed = true
			continue
		}
		p, err := profile.Parse(f)
		f.Close()
		if err != nil {
			fmt.Printf("%s ERROR parse: %v\n", path, err)
			failed = true
			continue
		}
		if err := p.CheckValid(); err != nil {
			fmt.Printf("%s ERROR invalid: %v\n", path, err)
			failed = true
			continue
		}
		sums := make([]string, len(p.SampleType))
		totals := make([]int64, len(p.SampleType))
		for _, s := range p.Sample {
			for i, v := range s.Value {
				totals[i] += v
			}
		}
		for i, t := range totals {
			sums[i] = fmt.Sprint(t)
		}
		fmt.Printf("%s samples=%d sums=%s time=%d\n", path, len(p.Sample), strings.Join(sums, ","), p.TimeNanos)
	}
	if failed {
		os.Exit(1)
	}
}
