#!/usr/bin/env bash
# End-to-end scrape benchmark: a real Prometheus scrapes servq serving
# ~100k series (Asterisk queue_log calls in QUEUES queues) and reports its
# own scrape_duration_seconds, as it negotiates (OpenMetrics, gzip).
#
#   deploy/bench/scrape.sh            # the working tree
#   deploy/bench/scrape.sh f4a9aa1    # and a base revision, side by side
#
# Both servq binaries run at once, scraped by one Prometheus (different
# targets, Prometheus spreads their scrapes over the interval), so the
# ratio is measured in one run. A third target, "static", serves the new
# servq's text exposition as a file (Python's http.server, no gzip): its
# scrape_duration_seconds is what Prometheus spends on the request, the
# parse and the append of that many samples with a server that costs
# nothing, the floor of the others (Prometheus counts its parse and TSDB
# append in scrape_duration_seconds). The first WARMUP seconds (series
# creation in Prometheus' head) are not measured. Installs the Debian
# prometheus package if it is missing. Environment: QUEUES (2000 ≈ 100k
# series), WARMUP (30), DURATION (seconds of scraping measured, 90),
# INTERVAL (scrape interval, 5s), PROMETHEUS (the Prometheus binary,
# default the one on PATH; e.g. one built with
# `GOBIN=/tmp/p3 go install github.com/prometheus/prometheus/cmd/prometheus@v0.310.0`
# to measure Prometheus 3), TEXT (1: also scrape each servq asking for the
# text format, which Prometheus parses faster than OpenMetrics; needs
# Prometheus 2.49 or later).
set -euo pipefail
cd "$(dirname "$0")/../.."
QUEUES=${QUEUES:-2000}
DURATION=${DURATION:-90}
WARMUP=${WARMUP:-30}
INTERVAL=${INTERVAL:-5s}
BASE=${1:-}
PROMETHEUS=${PROMETHEUS:-prometheus}

if [ "$PROMETHEUS" = prometheus ] && ! command -v prometheus >/dev/null; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building servq" >&2
go build -o "$tmp/servq-new" ./cmd/servq
names=(new)
if [ -n "$BASE" ]; then
	git worktree add -q --detach "$tmp/base-src" "$BASE"
	(cd "$tmp/base-src" && go build -o "$tmp/servq-base" ./cmd/servq)
	git worktree remove --force "$tmp/base-src"
	names=(base new)
fi

# One answered and one abandoned call per queue, an hour ago.
t=$(($(date +%s) - 3600))
awk -v n="$QUEUES" -v t="$t" 'BEGIN {
	for (q = 0; q < n; q++) {
		printf "%d|a%d|q%d|NONE|ENTERQUEUE||100|1\n", t, q, q
		printf "%d|a%d|q%d|Agent/1|CONNECT|7|b%d|2\n", t + 7, q, q, q
		printf "%d|a%d|q%d|Agent/1|COMPLETECALLER|7|60|1\n", t + 67, q, q
		printf "%d|c%d|q%d|NONE|ENTERQUEUE||101|1\n", t, q, q
		printf "%d|c%d|q%d|NONE|ABANDON|1|1|3\n", t + 3, q, q
	}
}' >"$tmp/queue_log"

targets=""
declare -A ports
for name in "${names[@]}"; do
	port=$(freeport)
	mkdir -p "$tmp/$name"
	cat >"$tmp/$name/servq.yml" <<YML
global: {label_limit: 1000000, new_series_delay: 0s}
collectors:
  - {name: pbx, type: asterisk_queue_log, schedule: "@every 1h", path: $tmp/queue_log}
YML
	"$tmp/servq-$name" --config.file="$tmp/$name/servq.yml" --storage.path="$tmp/$name/data" \
		--web.listen-address="127.0.0.1:$port" --log.level=warn 2>"$tmp/$name/log" &
	pids+=($!)
	ports[$name]=$port
	echo "$name: servq on 127.0.0.1:$port" >&2
	for _ in $(seq 600); do
		curl -fs "http://127.0.0.1:$port/metrics" >"$tmp/$name/metrics" 2>/dev/null || true
		if grep -q "queue=\"q$((QUEUES - 1))\"" "$tmp/$name/metrics"; then break; fi
		sleep 0.5
	done
	targets="$targets
  - job_name: $name
    scrape_interval: $INTERVAL
    scrape_timeout: $INTERVAL
    static_configs: [{targets: ['127.0.0.1:$port']}]"
	if [ -n "${TEXT:-}" ]; then
		# TEXT=1 (Prometheus 2.49 and later): the same servq once more,
		# asked for the text format instead of OpenMetrics.
		targets="$targets
  - job_name: $name-text
    scrape_interval: $INTERVAL
    scrape_timeout: $INTERVAL
    scrape_protocols: [PrometheusText0.0.4]
    static_configs: [{targets: ['127.0.0.1:$port']}]"
	fi
done

# The floor: the same exposition as a static file.
mkdir "$tmp/static"
curl -fs -H 'Accept: text/plain' "http://127.0.0.1:$port/metrics" >"$tmp/static/metrics.txt"
fport=$(freeport)
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/static" "$fport" >/dev/null 2>&1 &
pids+=($!)
targets="$targets
  - job_name: static
    scrape_interval: $INTERVAL
    scrape_timeout: $INTERVAL
    metrics_path: /metrics.txt
    static_configs: [{targets: ['127.0.0.1:$fport']}]"

pport=$(freeport)
cat >"$tmp/prometheus.yml" <<YML
scrape_configs:$targets
YML
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
	--web.listen-address="127.0.0.1:$pport" --log.level=warn 2>"$tmp/prom.log" &
pids+=($!)
echo "Prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$pport, scraping for ${WARMUP}s + ${DURATION}s every $INTERVAL" >&2
sleep $((WARMUP + DURATION))

query() {
	curl -fsG "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[] | "\(.metric.job) \(.value[1])"' | sort
}
echo "job scrapes samples avg_s max_s min_s median_s"
join <(query "count_over_time(scrape_duration_seconds[${DURATION}s])") \
	<(query "scrape_samples_scraped") |
	join - <(query "avg_over_time(scrape_duration_seconds[${DURATION}s])") |
	join - <(query "max_over_time(scrape_duration_seconds[${DURATION}s])") |
	join - <(query "min_over_time(scrape_duration_seconds[${DURATION}s])") |
	join - <(query "quantile_over_time(0.5, scrape_duration_seconds[${DURATION}s])")

# servq's side alone: the response as curl sees it (OpenMetrics, gzip,
# body read to the end), the median of 9.
echo "job curl_gzip_openmetrics_median_s bytes"
for name in "${names[@]}"; do
	for _ in $(seq 9); do
		curl -fs -o /dev/null -w '%{time_total} %{size_download}\n' -H 'Accept-Encoding: gzip' \
			-H 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' \
			"http://127.0.0.1:${ports[$name]}/metrics"
	done | sort -n | sed -n 5p | sed "s/^/$name /"
done
