#!/usr/bin/env bash
# The main job of gears, end to end, against local stand-ins for AWS and the service:
#   1. gears validate — the example component's file, template (packer validate) and playbook;
#   2. gears bake     — AMIs of examples/hello-service with real Packer against the moto emulator,
#                       two builders into two regions, then the same bake again (reused);
#   3. gears test     — an instance of the baked AMI launched in moto, the example's smoke tests
#                       run against a real HTTP server (httpbin on 127.0.0.1, standing in for
#                       the instance, whose moto address is not reachable), then terminated;
#   4. gears deploy --plan, then gears pipeline run pipelines/hello-service.yaml: the whole job
#                       (bake, reused; test; deploy to stage, then live) with the example's Auto
#                       Scaling groups (created in moto, 4 instances each, behind a target group,
#                       in both regions) rolled onto the baked AMIs;
#   5. gears smoke    — the smoke tests against a real HTTP server (httpbin on 127.0.0.1). Everything the demo needs is
# installed when missing; every server is started on 127.0.0.1 and stopped at the end.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT

ensure_curl
ensure_venv
ensure_packer
export PATH="$GEARS_VENV/bin:$PATH"   # ansible-playbook
log "building gears"
cargo build --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/debug/gears

start_moto
log "moto (the AWS emulator) on $AWS_ENDPOINT_URL"
start_httpbin
log "httpbin (the example service) on 127.0.0.1:$HTTPBIN_PORT"

cd examples/hello-service
VERSION="1.0.$(date +%s)"
log "== gears validate =="
"$GEARS" validate --work-dir "$GEARS_RUN/work"
log "== gears bake --explain =="
"$GEARS" bake --explain --version "$VERSION" --git-sha "$(git -C "$GEARS_ROOT" rev-parse HEAD 2>/dev/null || echo 0000000)"
log "== gears bake =="
"$GEARS" bake --version "$VERSION" --git-sha "$(git -C "$GEARS_ROOT" rev-parse HEAD 2>/dev/null || echo 0000000)" \
  --work-dir "$GEARS_RUN/work" --manifest "$GEARS_RUN/manifest.json"
log "manifest ($GEARS_RUN/manifest.json):"
cat "$GEARS_RUN/manifest.json" >&2
log "== gears bake again: the same version and revision are reused =="
"$GEARS" bake --version "$VERSION" --git-sha "$(git -C "$GEARS_ROOT" rev-parse HEAD 2>/dev/null || echo 0000000)" \
  --work-dir "$GEARS_RUN/work" --manifest "$GEARS_RUN/manifest.json"
log "== gears test: launch the web AMI, smoke-test it, terminate it =="
"$GEARS" test --manifest "$GEARS_RUN/manifest.json" --builder web \
  --target-host "127.0.0.1:$HTTPBIN_PORT" --ready-timeout 60 --work-dir "$GEARS_RUN/work" \
  --junit "$GEARS_RUN/test.xml"
log "== the example's Auto Scaling groups (stage and live, both regions) in moto =="
for env in stage live; do
  "$GEARS_VENV/bin/python" "$GEARS_ROOT/scripts/moto-fleet.py" hello-service "$env" 4 us-east-1 eu-west-1 >&2
done
log "== gears deploy --plan =="
"$GEARS" deploy --environment live --manifest "$GEARS_RUN/manifest.json" --builder web --plan
cd "$GEARS_ROOT"
log "== gears pipeline run: bake (a new version: real packer, two regions), test, deploy to stage, then live =="
"$GEARS" pipeline run pipelines/hello-service.yaml --manifest "$GEARS_RUN/manifest.json" \
  --version "$VERSION.1" --git-sha "$(git -C "$GEARS_ROOT" rev-parse HEAD 2>/dev/null || echo 0000000)" \
  --target-host "127.0.0.1:$HTTPBIN_PORT" --work-dir "$GEARS_RUN/work"

log "== gears smoke =="
"$GEARS" smoke "127.0.0.1:$HTTPBIN_PORT" smoke-tests/httpbin.yaml --junit "$GEARS_RUN/smoke.xml"
log "JUnit report: $GEARS_RUN/smoke.xml"
log "demo finished: validate, bake, test, deploy --plan, the pipeline (bake, test, deploy to stage and live) and smoke all passed"
