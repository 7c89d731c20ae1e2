#!/usr/bin/env bash
# Prints, for Auto Scaling groups of 10 and 100 instances on moto, what `gears deploy` costs:
# AWS calls per poll (by action), total calls, polls, batches, and gears' own time per batch
# (wall time less the configured waits between polls). Calls go through a counting proxy in
# front of moto. Goals: calls per poll do not grow with the group; under 50 ms of gears' own
# time per batch. PROFILE=release for release figures (default: the debug build the tests use).
#
# Then, at the default --poll (5 s), for 1, 5 and 20 groups of one region rolled at once
# (--parallel N, groups behind one target group): calls per poll per region (the reads between
# two looks of the groups; goal: constant), tag writes per batch (goal: constant, none per
# poll), and, with instances that take BOOT seconds (default 1.5) to come InService, gears'
# reaction latency: from the state it waits for appearing in moto (a batch InService, old
# instances gone) to its next acting call (goal: median <= 1 s).
#
# Then many groups of one instance each (`--group` for each, --parallel 20, --batch 1), for
# GROUP_COUNTS group counts (default "1 20 60"): AWS calls per group, tag writes per group (each
# group's own, and the region's lease renewals shared out: one CreateOrUpdateTags renews every
# lock of the region; goal: at most 4, the same whatever the wait), launch template reads, and
# the wall time (goal for 60 groups: 420 s on moto behind the counting proxy).
#
# Last, the way back (scripts/bench-rollback.sh, a group of 10): blue/green's `--rollback` next
# to the rolling strategy's. ROLLBACK=0 leaves that part out.
#
# PARTS chooses the parts (default "sizes fleets groups"): PARTS=groups GROUP_COUNTS=60 ROLLBACK=0
# runs only the 60-group deploy.
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
PARTS=${PARTS:-sizes fleets groups}
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for n in $(part sizes && echo 10 100); do
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

BOOT=${BOOT:-1.5}
part fleets && echo && echo "at the default --poll (5 s), instances booting ${BOOT} s, groups of 4, --batch 1, one region:"
for n in $(part fleets && echo 1 5 20); do
  name="fleet$n"
  printf 'component: %s\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n' "$name" >"$W/$name.yaml"
  made=$("$GEARS_VENV/bin/python" - "$name" "$n" <<'PY'
import json, sys, boto3
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
names = [f"{name}-g{k:02}" for k in range(n)]
for g in names:
    tag = lambda k, v: {"Key": k, "Value": v, "PropagateAtLaunch": False, "ResourceId": g, "ResourceType": "auto-scaling-group"}
    asg.create_auto_scaling_group(AutoScalingGroupName=g, LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        MinSize=4, MaxSize=5, DesiredCapacity=4, AvailabilityZones=["us-east-1a"], TargetGroupARNs=[tg],
        Tags=[tag("gears:component", name), tag("gears:environment", "bench")])
known = [m["InstanceId"] for page in asg.get_paginator("describe_auto_scaling_groups").paginate(AutoScalingGroupNames=names)
         for g in page["AutoScalingGroups"] for m in g["Instances"]]
print(json.dumps({"ami": new, "known": known}))
PY
)
  new=$(printf '%s' "$made" | "$GEARS_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["ami"])')
  curl -fsS -X POST "http://127.0.0.1:$PROXY_PORT/reset" >/dev/null
  printf '%s' "$made" | "$GEARS_VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'boot': $BOOT, 'known': d['known']}))" |
    curl -fsS -X POST --data-binary @- "http://127.0.0.1:$PROXY_PORT/arm" >/dev/null
  start=$(date +%s%N)
  AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT" "$GEARS" deploy -c "$W/$name.yaml" \
    --environment bench --ami "$new" --region us-east-1 --batch 1 --parallel "$n" --output json \
    >"$W/$name.json" 2>"$W/$name.err" || { tail -20 "$W/$name.err"; exit 1; }
  end=$(date +%s%N)
  curl -fsS "http://127.0.0.1:$PROXY_PORT/log" >"$W/$name.log"
  curl -fsS "http://127.0.0.1:$PROXY_PORT/ready" >"$W/$name.ready"
  "$GEARS_VENV/bin/python" - "$n" "$W/$name.log" "$W/$name.ready" "$W/$name.json" "$(( (end - start) / 1000000 ))" <<'PY'
import json, statistics, sys
n, log, ready, out, wall_ms = int(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), json.load(open(sys.argv[4])), int(sys.argv[5])
groups = out["groups"]
assert len(groups) == n and all(g["result"] == "deployed" for g in groups), groups
batches = sum(g["batches"] for g in groups)
read = lambda a: a.startswith(("Describe", "Get", "List"))
looks = [i for i, (t, a, d) in enumerate(log) if a == "DescribeAutoScalingGroups"]
# Reads between two looks of the groups: what one poll costs the region.
per_poll = [sum(1 for t, a, d in log[i:j] if read(a)) for i, j in zip(looks, looks[1:])]
tags = [(a, d) for t, a, d in log if a in ("CreateOrUpdateTags", "DeleteTags")]
# Lock-only writes beyond each group's taking of its lock: lease renewals (one call renews
# every lock of the region).
lease = [1 for a, d in tags if d == "gears:deploy-lock"][n:]
span = log[-1][0] - log[0][0]
print(f"{n:>2} group(s): {batches} batches, {len(looks)} looks in {wall_ms} ms; calls per poll: "
      f"median {statistics.median(per_poll):.0f}, max {max(per_poll)}; tag writes: {len(tags)} "
      f"({len(tags) / batches:.2f} per batch; lease renewals alone {len(lease)}, "
      f"{len(lease) / max(span, 1e-9) * 60:.1f} a minute); {len(log)} calls in all")
if n == 1:
    acting = [(t, a) for t, a, d in log
              if not read(a) and not (a == "CreateOrUpdateTags" and d == "gears:deploy-lock")
              and a not in ("UpdateItem", "PutItem", "GetItem")]
    waits = []
    # A batch InService: the time its instances stopped answering Pending.
    for at in sorted(set(ready.values())):
        nxt = [t for t, a in acting if t >= at]
        if nxt:
            waits.append(("healthy", nxt[0] - at))
    # Old instances gone: moto removes them as the termination call returns.
    for i, (t, a) in enumerate(acting):
        if a == "TerminateInstanceInAutoScalingGroup" and i + 1 < len(acting):
            waits.append(("gone", acting[i + 1][0] - t))
    lat = sorted(w for _, w in waits)
    by = lambda k: ", ".join(f"{w * 1000:.0f}" for kk, w in waits if kk == k)
    print(f"   reaction latency over {len(lat)} waits: median {statistics.median(lat) * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms (batch InService -> next act: {by('healthy')} ms; "
          f"old gone -> next act: {by('gone')} ms)")
PY
done
part groups && echo && echo "groups of one instance, --parallel 20, --batch 1, instances booting ${BOOT} s, one region:"
for n in $(part groups && echo "${GROUP_COUNTS:-1 20 60}"); do
  name="many$n"
  printf 'component: %s\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n' "$name" >"$W/$name.yaml"
  made=$("$GEARS_VENV/bin/python" - "$name" "$n" <<'PY'
import json, sys, boto3
name, n = sys.argv[1], int(sys.argv[2])
ec2 = boto3.client("ec2", region_name="us-east-1")
asg = boto3.client("autoscaling", region_name="us-east-1")
base = "ami-04681a1dbd79675a5"
i = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
new = ec2.create_image(InstanceId=i, Name=name + "-new")["ImageId"]
ec2.terminate_instances(InstanceIds=[i])
lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": base, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
names = [f"{name}-g{k:02}" for k in range(n)]
for g in names:
    tag = lambda k, v: {"Key": k, "Value": v, "PropagateAtLaunch": False, "ResourceId": g, "ResourceType": "auto-scaling-group"}
    asg.create_auto_scaling_group(AutoScalingGroupName=g, LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
        Tags=[tag("gears:component", name), tag("gears:environment", "bench")])
known = [m["InstanceId"] for page in asg.get_paginator("describe_auto_scaling_groups").paginate(AutoScalingGroupNames=names)
         for g in page["AutoScalingGroups"] for m in g["Instances"]]
print(json.dumps({"ami": new, "known": known, "names": names}))
PY
)
  new=$(printf '%s' "$made" | "$GEARS_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["ami"])')
  flags=$(printf '%s' "$made" | "$GEARS_VENV/bin/python" -c 'import json,sys; print(" ".join("--group " + g for g in json.load(sys.stdin)["names"]))')
  curl -fsS -X POST "http://127.0.0.1:$PROXY_PORT/reset" >/dev/null
  printf '%s' "$made" | "$GEARS_VENV/bin/python" -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'boot': $BOOT, 'known': d['known']}))" |
    curl -fsS -X POST --data-binary @- "http://127.0.0.1:$PROXY_PORT/arm" >/dev/null
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT" "$GEARS" deploy -c "$W/$name.yaml" \
    --environment bench --ami "$new" --region us-east-1 $flags --batch 1 --parallel 20 --output json \
    >"$W/$name.json" 2>"$W/$name.err" || { tail -20 "$W/$name.err"; exit 1; }
  end=$(date +%s%N)
  curl -fsS "http://127.0.0.1:$PROXY_PORT/counts" >"$W/$name.counts"
  curl -fsS "http://127.0.0.1:$PROXY_PORT/tagged" >"$W/$name.tagged"
  "$GEARS_VENV/bin/python" - "$n" "$W/$name.counts" "$W/$name.tagged" "$W/$name.json" "$(( (end - start) / 1000000 ))" <<'PY'
import json, sys
n, counts, tagged, out, wall_ms = int(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), json.load(open(sys.argv[4])), int(sys.argv[5])
groups = out["groups"]
assert len(groups) == n and all(g["result"] == "deployed" and g["batches"] == 1 for g in groups), groups
total = sum(counts.values())
# A tag call naming one group is that group's own; one naming several is a lease renewal of
# every lock the region held then.
own = [sum(1 for t, a, ids in tagged if ids == [g["group"]]) for g in groups]
shared = [c for c in tagged if len(c[2]) > 1]
renewal_share = sum(len(c[2]) for c in shared) / n
writes = sum(1 for c in tagged)
print(f"{n:>2} group(s): wall {wall_ms / 1000:.1f} s; {total} AWS calls ({total / n:.1f} per group); "
      f"tag writes {writes} ({writes / n:.2f} calls per group: own {min(own)}..{max(own)}, "
      f"{len(shared)} shared renewals naming {renewal_share:.2f} per group); "
      f"DescribeLaunchTemplateVersions {counts.get('DescribeLaunchTemplateVersions', 0)}, "
      f"UpdateAutoScalingGroup {counts.get('UpdateAutoScalingGroup', 0)}")
print("   calls by action: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
PY
done
if [ "${ROLLBACK:-1}" != 0 ]; then
  echo
  echo "the way back, blue/green next to rolling (scripts/bench-rollback.sh):"
  env -u GEARS_RUN "$GEARS_ROOT/scripts/bench-rollback.sh"
fi
