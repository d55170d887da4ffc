#!/usr/bin/env bash
# Load comparison on loopback of static file servers, all serving one 1 GiB
# file and a tree of 10,000 small files from one directory:
#   mapview         cargo run --release --features http --example serve -- PATH
#                   (mapview::http::ServeDir on hyper, opening every file
#                   per request)
#   mapview-cached  the same with --open-file-cache 1: opened files shared
#                   across requests, revalidated after 1 s (as nginx's
#                   open_file_cache), their parts of up to 16 pages sent
#                   with sendfile (SendfileStream)
#   mapview-copy    mapview-cached with --copy: plain TcpStreams, every
#                   body copied into the socket
#   tower-http      tower-http's ServeDir on hyper, served the same way (the
#                   baseline: benches/src/bin/tower_http_serve.rs)
#   nginx           Debian's nginx: sendfile on, tcp_nodelay on, tcp_nopush
#                   off, 2 workers
#   hyper-memory    hyper answering from memory: every file read into a
#                   Bytes at start, each response a slice of it (the
#                   ceiling: benches/src/bin/hyper_memory.rs)
# Workloads, each with a hot page cache (and WARMUP seconds of the same
# load, unmeasured, to fill the servers' own caches) and a cold one (the
# 1 GiB file's pages evicted with posix_fadvise(DONTNEED) through `dd
# iflag=nocache` first):
#   download  16 wrk connections fetching the whole 1 GiB file over and
#             over (GB/s)
#   ranges    64 connections fetching random 64 KiB ranges of it (req/s, p99;
#             RANGE_SIZE=BYTES for another size, RANGE_ALIGN=BYTES to start
#             each range at a multiple of that)
# MAPVIEW_ARGS adds options to the mapview servers' command lines (e.g.
# "--sendfile-max-pages 64").
#   small     64 connections fetching random whole files of the tree:
#             www/small/NN/NNNN.bin, 1-64 KiB each (sizes from a fixed
#             seed), 331 MB in all (req/s, p99); hot only, as the first
#             pass over the tree would warm it in the middle of a cold run
# Every server runs on the same cores (SERVER_CPUS, a comma list) and wrk
# on others (CLIENT_CPUS); the tables also say how busy each side was
# (100% on wrk's side means the client was the bottleneck). Ratios set each
# server's throughput and p99 (lower is better; not for downloads, of which
# a run completes few) against tower-http's, nginx's and hyper-memory's in
# the same run. With RESULTS_CSV=PATH each
# run is also appended to that CSV (benches/plot.py charts
# benches/results/serve.csv). Installs wrk and nginx with apt-get if they
# are missing.
#
#   bash benches/serve_bench.sh          # ~6 minutes; not run in CI
#   DURATION=5 SERVERS="mapview nginx" bash benches/serve_bench.sh
#   SERVERS="mapview tower-http" CACHES=cold WORKLOADS=ranges bash benches/serve_bench.sh
#   RESULTS_CSV=benches/results/serve.csv bash benches/serve_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}                # seconds per run
WARMUP=${WARMUP:-2}                     # seconds of unmeasured load before a hot run
SERVERS=${SERVERS:-"mapview mapview-cached tower-http nginx hyper-memory"}
CACHES=${CACHES:-"hot cold"}
WORKLOADS=${WORKLOADS:-"download ranges small"}
if [ "$(nproc)" -ge 2 ]; then
    SERVER_CPUS=${SERVER_CPUS:-0}
    CLIENT_CPUS=${CLIENT_CPUS:-1}
else
    SERVER_CPUS=${SERVER_CPUS:-0}
    CLIENT_CPUS=${CLIENT_CPUS:-0}
fi
SIZE=$((1 << 30))
RANGE_SIZE=${RANGE_SIZE:-$((64 << 10))}
RANGE_ALIGN=${RANGE_ALIGN:-1}
SMALL_FILES=10000
# URL path (and path under www) of small file N: printf format of N / 1000, N.
SMALL_PATH=/small/%02d/%04d.bin
PORT=${PORT:-18080}
read -r -a MAPVIEW_OPTIONS <<<"${MAPVIEW_ARGS:-}"

# nginx-light puts the binary in /usr/sbin, which may not be on PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v wrk >/dev/null || ! [ -x "$NGINX" ]; then
    echo "installing wrk and nginx-light with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi

cargo build --release --features http --example serve
cargo build --release -p mapview-benches --bin tower_http_serve --bin hyper_memory
TARGET=${CARGO_TARGET_DIR:-target}/release
SERVE=$TARGET/examples/serve
TOWER_HTTP=$TARGET/tower_http_serve
HYPER_MEMORY=$TARGET/hyper_memory

# Not /tmp: it may be a tmpfs, where "cold" means nothing.
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/serve-bench.XXXXXX")
chmod 755 "$WORK" # nginx workers may run as another user
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir "$WORK/www"
FILE=$WORK/www/file-1GiB.bin
echo "writing a 1 GiB test file and $SMALL_FILES small files in $WORK" >&2
head -c "$SIZE" /dev/urandom >"$FILE"
chmod 644 "$FILE"
# The small files' sizes, 1-64 KiB, come from a Park-Miller generator with a
# fixed seed (exact in awk's doubles), so every run serves the same tree;
# their bytes are a repeating pattern, as no server here compresses. One
# awk process writes them all: a process per file would take a minute.
awk -v www="$WORK/www" -v count="$SMALL_FILES" -v format="$SMALL_PATH" 'BEGIN {
    pattern = "0123456789abcdef"
    while (length(pattern) < 65536) pattern = pattern pattern
    x = 16
    for (i = 0; i < count; i++) {
        x = (x * 16807) % 2147483647
        path = www sprintf(format, int(i / 1000), i)
        dir = path
        sub(/\/[^\/]*$/, "", dir)
        if (!(dir in made)) {
            made[dir] = 1
            if (system("mkdir -p \"" dir "\"") != 0) exit 1
        }
        printf "%s", substr(pattern, 1, 1024 + x % (63 * 1024 + 1)) >path
        close(path)
    }
}'
sync "$FILE"

cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    tcp_nopush off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx-body;
    proxy_temp_path $WORK/nginx-proxy;
    fastcgi_temp_path $WORK/nginx-fastcgi;
    uwsgi_temp_path $WORK/nginx-uwsgi;
    scgi_temp_path $WORK/nginx-scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/www;
    }
}
EOF

# wrk reports exact totals through this script. With FILE_COUNT set, each
# request asks for a random one of the small files; with RANGE_SIZE set,
# for a random range of that many bytes of the URL's file.
cat >"$WORK/bench.lua" <<'EOF'
local size = tonumber(os.getenv("FILE_SIZE") or "0")
local span = tonumber(os.getenv("RANGE_SIZE") or "0")
local align = tonumber(os.getenv("RANGE_ALIGN") or "1")
local files = tonumber(os.getenv("FILE_COUNT") or "0")
local path_format = os.getenv("PATH_FORMAT")
local count = 0
function setup(thread)
    count = count + 1
    thread:set("id", count)
end
function init(args)
    math.randomseed(os.time() * 1000 + id)
end
if files > 0 then
    function request()
        local n = math.random(0, files - 1)
        return wrk.format(nil, string.format(path_format, math.floor(n / 1000), n))
    end
elseif span > 0 then
    function request()
        local first = math.random(0, math.floor((size - span) / align)) * align
        local range = string.format("bytes=%d-%d", first, first + span - 1)
        return wrk.format(nil, nil, { Range = range })
    end
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT bytes=%d us=%d requests=%d p99_us=%d errors=%d\n",
        summary.bytes, summary.duration, summary.requests, latency:percentile(99),
        e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

start_server() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "port $PORT is taken: set PORT=..." >&2
        exit 1
    fi
    local addr=127.0.0.1:$PORT
    case $1 in
    mapview) taskset -c "$SERVER_CPUS" "$SERVE" "${MAPVIEW_OPTIONS[@]}" --addr "$addr" "$WORK/www" >"$WORK/$1.log" 2>&1 & ;;
    mapview-cached)
        taskset -c "$SERVER_CPUS" "$SERVE" "${MAPVIEW_OPTIONS[@]}" --addr "$addr" --open-file-cache 1 "$WORK/www" \
            >"$WORK/$1.log" 2>&1 &
        ;;
    mapview-copy)
        taskset -c "$SERVER_CPUS" "$SERVE" "${MAPVIEW_OPTIONS[@]}" --addr "$addr" --open-file-cache 1 --copy "$WORK/www" \
            >"$WORK/$1.log" 2>&1 &
        ;;
    tower-http) taskset -c "$SERVER_CPUS" "$TOWER_HTTP" "$addr" "$WORK/www" >"$WORK/$1.log" 2>&1 & ;;
    nginx) taskset -c "$SERVER_CPUS" "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/$1.log" 2>&1 & ;;
    hyper-memory) taskset -c "$SERVER_CPUS" "$HYPER_MEMORY" "$addr" "$WORK/www" >"$WORK/$1.log" 2>&1 & ;;
    *)
        echo "unknown server $1" >&2
        exit 1
        ;;
    esac
    SERVER_PID=$!
    # hyper-memory listens only once it has read every file (1.4 GB).
    for _ in $(seq 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "$1 did not start listening:" >&2
    cat "$WORK/$1.log" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# "cpuN busy idle" for every CPU, in ticks since boot.
cpu_ticks() { awk '/^cpu[0-9]/ { print $1, $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
# busy CPULIST BEFORE AFTER: how busy the CPUs of a comma list were, in %.
busy() {
    awk -v cpus="$1" -v before="$2" -v after="$3" 'BEGIN {
        n = split(cpus, list, ",")
        for (i = 1; i <= n; i++) want["cpu" list[i]] = 1
        split(before, b, "\n"); split(after, a, "\n")
        for (i in a) {
            split(b[i], x, " "); split(a[i], y, " ")
            if (!(y[1] in want)) continue
            busy += y[2] - x[2]; idle += y[3] - x[3]
        }
        printf "%.0f", 100 * busy / (busy + idle)
    }'
}

# The CSV's columns (a run's figures are keyed by the same names), and a
# line of them.
COLUMNS=(server cache workload gbps rps p99_ms server_cpu client_cpu)
csv_line() {
    local IFS=,
    echo "$*"
}
if [ -n "${RESULTS_CSV:-}" ]; then
    if [ ! -s "$RESULTS_CSV" ]; then csv_line "${COLUMNS[@]}" >"$RESULTS_CSV"; fi
    echo "# serve_bench.sh $(date -u +%FT%TZ): DURATION=$DURATION, servers on CPU(s) $SERVER_CPUS, wrk on CPU(s) $CLIENT_CPUS" \
        >>"$RESULTS_CSV"
fi

# CPU time of the server's processes (itself and its children, as nginx's
# workers), in clock ticks.
server_ticks() {
    local pid total=0
    for pid in "$SERVER_PID" $(pgrep -P "$SERVER_PID" || true); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
TICKS_PER_SECOND=$(getconf CLK_TCK)

declare -A RESULT
# run SERVER CACHE WORKLOAD: one wrk run, results into RESULT[...] (and
# RESULTS_CSV)
run() {
    local server=$1 cache=$2 workload=$3 connections=64 span=0 files=0 url=/file-1GiB.bin
    local warm=("$FILE")
    case $workload in
    download) connections=16 ;;
    ranges) span=$RANGE_SIZE ;;
    small) files=$SMALL_FILES url=/ warm=("$WORK/www/small") ;;
    esac
    local load=(env FILE_SIZE="$SIZE" RANGE_SIZE="$span" RANGE_ALIGN="$RANGE_ALIGN" FILE_COUNT="$files" PATH_FORMAT="$SMALL_PATH"
        taskset -c "$CLIENT_CPUS" wrk -t2 -c"$connections" --timeout 30s -s "$WORK/bench.lua")
    if [ "$cache" = cold ]; then
        dd if="$FILE" iflag=nocache count=0 status=none # posix_fadvise(DONTNEED)
    else
        find "${warm[@]}" -type f -exec cat {} + >/dev/null
        # The servers' own caches too (mapview's open-file cache maps each
        # file at its first request): an unmeasured pass of the same load,
        # so that a hot run measures the steady state.
        "${load[@]}" -d"${WARMUP}s" "http://127.0.0.1:$PORT$url" >/dev/null
    fi
    # Let the server settle: after the downloads are cut off, a mapview
    # server spends a few hundred ms unmapping what they had populated.
    sleep 2
    local out before after ticks_before ticks_after
    before=$(cpu_ticks)
    ticks_before=$(server_ticks)
    out=$("${load[@]}" -d"${DURATION}s" "http://127.0.0.1:$PORT$url" | grep '^RESULT')
    after=$(cpu_ticks)
    ticks_after=$(server_ticks)
    local key=$server,$cache,$workload
    RESULT[$key,server]=$server RESULT[$key,cache]=$cache RESULT[$key,workload]=$workload
    RESULT[$key,server_cpu]=$(busy "$SERVER_CPUS" "$before" "$after")
    RESULT[$key,client_cpu]=$(busy "$CLIENT_CPUS" "$before" "$after")
    local bytes us requests p99 errors
    read -r bytes us requests p99 errors < <(echo "$out" | sed 's/[a-z0-9_]*=//g; s/RESULT //')
    RESULT[$key,gbps]=$(awk "BEGIN { printf \"%.2f\", $bytes / ($us / 1e6) / 1e9 }")
    RESULT[$key,rps]=$(awk "BEGIN { printf \"%.0f\", $requests / ($us / 1e6) }")
    RESULT[$key,p99_ms]=$(awk "BEGIN { printf \"%.2f\", $p99 / 1e3 }")
    # The server's own CPU time per request (its processes, not the cores'
    # other work), in microseconds.
    RESULT[$key,us_per_request]=$(awk "BEGIN { if ($requests > 0) printf \"%.1f\", \
        ($ticks_after - $ticks_before) * 1e6 / $TICKS_PER_SECOND / $requests; else print \"-\" }")
    printf '%-14s %-4s %-8s %6s GB/s %6s req/s  p99 %8s ms  errors %s  CPU busy: server %3s%%, wrk %3s%%  server CPU %s us/request\n' \
        "$server" "$cache" "$workload" "${RESULT[$key,gbps]}" "${RESULT[$key,rps]}" \
        "${RESULT[$key,p99_ms]}" "$errors" "${RESULT[$key,server_cpu]}" "${RESULT[$key,client_cpu]}" \
        "${RESULT[$key,us_per_request]}" >&2
    if [ -n "${RESULTS_CSV:-}" ]; then
        local column row=()
        for column in "${COLUMNS[@]}"; do row+=("${RESULT[$key,$column]}"); done
        csv_line "${row[@]}" >>"$RESULTS_CSV"
    fi
}

echo "servers on CPU(s) $SERVER_CPUS, wrk on CPU(s) $CLIENT_CPUS, ${DURATION}s per run" >&2
for server in $SERVERS; do
    start_server "$server"
    for cache in $CACHES; do
        for workload in $WORKLOADS; do
            # A cold run of the small files would warm them as it goes.
            if [ "$cache,$workload" != cold,small ]; then run "$server" "$cache" "$workload"; fi
        done
    done
    stop_server
done

ratio() { # ratio A B, or - when either is missing
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk "BEGIN { if ($2 > 0) printf \"%.2fx\", $1 / $2; else print \"-\" }"
    else echo -; fi
}

# One table a workload and cache, one row a server. The ratios are of the
# workload's throughput (GB/s for download, req/s otherwise), then of p99
# (not for downloads: a run completes only a few of them).
PER_REQUEST="req/s, then of p99: lower is better"
ROW='| %-14s | %5s | %6s | %6s | %11s | %13s | %12s | %12s |\n'
for cache in $CACHES; do
    for workload in $WORKLOADS; do
        case $workload in
        download) title="1 GiB downloads, 16 connections" metric=gbps ratios_of=GB/s ;;
        ranges) title="Random ranges of $RANGE_SIZE bytes, 64 connections" metric=rps ratios_of=$PER_REQUEST ;;
        small) title="Random small files (1-64 KiB), 64 connections" metric=rps ratios_of=$PER_REQUEST ;;
        esac
        measured=
        for server in $SERVERS; do measured+=${RESULT[$server,$cache,$workload,rps]:-}; done
        [ -n "$measured" ] || continue # small files are not run cold
        printf '\n%s, %s cache (ratios of %s)\n\n' "$title" "$cache" "$ratios_of"
        # shellcheck disable=SC2059
        printf "$ROW" server GB/s req/s "p99 ms" "CPU srv/wrk" "vs tower-http" "vs nginx" "vs ceiling"
        # shellcheck disable=SC2059
        printf "$ROW" --- ---: ---: ---: ---: ---: ---: ---:
        for server in $SERVERS; do
            key=$server,$cache,$workload
            [ -n "${RESULT[$key,rps]:-}" ] || continue
            ratios=()
            for base in tower-http nginx hyper-memory; do
                if [ "$base" = "$server" ]; then
                    ratios+=(-)
                    continue
                fi
                cell=$(ratio "${RESULT[$key,$metric]}" "${RESULT[$base,$cache,$workload,$metric]:-}")
                if [ "$cell" != - ] && [ "$workload" != download ]; then
                    cell+=", $(ratio "${RESULT[$key,p99_ms]}" "${RESULT[$base,$cache,$workload,p99_ms]}")"
                fi
                ratios+=("$cell")
            done
            # shellcheck disable=SC2059
            printf "$ROW" "$server" "${RESULT[$key,gbps]}" "${RESULT[$key,rps]}" "${RESULT[$key,p99_ms]}" \
                "${RESULT[$key,server_cpu]}% / ${RESULT[$key,client_cpu]}%" "${ratios[@]}"
        done
    done
done
