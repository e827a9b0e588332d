#!/bin/sh
# Runs one libFuzzer target for a fixed time over its committed corpus.
# New inputs go to a scratch dir, so the committed corpus is only read.
set -eu
bin=$1 corpus=$2 seconds=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 "$scratch" "$corpus"
