"""Creates, in moto, the Auto Scaling groups `gears deploy` rolls in scripts/demo.sh: per region,
a launch template on moto's Amazon Linux 2 AMI, a target group, and a group of N instances
behind it tagged gears:component and gears:environment. Usage:
  moto-fleet.py [--account ACCOUNT] COMPONENT ENV N REGION...
With --account, in that account (moto: a role of it assumed with STS, as gears does). Prints one
line per group: region, group name."""
import sys
import boto3

args = sys.argv[1:]
session = boto3.Session()
if args[0] == "--account":
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{args[1]}:role/moto-fleet", RoleSessionName="moto-fleet"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    args = args[2:]
component, env, n, regions = args[0], args[1], int(args[2]), args[3:]
for region in regions:
    ec2 = session.client("ec2", region_name=region)
    asg = session.client("autoscaling", region_name=region)
    elb = session.client("elbv2", region_name=region)
    base = sorted(
        ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-2.0.*-x86_64-gp2"]}])["Images"],
        key=lambda i: i.get("CreationDate", ""),
    )[-1]["ImageId"]
    name = f"{component}-{env}"
    lt = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": base, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    vpc = [v for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")][0]["VpcId"]
    tg = elb.create_target_group(Name=name[:32], Protocol="HTTP", Port=8080, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    tag = lambda k, v: {"Key": k, "Value": v, "PropagateAtLaunch": False, "ResourceId": name, "ResourceType": "auto-scaling-group"}
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        MinSize=n, MaxSize=n, DesiredCapacity=n,
        AvailabilityZones=[region + "a"],
        TargetGroupARNs=[tg],
        Tags=[tag("gears:component", component), tag("gears:environment", env)],
    )
    print(f"{region}\t{name}")
