//! What packer made for a build (its instance, temporary key pair and security group, and the
//! launch template of a Spot build), read from its progress lines, so a bake interrupted twice (the second signal stops gears during
//! packer's cleanup) names each one in `left undone`, with the command that removes it.

/// The build resources packer said it made, in the region the builds run in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leftovers {
    pub instances: Vec<String>,
    pub key_pairs: Vec<String>,
    pub security_groups: Vec<String>,
    /// Spot builds' launch templates (`lt-…`; Packer 1.6.6 does not say its id).
    pub launch_templates: Vec<String>,
}

impl Leftovers {
    /// Reads one of packer's `ui` lines (`Instance ID: i-…`, `Creating temporary keypair:
    /// packer_…`, `Creating temporary security group for this instance: packer_…`, `Created
    /// Spot Fleet launch template: lt-…`); true when it named something new.
    pub fn see(&mut self, text: &str) -> bool {
        let text = text.trim();
        let after = |prefix: &str| {
            text.split_once(prefix)
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default())
                .filter(|w| !w.is_empty())
                .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        };
        let (list, found) = if let Some(id) = after("Instance ID:").filter(|i| is_instance_id(i)) {
            (&mut self.instances, id)
        } else if let Some(k) = after("Creating temporary keypair:").filter(|k| packer_name(k)) {
            (&mut self.key_pairs, k)
        } else if let Some(g) =
            after("Creating temporary security group for this instance:").filter(|g| packer_name(g))
        {
            (&mut self.security_groups, g)
        } else if let Some(t) =
            after("Created Spot Fleet launch template:").filter(|t| is_template_id(t))
        {
            (&mut self.launch_templates, t)
        } else {
            return false;
        };
        if list.contains(&found) {
            return false;
        }
        list.push(found);
        true
    }

    /// The `left undone` text: each resource with the command that removes it (in `region`),
    /// and how a reaper finds them.
    pub fn undone(&self, region: &str, run_tag: &str, run_id: &str) -> String {
        let mut parts = Vec::new();
        for i in &self.instances {
            parts.push(format!(
                "instance {i} (aws ec2 terminate-instances --region {region} --instance-ids {i})"
            ));
        }
        for k in &self.key_pairs {
            parts.push(format!(
                "key pair {k} (aws ec2 delete-key-pair --region {region} --key-name {k})"
            ));
        }
        for g in &self.security_groups {
            parts.push(format!(
                "security group {g}, once the instance is gone (aws ec2 delete-security-group --region {region} --group-id $(aws ec2 describe-security-groups --region {region} --filters Name=group-name,Values={g} --query 'SecurityGroups[0].GroupId' --output text))"
            ));
        }
        for t in &self.launch_templates {
            parts.push(format!(
                "Spot launch template {t} (aws ec2 delete-launch-template --region {region} --launch-template-id {t})"
            ));
        }
        let what = if parts.is_empty() {
            "its build resources (instance, key pair, security group, a Spot build's launch template)".to_owned()
        } else {
            parts.join("; ")
        };
        format!(
            "packer's cleanup of {what}; a reaper finds them by the tag {run_tag}={run_id} (`gears reap --region {region} --yes`)"
        )
    }
}

/// `i-` and 8 or 17 hex digits.
fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// `lt-` and 17 hex digits.
fn is_template_id(s: &str) -> bool {
    s.strip_prefix("lt-")
        .is_some_and(|h| h.len() == 17 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A name packer gives its temporary resources: `packer_` and letters, digits, `-`.
fn packer_name(s: &str) -> bool {
    s.strip_prefix("packer_")
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packers_lines_name_what_it_made_and_the_commands_remove_each() {
        let mut l = Leftovers::default();
        assert!(l.see("Creating temporary keypair: packer_5fc0e3a1-aaaa-bbbb-cccc-0123456789ab"));
        assert!(l.see("Creating temporary security group for this instance: packer_5fc0e3a2-aaaa-bbbb-cccc-0123456789ab"));
        assert!(l.see("    Instance ID: i-f26325cd3760246a8"));
        assert!(l.see("Created Spot Fleet launch template: lt-0123456789abcdef0"));
        assert!(!l.see("Created Spot Fleet launch template: lt-nope"));
        // Said twice (packer's ui line and its machine-readable twin): once.
        assert!(!l.see("Instance ID: i-f26325cd3760246a8"));
        // Not packer's: a look-alike name, an id that is not one.
        assert!(!l.see("Creating temporary keypair: mykey"));
        assert!(!l.see("Instance ID: i-xyz"));
        assert!(!l.see("Found Image ID: ami-04681a1dbd79675a5"));
        let text = l.undone("us-east-1", "gears:run-id", "0190");
        for want in [
            "instance i-f26325cd3760246a8 (aws ec2 terminate-instances --region us-east-1 --instance-ids i-f26325cd3760246a8)",
            "key pair packer_5fc0e3a1-aaaa-bbbb-cccc-0123456789ab (aws ec2 delete-key-pair --region us-east-1 --key-name packer_5fc0e3a1-aaaa-bbbb-cccc-0123456789ab)",
            "security group packer_5fc0e3a2-aaaa-bbbb-cccc-0123456789ab, once the instance is gone (aws ec2 delete-security-group --region us-east-1",
            "Spot launch template lt-0123456789abcdef0 (aws ec2 delete-launch-template --region us-east-1 --launch-template-id lt-0123456789abcdef0)",
            "a reaper finds them by the tag gears:run-id=0190",
        ] {
            assert!(text.contains(want), "{want}\nin: {text}");
        }
        // Nothing seen yet: the general words, as before.
        let none = Leftovers::default().undone("us-east-1", "gears:run-id", "0190");
        assert!(
            none.contains("its build resources (instance, key pair, security group, a Spot build's launch template)"),
            "{none}"
        );
    }
}
