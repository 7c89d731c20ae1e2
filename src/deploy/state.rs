//! The deploy recorded on a group (`gears:deploy`): what a killed run had reached, with the
//! lock, read once per look at the group into [`OnGroup`]. A tag that cannot be read stops the
//! run for that group (exit 7), never "nothing recorded".
use crate::aws::{Fleet, Group, TemplateRef};
use crate::cancel::Cancel;
use crate::deploy::lock::{stopped, LockValue};
use crate::deploy::{LOCK_TAG, STATE_TAG, TAGS_TAG};
use crate::error::Error;
use crate::wait::patiently;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// A group's deploy state, kept in its `gears:deploy` tag (at most 256 characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub run: String,
    pub ami: String,
    /// The template id.
    pub lt: String,
    /// The version the group launched from before.
    pub from: String,
    /// The version with the new AMI (left out while it does not exist yet, and for a launch
    /// configuration copy, whose name follows from `from` and `run`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// The processes gears suspended (and will resume).
    pub susp: Vec<String>,
    /// `from` and `to` are launch configuration names, not template versions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lc: bool,
    /// The template is a mixed-instances policy's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mx: bool,
    /// The version number `from` meant when the deploy started (the new version's base).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fromn: String,
}

impl State {
    /// The one parser: what the tag says, or why it cannot be read.
    pub fn parse(value: &str) -> Result<State, String> {
        let mut st: State = serde_json::from_str(value).map_err(|e| e.to_string())?;
        // A launch configuration copy's name follows from its source and the run; the writer
        // leaves it out, so long names still fit the tag.
        if st.lc && st.to.is_empty() && !st.from.is_empty() {
            st.to = super::start::copy_name(&st.from, &st.run);
        }
        if st.run.is_empty() || !crate::aws::is_ami_id(&st.ami) || st.from.is_empty() {
            return Err("it lacks the run, the AMI or the launch spec it came from".into());
        }
        if st.min < 0 || st.max < st.min || st.desired < st.min || st.desired > st.max {
            return Err(format!(
                "its capacity {}/{}/{} is not min ≤ desired ≤ max",
                st.min, st.desired, st.max
            ));
        }
        Ok(st)
    }

    /// The one writer.
    pub fn write(&self) -> String {
        let mut st = self.clone();
        if st.lc && st.to == super::start::copy_name(&st.from, &st.run) {
            st.to.clear();
        }
        serde_json::to_string(&st).unwrap_or_default()
    }
}

/// What gears wrote on a group, read once: its lock and its recorded deploy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnGroup {
    pub lock: Option<LockValue>,
    pub recorded: Option<State>,
    /// A blue/green switch in flight from this group.
    pub switch: Option<super::blue_green::record::Switch>,
    /// This group was switched away from and is kept out of traffic.
    pub retired: Option<super::blue_green::record::Retired>,
}

impl OnGroup {
    /// Reads the group's `gears:deploy-lock` and `gears:deploy` tags. A value gears did not
    /// write, or one it cannot read, is an error naming the group and the tag (exit 7: a human
    /// must look), never "nothing there".
    pub fn read(g: &Group) -> Result<OnGroup, Error> {
        let lock = match g.tags.get(LOCK_TAG) {
            None => None,
            Some(v) => Some(LockValue::parse(v).map_err(|why| unreadable(g, LOCK_TAG, v, &why))?),
        };
        let recorded = match g.tags.get(STATE_TAG) {
            None => None,
            Some(v) => Some(State::parse(v).map_err(|why| unreadable(g, STATE_TAG, v, &why))?),
        };
        use super::blue_green::record::{parse_retired, parse_switch};
        let tag = crate::tags::BLUEGREEN;
        let switch = match g.tags.get(tag) {
            None => None,
            Some(v) => Some(parse_switch(v).map_err(|why| unreadable(g, tag, v, &why))?),
        };
        let tag = crate::tags::RETIRED;
        let retired = match g.tags.get(tag) {
            None => None,
            Some(v) => Some(parse_retired(v).map_err(|why| unreadable(g, tag, v, &why))?),
        };
        Ok(OnGroup {
            lock,
            recorded,
            switch,
            retired,
        })
    }

    /// The AMI of the deploy recorded on the group (a rolling one, or a blue/green switch).
    pub fn recorded_ami(&self) -> Option<&str> {
        self.recorded
            .as_ref()
            .map(|s| s.ami.as_str())
            .or_else(|| self.switch.as_ref().map(|s| s.ami.as_str()))
    }

    /// The lock is this run's.
    pub fn ours(&self, run: &str) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| !l.is_stop() && l.run() == run)
    }
}

fn unreadable(g: &Group, tag: &str, value: &str, why: &str) -> Error {
    let shown: String = value.chars().take(120).collect();
    stopped(
        &g.name,
        format!("its {tag} tag cannot be read ({why}): `{shown}`"),
        &format!(
            "gears did not write this value: look at the group, then remove the tag (`aws autoscaling delete-tags --tags ResourceId={},ResourceType=auto-scaling-group,Key={tag}`) or fix it",
            g.name
        ),
    )
}

/// The instance tags a group had before the deploy (`gears:deploy-tags`): a value per tag,
/// `None` for one the group did not have.
pub(super) fn prior_tags(value: &str) -> Result<BTreeMap<String, Option<String>>, String> {
    serde_json::from_str(value).map_err(|e| format!("{TAGS_TAG} cannot be read: {e}"))
}

/// The client token of a recorded deploy's new template version.
pub(super) fn version_token(st: &State) -> String {
    format!(
        "gears{}{}v{}",
        st.run.replace('-', ""),
        st.lt.trim_start_matches("lt-"),
        st.fromn
    )
    .chars()
    .take(64)
    .collect()
}

/// The AMI of the launch spec a recorded deploy came from (`None` if AWS does not say, after
/// retries).
pub(super) async fn recorded_from_ami<F: Fleet>(
    fleet: &F,
    st: &State,
    cancel: &Cancel,
    deadline: Instant,
) -> Option<String> {
    let t = TemplateRef {
        id: st.lt.clone(),
        version: st.from.clone(),
    };
    let was = patiently(cancel, deadline, || async {
        if st.lc {
            fleet.configuration_image(&st.from).await
        } else {
            fleet.template_image(&t).await
        }
    })
    .await;
    was.ok().filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::State;

    /// A recorded deploy whose AMI is not of an AMI id's form is unreadable, as any other
    /// malformed value is (the shared `aws::is_ami_id`, not a prefix).
    #[test]
    fn a_recorded_ami_of_another_form_is_unreadable() {
        let with = |ami: &str| {
            format!(
                r#"{{"run":"r","ami":"{ami}","lt":"lt-1","from":"1","to":"2","min":2,"max":2,"desired":2,"susp":[]}}"#
            )
        };
        assert!(State::parse(&with("ami-0123456789abcdef0")).is_ok());
        assert!(State::parse(&with("ami-12345678")).is_ok());
        for ami in [
            "ami-1",
            "ami-0123456789ABCDEF0",
            "ami-0123456789abcdefg",
            "ami-",
            "ami-0123456789abcdef0 ",
        ] {
            let why = State::parse(&with(ami)).unwrap_err();
            assert!(why.contains("the AMI"), "{ami}: {why}");
        }
    }
}
