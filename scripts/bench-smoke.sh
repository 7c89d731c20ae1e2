#!/usr/bin/env bash
# Prints figures for gears smoke (release build) against nginx serving fixed responses on
# 127.0.0.1:
#   - a 1,000-test file: wall time and tests per second (at --jobs 8 and 32);
#   - one single-test run, from process start to exit (hyperfine, mean of many runs).
# Goals on the 2-core machine: 1,000 tests under 1 s; a single-test run under 20 ms.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT

command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx-light
command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine
[ -x /usr/bin/time ] || apt_install time
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/release/gears

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

echo "gears smoke benchmark ($(nproc) cores, nginx on 127.0.0.1:$PORT)"
for jobs in 8 32; do
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
/usr/bin/time -f '%M' -o "$GEARS_RUN/rss" "$GEARS" smoke "127.0.0.1:$PORT" "$F" --jobs 32 >/dev/null
printf '1000 tests, --jobs 32: peak memory (max RSS) %d KiB\n' "$(tail -1 "$GEARS_RUN/rss")"
hyperfine --warmup 5 --runs 100 -N --export-json "$GEARS_RUN/one.json" \
  "$GEARS smoke 127.0.0.1:$PORT $GEARS_RUN/one.yaml" >/dev/null
python3 - "$GEARS_RUN/one.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"single-test run, process start to exit: mean {r['mean']*1000:.1f} ms, "
      f"min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms over {len(r['times'])} runs (goal: < 20 ms)")
PY
