#!/usr/bin/env bash
# Prints the wall time of `gears bake` and of a bare `packer build` of the same rendered template
# against moto, and their difference: what gears adds (metadata, base AMI lookup, reuse check,
# rendering, parsing packer's output, manifest). Goal: under 0.3 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT
RUNS=${RUNS:-5}

ensure_curl
ensure_venv
ensure_packer
cargo build --release --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/release/gears
start_moto

W=$GEARS_RUN/bench-bake; mkdir -p "$W"
cat >"$W/gears.yaml" <<YAML
component: bench-service
repo: https://git.example.com/bench.git
ami_regions: [us-east-1, eu-west-1]
base_ami: {id: ami-04681a1dbd79675a5}
communicator: none
YAML
# Warm moto's EC2 backends in both regions (its first call costs ~2.5 s, for gears and packer alike).
"$GEARS" bake -c "$W/gears.yaml" --version warmup --git-sha 0 --work-dir "$W/runs" --manifest "$W/m.json" >/dev/null 2>&1

now() { date +%s%N; }
gears_ms=(); packer_ms=()
for i in $(seq "$RUNS"); do
  s=$(now)
  "$GEARS" bake -c "$W/gears.yaml" --version "1.0.$i" --git-sha "sha$i" --work-dir "$W/runs" --manifest "$W/m.json" >/dev/null 2>"$W/gears.err"
  e=$(now); gears_ms+=($(( (e - s) / 1000000 )))
  tpl=$(ls -td "$W"/runs/*/ | head -1)template.json
  python3 - "$tpl" "$W/bare.json" "$i" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
for b in t["builders"]:
    b["ami_name"] += "-bare-" + sys.argv[3]
t["post-processors"][0]["output"] = sys.argv[2] + ".manifest"
json.dump(t, open(sys.argv[2], "w"))
PY
  s=$(now)
  (cd "$W" && CHECKPOINT_DISABLE=1 packer build -machine-readable bare.json >"$W/bare.out" 2>&1)
  e=$(now); packer_ms+=($(( (e - s) / 1000000 )))
done
python3 - "${gears_ms[*]}" "${packer_ms[*]}" <<'PY'
import statistics, sys
g = [int(x) for x in sys.argv[1].split()]; p = [int(x) for x in sys.argv[2].split()]
print(f"gears bake   (1 builder, 2 regions, against moto): mean {statistics.mean(g):6.0f} ms  min {min(g):5d} ms  runs {g}")
print(f"bare packer  (the same rendered template):         mean {statistics.mean(p):6.0f} ms  min {min(p):5d} ms  runs {p}")
d = statistics.mean(g) - statistics.mean(p)
print(f"gears adds: {d:.0f} ms on average, {min(g) - min(p)} ms best-to-best (goal: < 300 ms)")
PY
