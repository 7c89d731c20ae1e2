#!/usr/bin/env bash
# The main job of gears, end to end against local stand-ins for AWS and the service:
#   1. bake  — an AMI of the example component, with real Packer against the moto emulator;
#   2. smoke — the component's smoke tests against a real HTTP server (httpbin on 127.0.0.1).
# The test and deploy stages are not built yet (see README "Status"). Everything the demo needs
# is installed when missing; every server is started on 127.0.0.1 and stopped at the end.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT

ensure_curl
ensure_venv
ensure_packer
log "building gears"
cargo build --release --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/release/gears

start_httpbin
log "httpbin (the example service) on 127.0.0.1:$HTTPBIN_PORT"

if "$GEARS" --help | grep -q '^  bake'; then
  start_moto
  log "moto (the AWS emulator) on $AWS_ENDPOINT_URL"
  log "== gears bake =="
  (cd examples/hello-service && "$GEARS" bake --manifest "$GEARS_RUN/manifest.json" --version "1.0.$(date +%s)")
  log "manifest: $GEARS_RUN/manifest.json"
  cat "$GEARS_RUN/manifest.json" >&2
fi

log "== gears smoke =="
"$GEARS" smoke "127.0.0.1:$HTTPBIN_PORT" smoke-tests/httpbin.yaml --junit "$GEARS_RUN/smoke.xml"
log "JUnit report: $GEARS_RUN/smoke.xml"
