#!/usr/bin/env bash
# Runs every test of gears: lints, unit tests, and the end-to-end tests against real parts
# (httpbin over HTTP and TLS, moto, packer, and a private sshd for real ansible-local runs), which
# this script installs when missing, starts on 127.0.0.1 and stops again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT

ensure_curl
ensure_venv
ensure_packer
ensure_man

if [ "${GEARS_LINT:-1}" = 1 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --all-targets --quiet -- -D warnings
fi

log "building"
cargo build --tests --quiet

start_httpbin
start_httpbin_tls
start_moto
start_sshd
if [ -n "${SSHD_PORT:-}" ]; then
  export GEARS_TEST_SSH="127.0.0.1:$SSHD_PORT" GEARS_TEST_SSH_USER="$SSHD_USER" GEARS_TEST_SSH_KEY="$SSHD_KEY"
fi
export GEARS_TEST_HTTPBIN="127.0.0.1:$HTTPBIN_PORT"
export GEARS_TEST_HTTPBIN_TLS="127.0.0.1:$HTTPBIN_TLS_PORT" GEARS_TEST_CA="$HTTPBIN_CA"
export GEARS_TEST_MOTO="$AWS_ENDPOINT_URL"
export GEARS_TEST_VENV="$GEARS_VENV"
log "servers: httpbin $GEARS_TEST_HTTPBIN, httpbin-tls $GEARS_TEST_HTTPBIN_TLS, moto $GEARS_TEST_MOTO, sshd ${GEARS_TEST_SSH:-none}"

log "cargo test"
set +e
cargo test "$@" 2>&1 | tee "$GEARS_RUN/cargo-test.log"
rc=${PIPESTATUS[0]}
set -e
# A test must not leave a process running (an orphaned packer retrying a stopped endpoint for
# many minutes), failed run or not: name them, end them, and fail the run.
left=$(test_leftovers 15)
if [ -n "$left" ]; then
  log "processes the tests left running:"
  printf '%s\n' "$left" | sed '/^$/d; s/^/  /' >&2
  for pid in $(printf '%s\n' "$left" | cut -d' ' -f1); do kill -9 "$pid" 2>/dev/null || true; done
  echo "tests: left processes running"
  [ "$rc" -ne 0 ] || rc=1
fi
[ "$rc" -eq 0 ] || exit "$rc"
passed=$(grep -oE '[0-9]+ passed' "$GEARS_RUN/cargo-test.log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed' "$GEARS_RUN/cargo-test.log" | awk '{s += $1} END {print s + 0}')

if [ $# -eq 0 ]; then
  # The README's first command is tested too (STYLE.md §16).
  log "scripts/demo.sh"
  stop_all
  if ! GEARS_RUN="$GEARS_RUN/demo" scripts/demo.sh >"$GEARS_RUN/demo.log" 2>&1; then
    tail -n 60 "$GEARS_RUN/demo.log" >&2
    log "scripts/demo.sh failed"
    echo "tests: $passed passed, $((failed + 1)) failed"
    exit 1
  fi
  log "scripts/demo.sh passed"
  passed=$((passed + 1))
fi
echo "tests: $passed passed, $failed failed"
