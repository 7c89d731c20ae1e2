//! The keys of the component file and what each means. `docs/reference/component-file.md` is
//! made from [`KEYS`], and a test proves it names exactly the fields the file's types read, so a
//! new key without a line here fails.

/// `(key, meaning)`: a section's key is `section.key`, a builder's `builders[].key`.
pub const KEYS: &[(&str, &str)] = &[
    ("component", "The component's name: letters, digits, `-`, `_`, `.`. Required. Groups, AMIs and instances are found by it (`gears:component`)."),
    ("repo", "The component's repository URL, tagged on its AMIs (`COMPONENT_REPO`). Default: Jenkins' `GIT_URL`, then `git remote get-url origin`."),
    ("ami_regions", "The regions the AMI is made for: built in the first, copied to the others. Required."),
    ("builders", "The Packer builders, each `amazon-ebs`, `amazon-chroot` or a mapping (`builders[].*`). Default: `[amazon-ebs]`. One AMI per builder and region."),
    ("base_ami", "The AMI the bake starts from: `{id: ...}`, `{ssm: <parameter>}`, or a lookup where the newest match wins (`base_ami.*`). Required."),
    ("instance_type", "The build instance's type. Default `t3.micro`."),
    ("vpc_id", "The VPC of the build instance (with `subnet_id`). Default: the default VPC."),
    ("subnet_id", "The subnet of the build instance, and of the test instance unless `test.subnet_id` is given."),
    ("communicator", "How Packer reaches the build instance: `ssh` (default; the playbook runs on it) or `none` (emulators: the playbook is only syntax-checked)."),
    ("ssh_username", "The user Packer connects as. Default `ec2-user`."),
    ("ansible", "The playbook that provisions the image (`ansible.*`). Optional."),
    ("template", "The component's own Packer template (tera), relative to the component file. Default: the template shipped with gears."),
    ("template_format", "The template's format: `hcl2` (`.pkr.hcl`) or `json`. Default: `hcl2` on Packer 1.7 and later, `json` before (both work on Packer 1.6.6); a component's own template's by its name (`*.pkr.hcl.tera`, `*.json.tera`)."),
    ("test", "How `gears test` launches and checks a test instance (`test.*`)."),
    ("deploy", "What `gears deploy` takes from the component file (`deploy.*`)."),
    ("builders[].type", "`amazon-ebs` or `amazon-chroot` (bakes on an EC2 build agent). Required."),
    ("builders[].name", "Unique among the builders; part of the AMI name and its `gears:builder` tag. Default: the type."),
    ("builders[].instance_type", "This builder's instance type. Default: the component's `instance_type`. amazon-ebs only (an amazon-chroot builder that sets it is refused)."),
    ("builders[].base_ami", "This builder's base AMI, as `base_ami` (`{id: ...}` or a lookup). Default: the component's."),
    ("builders[].architecture", "`x86_64` or `arm64`: checked against the base AMI's architecture (DescribeImages) before anything is launched; a mismatch is exit 3."),
    ("builders[].instance_profile", "This builder's `instance_profile`, over the component's."),
    ("builders[].security_group_ids", "This builder's `security_group_ids`, over the component's."),
    ("builders[].ssh_cidrs", "This builder's `ssh_cidrs`, over the component's."),
    ("builders[].ssh_interface", "This builder's `ssh_interface`, over the component's."),
    ("builders[].root_volume", "This builder's `root_volume`, key by key over the component's."),
    ("builders[].spot", "This builder's `spot`, in place of the component's."),
    ("builders[].tags", "Tags added to the component's `tags` on this builder's AMIs."),
    ("builders[].run_tags", "Tags added to the component's `run_tags` on this builder's build instance."),
    ("instance_profile", "An instance profile name for the build instance (Packer's `iam_instance_profile`), e.g. for Session Manager or to read from S3. amazon-ebs only, as are the settings below but `tags` (an amazon-chroot builder that sets one of them is refused)."),
    ("security_group_ids", "Security group ids of the build instance (Packer then makes no temporary group)."),
    ("ssh_cidrs", "The CIDRs Packer's temporary security group lets SSH in from (`temporary_security_group_source_cidrs`). Without this, `security_group_ids` or `ssh_interface: session_manager`, the group lets SSH in from 0.0.0.0/0 and gears warns."),
    ("ssh_interface", "How Packer reaches the build instance: `public_ip`, `private_ip` or `session_manager` (no inbound SSH; needs the Session Manager plugin where Packer runs and an instance profile allowing SSM)."),
    ("root_volume", "The build instance's root volume, which the AMI's root snapshot is made from (`root_volume.*`; Packer's `launch_block_device_mappings`)."),
    ("root_volume.size_gb", "Size in GiB, 1 to 16384."),
    ("root_volume.type", "`gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard`."),
    ("root_volume.iops", "Provisioned IOPS (`gp3`, `io1`, `io2`)."),
    ("root_volume.throughput", "Throughput in MiB/s (`gp3`, 125 to 1000)."),
    ("root_volume.encrypted", "Encrypt the volume (and so the AMI's snapshot) with the account's default EBS key."),
    ("root_volume.device_name", "The root device. Default: the base AMI's `RootDeviceName` (`/dev/xvda` in `--dry-run` and `gears validate`, which look nothing up)."),
    ("spot", "Spot capacity for the build instance (`spot.*`)."),
    ("spot.max_price", "`auto` (the Spot price, at most on-demand) or dollars an hour (`0.05`). Required in `spot`."),
    ("spot.instance_types", "Instance types Packer may choose from, in place of `instance_type`."),
    ("tags", "Tags added to gears' own on every AMI and snapshot (a mapping). gears' own (`COMPONENT_*`, `AMI_VERSION`, `GIT_SHA`, `CREATED_AT`, `gears:*`) and `aws:*` are refused at their line."),
    ("run_tags", "Tags added to gears' own on the build instance and its volumes (`Name` and `gears:*` are gears')."),
    ("base_ami.id", "An AMI id: this one, exactly."),
    ("base_ami.ssm", "A Parameter Store parameter whose value is an AMI id (`/aws/service/ami-amazon-linux-latest/...`, or the organisation's golden-AMI parameter), read in the build region before anything is launched; the manifest records the parameter, its version and the AMI. One that does not exist, or whose value is not an AMI id, is exit 3."),
    ("base_ami.name", "A name pattern, `*` as wildcard, as in EC2's filters; the newest match wins."),
    ("base_ami.owners", "Owners of the lookup (`amazon`, `self`, an account id)."),
    ("base_ami.tags", "Tags the looked-up AMI must carry (a mapping)."),
    ("ansible.playbook", "The playbook, relative to the component file. Required in `ansible`."),
    ("ansible.roles", "Role folders, relative to the component file; each role lands in the staging folder's `roles/`."),
    ("ansible.vars", "Extra vars for the playbook (a mapping), passed with `COMPONENT_NAME` and `COMPONENT_VERSION`, each string as Ansible's `!unsafe`."),
    ("test.instance_type", "The test instance's type. Default: the component's `instance_type`."),
    ("test.subnet_id", "The test instance's subnet. Default: the component's `subnet_id`, else the default VPC's."),
    ("test.security_groups", "Security group ids of the test instance (a list)."),
    ("test.instance_profile", "An instance profile name or ARN for the test instance."),
    ("test.key_name", "An EC2 key pair for the test instance."),
    ("test.user_data", "User data of the test instance, inline."),
    ("test.user_data_file", "User data of the test instance from a file, relative to the component file."),
    ("test.smoke_file", "The smoke tests (Smolder format), relative to the component file. Default `smoke.yaml`. A deploy's health gate runs them at each new instance too."),
    ("test.port", "The port the smoke tests go to. Default: each test's own, else 80."),
    ("test.address", "Which address of the instance the tests go to: `private_ip` (default) or `public_ip`."),
    ("deploy.lock_table", "A DynamoDB table for the deploy locks (a true compare-and-swap), used unless `--lock-table` or `GEARS_LOCK_TABLE` names another."),
    ("deploy.alarms", "CloudWatch alarms that gate every deploy of the component, beside `--alarm`."),
    ("deploy.bake_time", "Seconds a healthy batch keeps being gated before gears acts on it; `--bake-time` overrides."),
    ("test.imds", "The test instance's metadata service: `v2` (default: a session token required, `HttpTokens=required`) or `v1` (also allowed, asked for explicitly)."),
    ("accounts", "Each environment's account: a mapping of environment name to the role gears assumes there (`accounts.<env>.*`). The commands that name an environment (`deploy -e`, `status -e` with one, a pipeline's deploy entries) act through it; `--role-arn` wins."),
    ("accounts.<env>.role_arn", "The role's ARN, `arn:aws:iam::<12 digits>:role/<name>`. Required in an entry."),
    ("accounts.<env>.external_id", "The external id the role's trust policy asks for (`sts:ExternalId`)."),
    ("share", "Who besides the baking account may launch the AMIs (`share.*`): shared after every bake and reuse, in every region, and read back; the manifest records it."),
    ("share.accounts", "Account ids (12 digits): launch permission on each AMI, and create-volume permission on its snapshots."),
    ("share.organizations", "Organization ARNs (`arn:aws:organizations::<account>:organization/o-...`): launch permission."),
    ("share.organizational_units", "Organizational unit ARNs (`arn:aws:organizations::<account>:ou/o-.../ou-...`): launch permission."),
    ("encrypt", "Encrypt the AMIs' boot volumes (Packer's `encrypt_boot`), with the keys below; `encrypt: {}` uses each region's default EBS key. Shared AMIs (`share:`) need a customer managed key in every region: AWS cannot share AMIs encrypted with `aws/ebs`. The AMIs record the keys in their `gears:encrypt` tag: an earlier bake of the same version is reused only when its AMIs record the same keys, else gears bakes again."),
    ("encrypt.kms_key_id", "The KMS key in the build region (the first of `ami_regions`): a key id, `alias/<name>`, or a key or alias ARN of that region."),
    ("deprecate_after", "Days after its bake each AMI is deprecated (`90`, `90d`, `12w`; up to 3650): gears calls EnableImageDeprecation on every AMI in every region after the bake and on reuse (the same time again); the manifest records `deprecate_at`."),
    ("deregistration_protection", "`enabled` or `with-cooldown` (24 hours of protection after it is disabled): gears calls EnableImageDeregistrationProtection on every AMI in every region after the bake and on reuse; `gears amis prune` keeps protected AMIs, saying so."),
    ("encrypt.region_kms_key_ids", "A mapping of each region the AMI is copied to (`ami_regions` past the first) to its KMS key."),
];

#[cfg(test)]
mod tests {
    use super::super::bake::{RootVolume, Spot};
    use super::super::{Ansible, BaseAmi, BuilderMap, DeploySection, RawComponent, TestSection};
    use super::KEYS;
    use crate::testing::fields::{assert_documented, fields_of};

    /// Every field of the component file's types has a line in [`KEYS`], and every line a field.
    #[test]
    fn every_component_file_key_is_documented() {
        assert_documented(
            KEYS,
            &[
                ("", fields_of::<RawComponent>()),
                ("builders[].", fields_of::<BuilderMap>()),
                ("base_ami.", fields_of::<BaseAmi>()),
                ("root_volume.", fields_of::<RootVolume>()),
                ("spot.", fields_of::<Spot>()),
                ("ansible.", fields_of::<Ansible>()),
                ("test.", fields_of::<TestSection>()),
                ("deploy.", fields_of::<DeploySection>()),
                ("accounts.<env>.", fields_of::<crate::accounts::Role>()),
                ("share.", fields_of::<crate::accounts::Shares>()),
                (
                    "encrypt.",
                    fields_of::<crate::component::encrypt::Encrypt>(),
                ),
            ],
            "src/component/file/keys.rs",
        );
    }
}
