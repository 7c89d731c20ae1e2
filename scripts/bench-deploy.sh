#!/usr/bin/env bash
# Prints, for Auto Scaling groups of 10 and 100 instances on moto, what `gears deploy` costs:
# AWS calls per poll (by action), total calls, polls, batches, and gears' own time per batch
# (wall time less the configured waits between polls). Calls go through a counting proxy in
# front of moto. Goals: calls per poll do not grow with the group; under 50 ms of gears' own
# time per batch. PROFILE=release for release figures (default: the debug build the tests use).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT
PROFILE=${PROFILE:-debug}
POLL=${POLL:-0.2}

ensure_curl
ensure_venv
if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/$PROFILE/gears
start_moto
MOTO=$AWS_ENDPOINT_URL
PROXY_PORT=$(free_port)
"$GEARS_VENV/bin/python" scripts/count-proxy.py "$PROXY_PORT" "$MOTO" &
GEARS_PIDS+=($!)
wait_for "http://127.0.0.1:$PROXY_PORT/counts"

W=$GEARS_RUN/bench-deploy; mkdir -p "$W"
for n in 10 100; do
  name="bench$n"
  printf 'component: %s\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n' "$name" >"$W/$name.yaml"
  new=$("$GEARS_VENV/bin/python" - "$name" "$n" <<'PY'
import sys, boto3
name, n = sys.argv[1], int(sys.argv[2])
ec2 = boto3.client("ec2", region_name="us-east-1")
asg = boto3.client("autoscaling", region_name="us-east-1")
elb = boto3.client("elbv2", region_name="us-east-1")
base = "ami-04681a1dbd79675a5"
i = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
new = ec2.create_image(InstanceId=i, Name=name + "-new")["ImageId"]
ec2.terminate_instances(InstanceIds=[i])
lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": base, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
vpc = [v for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")][0]["VpcId"]
tg = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
    MinSize=n, MaxSize=n, DesiredCapacity=n, AvailabilityZones=["us-east-1a"], TargetGroupARNs=[tg],
    Tags=[{"Key": "gears:component", "Value": name, "PropagateAtLaunch": False, "ResourceId": name, "ResourceType": "auto-scaling-group"},
          {"Key": "gears:environment", "Value": "bench", "PropagateAtLaunch": False, "ResourceId": name, "ResourceType": "auto-scaling-group"}])
print(new)
PY
)
  curl -fsS -X POST "http://127.0.0.1:$PROXY_PORT/reset" >/dev/null
  start=$(date +%s%N)
  # gears' own time: the CPU time of the gears process (user + system), which excludes both the
  # configured waits and the time moto takes to answer.
  TIMEFORMAT='%U %S'
  cpu=$( { time AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT" ${BENCH_WRAP:-} "$GEARS" deploy -c "$W/$name.yaml" \
    --environment bench --ami "$new" --region us-east-1 --batch 25% --poll "$POLL" --output json \
    >"$W/$name.json" 2>"$W/$name.err"; } 2>&1 )
  end=$(date +%s%N)
  curl -fsS "http://127.0.0.1:$PROXY_PORT/counts" >"$W/$name.counts"
  "$GEARS_VENV/bin/python" - "$n" "$W/$name.counts" "$W/$name.json" "$(( (end - start) / 1000000 ))" "$cpu" <<'PY'
import json, sys
n, counts, out, wall_ms = int(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4])
cpu_ms = sum(float(x) for x in sys.argv[5].split()) * 1000
g = out["groups"][0]
assert g["result"] == "deployed", g
polls = counts.get("DescribeAutoScalingGroups", 0)
batches = max(g["batches"], 1)
total = sum(counts.values())
describes = sum(v for k, v in counts.items() if k.startswith("Describe"))
terminates = counts.get("TerminateInstanceInAutoScalingGroup", 0)
print(f"group of {n:>3}: {g['batches']} batches, {polls} polls; {total} AWS calls in all: "
      f"{describes / max(polls, 1):.2f} describe calls per poll, {terminates} terminations "
      f"(one per replaced instance), {total - describes - terminates} other writes; "
      f"wall {wall_ms} ms (moto answering most of it); gears' own CPU time {cpu_ms:.0f} ms, "
      f"{cpu_ms / batches:.0f} ms per batch")
print("   calls by action: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
PY
done
