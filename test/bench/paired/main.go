// Command paired summarises benchmark runs made in interleaved rounds
// (hack/bench-pod-to-pod.sh): it reads lines of "round mode value" and
// prints, per mode, the median (the upper one for an even count) and its
// change from the base mode (the first one seen) three ways: of the
// medians, and the median and mean of each round's change from that
// round's base run. On a machine whose speed drifts over minutes, the
// paired figures compare runs made side by side.
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/plexus-net/plexus/test/bench/benchutil"
)

func main() {
	var modes []string
	values := map[string][]float64{}
	rounds := map[string]map[string]float64{} // round → mode → value
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		round, mode := f[0], f[1]
		if !slices.Contains(modes, mode) {
			modes = append(modes, mode)
		}
		values[mode] = append(values[mode], v)
		if rounds[round] == nil {
			rounds[round] = map[string]float64{}
		}
		rounds[round][mode] = v
	}
	if len(modes) == 0 {
		fmt.Fprintln(os.Stderr, "paired: no runs read")
		os.Exit(1)
	}
	base := modes[0]
	for _, m := range modes {
		med := benchutil.Median(values[m])
		if m == base {
			fmt.Printf("%-16s median %10.1f  (%d runs)\n", m, med, len(values[m]))
			continue
		}
		var changes []float64
		for _, r := range rounds {
			if b, ok := r[base]; ok && b != 0 {
				if v, ok := r[m]; ok {
					changes = append(changes, (v/b-1)*100)
				}
			}
		}
		fmt.Printf("%-16s median %10.1f  (%d runs)  vs %s: medians %+.1f %%, paired median %+.1f %%, paired mean %+.1f %%\n",
			m, med, len(values[m]), base, (med/benchutil.Median(values[base])-1)*100, benchutil.Median(changes), mean(changes))
	}
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}
