#!/usr/bin/env bash
# Prints how long going back takes, for a group of N (default 10) instances behind a target
# group on moto, instances booting BOOT seconds (default 1.5) through the counting proxy, --poll
# POLL (default 1):
# - blue/green: `gears deploy --rollback` after a blue/green deploy, the old group still at its
#   size: from the command's start to the old group attached (its AttachLoadBalancerTargetGroups
#   answered: moto registers its instances then), to gears seeing it healthy in the target group
#   (the DescribeTargetHealth after which it takes the current group out), and to gears' exit;
#   against the goal of 1 s to attached and registered; with the tag lock and with the lock
#   table (--lock-table, a DynamoDB table on moto);
# - blue/green after `--scale-old-to 0`: the same, the old group grown again first;
# - rolling: what the way back costs the rolling strategy: a deploy of the old AMI after a good
#   deploy (--batch 25%), and the deploy itself for comparison.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$GEARS_ROOT"
trap stop_all EXIT
N=${N:-10}
BOOT=${BOOT:-1.5}
POLL=${POLL:-1}

ensure_curl
ensure_venv
cargo build --quiet
GEARS=${CARGO_TARGET_DIR:-$GEARS_ROOT/target}/debug/gears
start_moto
MOTO=$AWS_ENDPOINT_URL
PROXY_PORT=$(free_port)
"$GEARS_VENV/bin/python" scripts/count-proxy.py "$PROXY_PORT" "$MOTO" &
GEARS_PIDS+=($!)
wait_for "http://127.0.0.1:$PROXY_PORT/counts"
PROXY="http://127.0.0.1:$PROXY_PORT"
W=$GEARS_RUN/bench-rollback; mkdir -p "$W"

# A group NAME of N behind a target group, tagged for component NAME; prints the new AMI.
make_group() {
  "$GEARS_VENV/bin/python" - "$1" "$N" <<'PY'
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
tag = lambda k, v: {"Key": k, "Value": v, "PropagateAtLaunch": False, "ResourceId": name, "ResourceType": "auto-scaling-group"}
asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
    MinSize=n, MaxSize=n, DesiredCapacity=n, AvailabilityZones=["us-east-1a"], TargetGroupARNs=[tg],
    Tags=[tag("gears:component", name), tag("gears:environment", "bench")])
print(new)
PY
}

# Arms the proxy: every instance that exists now is booted; new ones take BOOT seconds.
arm() {
  "$GEARS_VENV/bin/python" - "$BOOT" <<'PY' | curl -fsS -X POST --data-binary @- "$PROXY/arm" >/dev/null
import json, sys, boto3
asg = boto3.client("autoscaling", region_name="us-east-1")
known = [m["InstanceId"] for p in asg.get_paginator("describe_auto_scaling_groups").paginate()
         for g in p["AutoScalingGroups"] for m in g["Instances"]]
print(json.dumps({"boot": float(sys.argv[1]), "known": known}))
PY
}

# Runs `gears deploy` for component $1 with the rest as flags; prints its wall time (ms) and
# keeps its JSON report in $W/$1.json.
timed() {
  local name=$1; shift
  printf 'component: %s\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n' "$name" >"$W/$name.yaml"
  arm
  local start end
  curl -fsS "$PROXY/now" >"$W/$name.t0"
  start=$(date +%s%N)
  AWS_ENDPOINT_URL=$PROXY "$GEARS" deploy -c "$W/$name.yaml" --environment bench --region us-east-1 \
    --poll "$POLL" --output json "$@" >"$W/$name.json" 2>"$W/$name.err" || { tail -20 "$W/$name.err" >&2; exit 1; }
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}

# From the last command's start (the proxy's clock): the old group attached, and seen healthy
# (the last DescribeTargetHealth before the current group's detach), in ms.
attached() {
  curl -fsS "$PROXY/log" >"$W/$1.log"
  "$GEARS_VENV/bin/python" - "$W/$1.log" "$W/$1.t0" <<'PY'
import json, sys
log, t0 = json.load(open(sys.argv[1])), float(open(sys.argv[2]).read())
log = [e for e in log if e[0] >= t0]
att = next(i for i, e in enumerate(log) if e[1] == "AttachLoadBalancerTargetGroups")
det = next(i for i, e in enumerate(log) if i > att and e[1] == "DetachLoadBalancerTargetGroups")
seen = max(i for i in range(att, det) if log[i][1] == "DescribeTargetHealth")
ms = lambda i: (log[i][0] - t0) * 1000
goal = "within" if ms(att) <= 1000 else "past"
print(f"old group attached at {ms(att):.0f} ms ({goal} the 1 s goal), seen healthy in its target group at {ms(seen):.0f} ms; "
      f"{att} AWS calls before the attach")
PY
}

# A DynamoDB lock table for --lock-table on moto.
make_table() {
  "$GEARS_VENV/bin/python" - "$1" <<'PY'
import sys, boto3
boto3.client("dynamodb", region_name="us-east-1").create_table(TableName=sys.argv[1],
    AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
PY
}

detail() { "$GEARS_VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["groups"][0]["detail"])' "$W/$1.json"; }

base=ami-04681a1dbd79675a5
new=$(make_group bgbench)
deploy_ms=$(timed bgbench --ami "$new" --strategy blue-green)
back_ms=$(timed bgbench --ami "$new" --rollback)
echo "blue/green, group of $N, instances booting ${BOOT} s, --poll $POLL:"
echo "  deploy (clone grown, gated, switched): ${deploy_ms} ms"
echo "  --rollback with the tag lock, old group at its size: $(attached bgbench); exit at ${back_ms} ms ($(detail bgbench))"
make_table bench-locks
timed bgbench --ami "$new" --strategy blue-green --lock-table bench-locks >/dev/null
table_ms=$(timed bgbench --ami "$new" --rollback --lock-table bench-locks)
echo "  --rollback with the lock table: $(attached bgbench); exit at ${table_ms} ms"
timed bgbench --ami "$new" --strategy blue-green --scale-old-to 0 >/dev/null
cold_ms=$(timed bgbench --ami "$new" --rollback)
echo "  --rollback after --scale-old-to 0: $(attached bgbench); exit at ${cold_ms} ms ($(detail bgbench))"

new=$(make_group rollbench)
fwd_ms=$(timed rollbench --ami "$new" --batch 25%)
rback_ms=$(timed rollbench --ami "$base" --batch 25%)
echo "rolling, group of $N, --batch 25%:"
echo "  deploy: ${fwd_ms} ms; going back (a deploy of the old AMI): ${rback_ms} ms"
echo "blue/green --rollback is $(( rback_ms / (back_ms > 0 ? back_ms : 1) ))x faster than the rolling way back"
