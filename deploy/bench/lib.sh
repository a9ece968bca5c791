# Sourced by the benchmark scripts of this directory (after `set -eu`):
# moves to the repository's root, sets $work (WORK or a new temporary
# directory), checks for /usr/bin/time, builds servq into $work unless
# SERVQ names another build, and builds the generators named in $gens
# (directories under deploy/bench) into $work. POSIX `.` passes no
# arguments, hence the variable.
cd "$(dirname "$0")/../.."
work=${WORK:-$(mktemp -d)}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ -z "${SERVQ:-}" ]; then
	go build -o "$work/servq" ./cmd/servq
	SERVQ=$work/servq
fi
for gen in ${gens:-}; do
	go build -o "$work/$gen" "./deploy/bench/$gen"
done

# peak_rss_mb FILE: the peak resident memory in MB from `/usr/bin/time -v` output.
peak_rss_mb() { awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$1"; }
