#!/usr/bin/env bash
# Prints figures for gears smoke (release build) against nginx serving fixed responses on
# 127.0.0.1:
#   - a 1,000-test file: wall time and tests per second (at --jobs 8 and 32), peak memory;
#   - start-up: process start to exit of /bin/true, of gears smoke with 1 test and with 200
#     tests (hyperfine, RUNS runs each after a warm-up), median and 90th percentile side by side,
#     with the mean user and system CPU time of each;
#   - the floor under those figures: scripts/http-floor.rs, a std-only program that makes the
#     same requests on bare sockets and does nothing else (1 request; 200 on 8 connections,
#     as gears' --jobs 8; 200 on 1 connection), so a figure can be read against what the
#     machine's loopback allows at all.
# Goals on the 2-core machine: 1,000 tests under 1 s; 1 test within 3 ms, 200 tests within 8 ms
# (medians). ONLY=start prints the start-up figures alone.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT
RUNS=${RUNS:-300}

command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx-light
command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine
[ -x /usr/bin/time ] || apt_install time
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/release/gears
FLOOR=$GEARS_RUN/http-floor
rustc -O --edition 2021 scripts/http-floor.rs -o "$FLOOR"

PORT=$(free_port)
D=$GEARS_RUN/nginx; mkdir -p "$D/logs"
cat >"$D/nginx.conf" <<CONF
worker_processes 1;
error_log $D/logs/error.log warn;
pid $D/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type application/json; return 200 '{"status": "ok", "version": "1.2.3"}'; }
  }
}
CONF
"$NGINX" -p "$D" -c "$D/nginx.conf" -g 'daemon off;' &
GEARS_PIDS+=($!)
wait_for "http://127.0.0.1:$PORT/"

F=$GEARS_RUN/1000.yaml
{
  echo "tests:"
  for i in $(seq 1000); do
    printf '  - name: check %d\n    uri: /health/%d\n    outcomes:\n      response_body_contains: ok\n      response_json_contains: {version: "1.2.3"}\n' "$i" "$i"
  done
} >"$F"
printf 'tests:\n  - name: one\n    uri: /\n' >"$GEARS_RUN/one.yaml"
head -n $((1 + 200 * 5)) "$F" >"$GEARS_RUN/200.yaml"

echo "gears smoke benchmark ($(nproc) cores, nginx on 127.0.0.1:$PORT, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for jobs in 8 32; do
  [ "${ONLY:-}" != start ] || break
  best=""
  for _ in 1 2 3; do
    s=$(date +%s%N)
    "$GEARS" smoke "127.0.0.1:$PORT" "$F" --jobs "$jobs" >"$GEARS_RUN/out.txt"
    e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  grep -q 'ALL TESTS PASSED!' "$GEARS_RUN/out.txt"
  printf '1000 tests, --jobs %-3s best of 3: %5d ms wall, %6d tests/s (goal: < 1000 ms)\n' \
    "$jobs" "$best" $(( 1000 * 1000 / (best > 0 ? best : 1) ))
done
if [ "${ONLY:-}" != start ]; then
  /usr/bin/time -f '%M' -o "$GEARS_RUN/rss" "$GEARS" smoke "127.0.0.1:$PORT" "$F" --jobs 32 >/dev/null
  printf '1000 tests, --jobs 32: peak memory (max RSS) %d KiB\n' "$(tail -1 "$GEARS_RUN/rss")"
fi
# Start-up: the commands in turn (/bin/true, gears, the floor), each RUNS times, no shell in between (-N).
for c in true one 200 floor1 floor200 floor200x1; do
  case $c in
    true) cmd=/bin/true ;;
    floor1) cmd="$FLOOR $PORT 1 1" ;;
    floor200) cmd="$FLOOR $PORT 200 8" ;;
    floor200x1) cmd="$FLOOR $PORT 200 1" ;;
    *) cmd="$GEARS smoke 127.0.0.1:$PORT $GEARS_RUN/$c.yaml" ;;
  esac
  hyperfine --warmup 20 --runs "$RUNS" -N --export-json "$GEARS_RUN/start-$c.json" "$cmd" >/dev/null
done
"$GEARS" smoke "127.0.0.1:$PORT" "$GEARS_RUN/200.yaml" | grep -q '^200 tests: 200 passed'
python3 - "$GEARS_RUN" "$RUNS" <<'PY'
import json, statistics, sys
run, runs = sys.argv[1], int(sys.argv[2])
def figures(name):
    r = json.load(open(f"{run}/start-{name}.json"))["results"][0]
    t = sorted(r["times"])
    p90 = t[min(len(t) - 1, int(0.9 * len(t)))]
    # CPU time of the process: user space (gears' own code and libraries) and the kernel
    # (system calls; on loopback also the server's receive path, run in the sender's call).
    return statistics.median(t) * 1000, p90 * 1000, r["user"] * 1000, r["system"] * 1000
print(f"start-up, process start to exit, {runs} runs each:     median     p90   mean CPU: user  system")
for label, name, goal in [("/bin/true", "true", ""),
                          ("gears smoke, 1 test", "one", "  (goal: median <= 3 ms)"),
                          ("gears smoke, 200 tests (--jobs 8)", "200", "  (goal: median <= 8 ms)")]:
    med, p90, user, system = figures(name)
    print(f"  {label:<36} {med:7.2f} ms {p90:7.2f} ms {user:9.2f} ms {system:6.2f} ms{goal}")
print("the floor: the same requests on bare sockets, nothing else (scripts/http-floor.rs):")
for label, name in [("1 request", "floor1"),
                    ("200 requests, 8 connections", "floor200"),
                    ("200 requests, 1 connection", "floor200x1")]:
    med, p90, user, system = figures(name)
    print(f"  {label:<36} {med:7.2f} ms {p90:7.2f} ms {user:9.2f} ms {system:6.2f} ms")
gears, floor = figures("200")[0], figures("floor200")[0]
print(f"gears smoke, 200 tests: {gears - floor:.2f} ms above the floor's 200 requests on 8 connections")
PY
