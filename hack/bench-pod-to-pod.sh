#!/usr/bin/env bash
# Pod-to-pod traffic with and without enforcement (root): the modes of
# BenchmarkPodToPod (one node) and BenchmarkPodToPodAcrossNodes (two) run
# interleaved, round after round, so that a machine whose speed drifts
# over minutes drifts for all of them alike; test/bench/paired compares each
# mode with the "off" run of its round. ROUNDS (default 20) and WHAT
# (round-trip or throughput) choose the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-20}
what=${WHAT:-round-trip}
case $what in
round-trip) benchtime=100000x field=3 ;;
throughput) benchtime=2s field=5 ;;
*) echo "WHAT must be round-trip or throughput" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/datapath.test" ./nodeplugins/policy/datapath
go build -o "$dir/paired" ./test/bench/paired
for bench in BenchmarkPodToPod BenchmarkPodToPodAcrossNodes; do
	modes="off attached on-stack-only on"
	[ "$bench" = BenchmarkPodToPodAcrossNodes ] && modes="off attached on"
	echo "== $bench, $what, $rounds rounds"
	for round in $(seq 1 "$rounds"); do
		for mode in $modes; do
			(cd nodeplugins/policy/datapath && "$dir/datapath.test" -test.run '^$' \
				-test.bench "^$bench\$/enforcement=$mode\$/$what\$" -test.benchtime "$benchtime") |
				awk -v r="$round" -v m="$mode" -v f="$field" '/^Benchmark/ {print r, m, $f}'
		done
	done | "$dir/paired"
done
