#!/usr/bin/env bash
# Runs every test of gears: lints, unit tests, and the end-to-end tests against real parts
# (httpbin over HTTP and TLS, moto, packer), which this script installs when missing, starts on
# 127.0.0.1 and stops again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT

ensure_curl
ensure_venv
ensure_packer

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
export GEARS_TEST_HTTPBIN="127.0.0.1:$HTTPBIN_PORT"
export GEARS_TEST_HTTPBIN_TLS="127.0.0.1:$HTTPBIN_TLS_PORT" GEARS_TEST_CA="$HTTPBIN_CA"
export GEARS_TEST_MOTO="$AWS_ENDPOINT_URL"
export GEARS_TEST_VENV="$GEARS_VENV"
log "servers: httpbin $GEARS_TEST_HTTPBIN, httpbin-tls $GEARS_TEST_HTTPBIN_TLS, moto $GEARS_TEST_MOTO"

log "cargo test"
cargo test "$@"
