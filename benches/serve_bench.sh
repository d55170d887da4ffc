#!/usr/bin/env bash
# Load comparison on loopback of static file servers, all serving one 1 GiB
# file:
#   mapview   cargo run --release --features http --example serve -- PATH
#             (mapview::http::ServeDir on hyper)
#   tower-http  tower-http's ServeDir on hyper, served the same way (the
#             baseline: benches/src/bin/tower_http_serve.rs)
#   nginx     Debian's nginx: sendfile on, tcp_nodelay on, tcp_nopush off,
#             2 workers (the ceiling)
# Workloads, each with a hot page cache and a cold one (the file's pages
# evicted with posix_fadvise(DONTNEED) through `dd iflag=nocache` first):
#   download  16 wrk connections fetching the whole file over and over (GB/s)
#   ranges    64 connections fetching random 64 KiB ranges (req/s, p99)
# Every server runs on the same cores (SERVER_CPUS, a comma list) and wrk
# on others (CLIENT_CPUS); the table also says how busy each side was
# during the downloads (100% on wrk's side means the client was the
# bottleneck). Installs wrk and nginx with apt-get if they are missing.
#
#   bash benches/serve_bench.sh          # ~3.5 minutes; not run in CI
#   DURATION=5 SERVERS="mapview nginx" bash benches/serve_bench.sh
#   SERVERS="mapview tower-http" CACHES=cold WORKLOADS=ranges bash benches/serve_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}                # seconds per run
SERVERS=${SERVERS:-"mapview tower-http nginx"}
CACHES=${CACHES:-"hot cold"}
WORKLOADS=${WORKLOADS:-"download ranges"}
if [ "$(nproc)" -ge 2 ]; then
    SERVER_CPUS=${SERVER_CPUS:-0}
    CLIENT_CPUS=${CLIENT_CPUS:-1}
else
    SERVER_CPUS=${SERVER_CPUS:-0}
    CLIENT_CPUS=${CLIENT_CPUS:-0}
fi
SIZE=$((1 << 30))
RANGE_SIZE=$((64 << 10))
PORT=${PORT:-18080}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    echo "installing wrk and nginx-light with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
# nginx-light puts the binary in /usr/sbin, which may not be on PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --features http --example serve
cargo build --release -p mapview-benches --bin tower_http_serve
SERVE=target/release/examples/serve
TOWER_HTTP=target/release/tower_http_serve

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
echo "writing a 1 GiB test file in $WORK" >&2
head -c "$SIZE" /dev/urandom >"$FILE"
chmod 644 "$FILE"
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

# wrk reports exact totals through this script; with RANGE_SIZE set, each
# request asks for a random range of that many bytes.
cat >"$WORK/bench.lua" <<'EOF'
local size = tonumber(os.getenv("FILE_SIZE"))
local span = tonumber(os.getenv("RANGE_SIZE") or "0")
local count = 0
function setup(thread)
    count = count + 1
    thread:set("id", count)
end
function init(args)
    math.randomseed(os.time() * 1000 + id)
end
if span > 0 then
    function request()
        local first = math.random(0, size - span)
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
    case $1 in
    mapview) taskset -c "$SERVER_CPUS" "$SERVE" --addr "127.0.0.1:$PORT" "$WORK/www" >"$WORK/$1.log" 2>&1 & ;;
    tower-http) taskset -c "$SERVER_CPUS" "$TOWER_HTTP" "127.0.0.1:$PORT" "$WORK/www" >"$WORK/$1.log" 2>&1 & ;;
    nginx) taskset -c "$SERVER_CPUS" "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/$1.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
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
        printf "%.0f%%", 100 * busy / (busy + idle)
    }'
}

declare -A RESULT
# run SERVER CACHE WORKLOAD: one wrk run, results into RESULT[...]
run() {
    local server=$1 cache=$2 workload=$3 connections span
    case $workload in
    download) connections=16 span=0 ;;
    ranges) connections=64 span=$RANGE_SIZE ;;
    esac
    if [ "$cache" = cold ]; then
        dd if="$FILE" iflag=nocache count=0 status=none # posix_fadvise(DONTNEED)
    else
        cat "$FILE" >/dev/null
    fi
    # Let the server settle: after the downloads are cut off, a mapview
    # server spends a few hundred ms unmapping what they had populated.
    sleep 2
    local out before after
    before=$(cpu_ticks)
    out=$(FILE_SIZE=$SIZE RANGE_SIZE=$span taskset -c "$CLIENT_CPUS" \
        wrk -t2 -c"$connections" -d"${DURATION}s" --timeout 30s -s "$WORK/bench.lua" \
        "http://127.0.0.1:$PORT/file-1GiB.bin" | grep '^RESULT')
    after=$(cpu_ticks)
    RESULT[$server,$cache,$workload,server_cpu]=$(busy "$SERVER_CPUS" "$before" "$after")
    RESULT[$server,$cache,$workload,client_cpu]=$(busy "$CLIENT_CPUS" "$before" "$after")
    local bytes us requests p99 errors
    read -r bytes us requests p99 errors < <(echo "$out" | sed 's/[a-z0-9_]*=//g; s/RESULT //')
    RESULT[$server,$cache,$workload,gbps]=$(awk "BEGIN { printf \"%.2f\", $bytes / ($us / 1e6) / 1e9 }")
    RESULT[$server,$cache,$workload,rps]=$(awk "BEGIN { printf \"%.0f\", $requests / ($us / 1e6) }")
    RESULT[$server,$cache,$workload,p99]=$(awk "BEGIN { printf \"%.2f\", $p99 / 1e3 }")
    printf '%-13s %-4s %-8s %6s GB/s %6s req/s  p99 %8s ms  errors %s  CPU busy: server %4s, wrk %4s\n' \
        "$server" "$cache" "$workload" \
        "${RESULT[$server,$cache,$workload,gbps]}" "${RESULT[$server,$cache,$workload,rps]}" \
        "${RESULT[$server,$cache,$workload,p99]}" "$errors" \
        "${RESULT[$server,$cache,$workload,server_cpu]}" "${RESULT[$server,$cache,$workload,client_cpu]}" >&2
}

echo "servers on CPU(s) $SERVER_CPUS, wrk on CPU(s) $CLIENT_CPUS, ${DURATION}s per run" >&2
for server in $SERVERS; do
    start_server "$server"
    for cache in $CACHES; do
        for workload in $WORKLOADS; do
            run "$server" "$cache" "$workload"
        done
    done
    stop_server
done

ratio() { # ratio A B, or - when either is missing
    if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
        awk "BEGIN { if ($2 > 0) printf \"%.2fx\", $1 / $2; else print \"-\" }"
    else echo -; fi
}

echo
ROW='| %-26s | %8s | %10s | %8s | %13s | %9s |\n'
# shellcheck disable=SC2059
printf "$ROW" workload mapview tower-http nginx "vs tower-http" "vs nginx"
# shellcheck disable=SC2059
printf "$ROW" --- ---: ---: ---: ---: ---:
for cache in hot cold; do
    for metric in "download gbps GB/s" "download server_cpu server CPU" "download client_cpu wrk CPU" \
        "ranges rps req/s" "ranges p99 p99 ms"; do
        read -r workload key unit <<<"$metric"
        m=${RESULT[mapview,$cache,$workload,$key]:-}
        w=${RESULT[tower-http,$cache,$workload,$key]:-}
        n=${RESULT[nginx,$cache,$workload,$key]:-}
        case $workload in
        download) label="1 GiB x16 $cache ($unit)" ;;
        ranges) label="64 KiB x64 $cache ($unit)" ;;
        esac
        case $key in
        *_cpu) ratios=("" "") ;; # busy %: no ratio
        *) ratios=("$(ratio "$m" "$w")" "$(ratio "$m" "$n")") ;;
        esac
        # shellcheck disable=SC2059
        printf "$ROW" "$label" "${m:--}" "${w:--}" "${n:--}" "${ratios[@]}"
    done
done
