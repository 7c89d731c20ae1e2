#!/usr/bin/env bash
# The main job of gears, end to end, against local stand-ins for AWS and the service:
#   1. gears validate — the example component's file, template (packer validate) and playbook;
#   2. gears bake     — AMIs of examples/hello-service with real Packer against the moto emulator,
#                       two builders into two regions, then the same bake again (reused);
#   3. gears test     — an instance of the baked AMI launched in moto, the example's smoke tests
#                       run against a real HTTP server (httpbin on 127.0.0.1, standing in for
#                       the instance, whose moto address is not reachable), then terminated;
#   4. gears deploy --plan, then gears pipeline run pipelines/hello-service.yaml: the whole job
#                       (bake, shared with stage's and live's accounts; test; deploy to stage,
#                       then live, each in its own account through its role) with the example's
#                       Auto Scaling groups (created in moto in those accounts, 4 instances each,
#                       behind a target group, in both regions) rolled onto the baked AMIs;
#                       gears status -e live then reads the live account, and gears amis list
#                       shows each AMI's shares and its use in every account;
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
# moto hides an AMI shared from another account in the accounts it is shared with (AWS shows
# it, without the owner's tags): the proxy in front of it gives AWS's answer.
PROXY_PORT=$(free_port)
GEARS_PROXY_SHARED_IMAGES=1 "$GEARS_VENV/bin/python" scripts/count-proxy.py "$PROXY_PORT" "$AWS_ENDPOINT_URL" &
GEARS_PIDS+=($!)
wait_for "http://127.0.0.1:$PROXY_PORT/counts"
export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT"
log "through a proxy on $AWS_ENDPOINT_URL (AWS's answer for shared AMIs)"
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
log "== the example's Auto Scaling groups in moto: stage in account 111111111111, live in 222222222222, both regions =="
for env_account in stage:111111111111 live:222222222222; do
  "$GEARS_VENV/bin/python" "$GEARS_ROOT/scripts/moto-fleet.py" --account "${env_account#*:}" \
    hello-service "${env_account%%:*}" 4 us-east-1 eu-west-1 >&2
done
log "== gears deploy --plan (live, through live's role) =="
"$GEARS" deploy --environment live --manifest "$GEARS_RUN/manifest.json" --builder web --plan
cd "$GEARS_ROOT"
log "== gears pipeline run: bake (a new version: real packer, two regions), test, deploy to stage, then live =="
"$GEARS" pipeline run pipelines/hello-service.yaml --manifest "$GEARS_RUN/manifest.json" \
  --version "$VERSION.1" --git-sha "$(git -C "$GEARS_ROOT" rev-parse HEAD 2>/dev/null || echo 0000000)" \
  --target-host "127.0.0.1:$HTTPBIN_PORT" --work-dir "$GEARS_RUN/work"
log "== gears status -e live: the live account's fleet =="
"$GEARS" status -c examples/hello-service/gears.yaml -e live
log "== gears amis list: each AMI's shares and its use in the build, stage and live accounts =="
"$GEARS" amis list -c examples/hello-service/gears.yaml

log "== gears smoke =="
"$GEARS" smoke "127.0.0.1:$HTTPBIN_PORT" smoke-tests/httpbin.yaml --junit "$GEARS_RUN/smoke.xml"
log "JUnit report: $GEARS_RUN/smoke.xml"
log "demo finished: validate, bake (shared), test, deploy --plan, the pipeline (bake, test, deploy to stage and live, each in its own account), status and smoke all passed"
