#!/bin/sh
# deploy/bench/rules.sh: the cost of servq's SLO rules on a real Prometheus
# with a full SLO window of history. It writes SLOS SLOs (default 50) over
# COMBOS label combinations (default 5000) of call counters, DAYS days of
# history (default 28) as OpenMetrics (deploy/bench/rulesdata), turns it
# into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`,
# then, for the rules of this tree ("after") and of the servq commit
# BEFORE ("before", default the last commit with the old rules), starts
# Prometheus on 127.0.0.1 with the generated rule file over a copy of the
# blocks, waits for ITERATIONS (default 6) evaluations of every group and
# prints the evaluation time per interval: the sum over the SLO groups of
# prometheus_rule_group_last_duration_seconds averaged over the
# evaluations after the first WARMUP (default 2), the max over the groups
# at the end, and Prometheus' CPU time per interval from the end of the
# WARMUP-th evaluation to the last (on a
# shared machine the durations are wall time and grow with its load; the
# CPU time does not), or, when the groups have not finished within LIMIT
# seconds (default 900), that they have not.
#
# The raw counters are sampled every SPARSE (default 1h) except for the
# last DENSE_FOR (default 2h), sampled every 30s like a real scrape: the
# old rules read every raw sample of their windows, so with 30s scrapes
# over the whole history their cost would be about SPARSE/30s times the
# figure here (120×). The new rules read raw samples of the last 10
# minutes only (once), their step recordings over at most an hour, and
# hourly sums of the steps over the window (written over the whole
# history, as a Prometheus that ran the rules all along would hold them).
#
# Needs go, prometheus and promtool (Debian: apt-get install prometheus);
# takes 10 to 20 minutes and about 3 GB of disk in WORK. Usage:
#
#	deploy/bench/rules.sh            # before and after
#	BEFORE= deploy/bench/rules.sh    # after only
set -eu

REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=${WORK:-$(mktemp -d /tmp/servq-rules-bench.XXXXXX)}
BEFORE=${BEFORE-8e6693a}
SLOS=${SLOS:-50}
COMBOS=${COMBOS:-5000}
DAYS=${DAYS:-28}
SPARSE=${SPARSE:-1h}
DENSE_FOR=${DENSE_FOR:-2h}
ITERATIONS=${ITERATIONS:-6}
WARMUP=${WARMUP:-2}
LIMIT=${LIMIT:-900}
PORT=${PORT:-19091}
mkdir -p "$WORK"
echo "work dir: $WORK"

echo "== building servq (after) and the data generator"
(cd "$REPO" && go build -o "$WORK/servq-after" ./cmd/servq && go build -o "$WORK/rulesdata" ./deploy/bench/rulesdata)
if [ -n "$BEFORE" ]; then
	echo "== building servq at $BEFORE (before)"
	rm -rf "$WORK/src-before" && mkdir -p "$WORK/src-before"
	(cd "$REPO" && git archive "$BEFORE") | tar -x -C "$WORK/src-before"
	(cd "$WORK/src-before" && go build -o "$WORK/servq-before" ./cmd/servq)
fi

echo "== writing $DAYS days of history: $SLOS SLOs over $COMBOS label combinations"
gen() {
	(cd "$WORK" && ./rulesdata -combos "$COMBOS" -slos "$SLOS" -days "$DAYS" -sparse "$SPARSE" -dense-for "$DENSE_FOR" -config servq.yml "$@")
}
if [ -n "${REUSE:-}" ] && [ -d "$WORK/blocks" ]; then
	# REUSE=1: the blocks of an earlier run with the same settings,
	# extended from their end.
	END=$(cat "$WORK"/blocks/*/meta.json | sed -n 's/.*"maxTime": *\([0-9]*\).*/\1/p' | sort -n | tail -1)
	END=$((END / 1000))
else
	END=$(date +%s)
	gen -end "$END" -out history.om
	ls -l "$WORK/history.om"
	rm -rf "$WORK/blocks"
	# One block a week: promtool reads the input once per block.
	promtool tsdb create-blocks-from openmetrics -q --max-block-duration=168h "$WORK/history.om" "$WORK/blocks"
	rm -f "$WORK/history.om"
fi

# extend writes the history from its last end up to now: the rules are
# evaluated right after and must find raw samples in their last 10
# minutes, as on a Prometheus scraping servq (checked in run).
extend() {
	now=$(date +%s)
	gen -end "$now" -from "$END" -out recent.om
	promtool tsdb create-blocks-from openmetrics -q "$WORK/recent.om" "$WORK/blocks"
	rm -f "$WORK/recent.om"
	END=$now
}

# metric NAME FUNC: sum, max or min of servq's SLO rule groups' NAME on
# Prometheus' own /metrics (it does not scrape itself here).
metric() {
	curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v name="$1" -v f="$2" '
		index($0, name "{") == 1 && /rule_group="[^"]*servq-slo-/ {
			v = $NF + 0; n++; s += v
			if (n == 1 || v > mx) mx = v
			if (n == 1 || v < mn) mn = v
		}
		END { if (f == "sum") print s; else if (f == "max") print mx; else if (f == "min") print mn; else print n }'
}

# stop ends Prometheus: a graceful stop waits for the rule evaluations
# under way, which for the old rules take many minutes.
stop() {
	kill "$1" 2>/dev/null || true
	sleep 5
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

query() {
	curl -fsS "http://127.0.0.1:$PORT/api/v1/query" --data-urlencode "query=$1" |
		sed -n 's/.*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1/p'
}

run() {
	v=$1
	extend
	"$WORK/servq-$v" rules --config.file="$WORK/servq.yml" --output="$WORK/$v.rules.yml" 2>/dev/null
	rm -rf "$WORK/data-$v"
	cp -al "$WORK/blocks" "$WORK/data-$v"
	cat >"$WORK/prometheus-$v.yml" <<YML
global: {evaluation_interval: 1m}
rule_files: [$v.rules.yml]
YML
	prometheus --config.file="$WORK/prometheus-$v.yml" --storage.tsdb.path="$WORK/data-$v" \
		--storage.tsdb.retention.time=90d --web.listen-address="127.0.0.1:$PORT" \
		--log.level=warn >"$WORK/prometheus-$v.log" 2>&1 &
	pid=$!
	i=0
	until curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; do
		i=$((i + 1))
		kill -0 $pid 2>/dev/null && [ $i -lt 600 ] || { stop $pid; cat "$WORK/prometheus-$v.log"; echo "Prometheus did not start"; exit 1; }
		sleep 1
	done
	have=$(query "count(last_over_time(servq_calls_offered_total[10m]))")
	if [ "$have" != "$COMBOS" ]; then
		stop $pid
		echo "$v: the history ended more than 10 minutes ago ($have of $COMBOS raw series found): the figures would understate the rules' cost" >&2
		exit 1
	fi
	groups=$(metric prometheus_rule_group_rules count)
	rules=$(metric prometheus_rule_group_rules sum)
	start=$(date +%s)
	cpu0=
	seen=0
	sums=
	until [ "$(metric prometheus_rule_group_iterations_total min | sed "s/^$/0/")" -ge "$ITERATIONS" ]; do
		done_=$(metric prometheus_rule_group_iterations_total min | sed "s/^$/0/")
		if [ -z "$cpu0" ] && [ "$done_" -ge "$WARMUP" ]; then
			# From the end of the WARMUP-th evaluation: start-up
			# (loading the blocks, compacting the new ones, the first
			# reads of each block's index) is not the rules' cost.
			cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
			t0=$(date +%s)
		fi
		if [ "$done_" -gt "$seen" ] && [ "$done_" -gt "$WARMUP" ]; then
			# Every group has finished one more evaluation: its
			# last durations, averaged over the measured ones.
			sums="$sums $(metric prometheus_rule_group_last_duration_seconds sum)"
		fi
		seen=$done_
		if [ $(($(date +%s) - start)) -ge "$LIMIT" ]; then
			# The old rules on a full window: report what they got to.
			cpu=$(awk '{printf "%.0f", ($14 + $15) / 100}' "/proc/$pid/stat")
			fewest=$(metric prometheus_rule_group_iterations_total min)
			printf '%s: %s SLO rule groups, %s rules; after %s s (Prometheus at %s CPU-s) some group had finished only %s of %s evaluations, against a 60 s interval\n' \
				"$v" "$groups" "$rules" "$LIMIT" "$cpu" "$fewest" "$ITERATIONS" | tee -a "$WORK/results.txt"
			curl -fsS "http://127.0.0.1:$PORT/api/v1/rules" >"$WORK/rules-$v.json"
			stop $pid
			rm -rf "$WORK/data-$v"
			return
		fi
		sleep 2
	done
	cpu=$(awk -v c0="${cpu0:-0}" -v t0="${t0:-$start}" -v now="$(date +%s)" '{printf "%.2f", ($14 + $15 - c0) / 100 / ((now - t0) / 60)}' "/proc/$pid/stat")
	sums="$sums $(metric prometheus_rule_group_last_duration_seconds sum)"
	sum=$(echo "$sums" | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s / NF}')
	max=$(metric prometheus_rule_group_last_duration_seconds max)
	missed=$(metric prometheus_rule_group_iterations_missed_total sum)
	# Per rule evaluation times, for a closer look.
	curl -fsS "http://127.0.0.1:$PORT/api/v1/rules" >"$WORK/rules-$v.json"
	stop $pid
	rm -rf "$WORK/data-$v"
	printf '%s: %s SLO rule groups, %s rules (%s per SLO); evaluation per interval: sum %.3f s, slowest group %.3f s; Prometheus CPU %s s per minute; missed iterations %s\n' \
		"$v" "$groups" "$rules" "$(echo "$rules $SLOS" | awk '{printf "%.1f", $1/$2}')" "$sum" "$max" "$cpu" "$missed" | tee -a "$WORK/results.txt"
}

run after
[ -z "$BEFORE" ] || run before
echo "machine: $(nproc) vCPU, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%d); $(prometheus --version 2>&1 | head -1)" | tee -a "$WORK/results.txt"
