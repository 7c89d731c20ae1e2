//! What a deploy did, group by group: the report returned to the caller, each result with its
//! exit code (never chosen from text).
use crate::error::{Error, InputError};
use serde::Serialize;

/// How a group's deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GroupResult {
    #[serde(rename = "planned")]
    Planned,
    #[serde(rename = "deployed")]
    Deployed,
    #[serde(rename = "nothing to do")]
    NothingToDo,
    #[serde(rename = "rolled back")]
    RolledBack,
    #[serde(rename = "rollback failed")]
    RollbackFailed,
    #[serde(rename = "skipped")]
    Skipped,
    #[serde(rename = "aborted")]
    Aborted,
    #[serde(rename = "unlocked")]
    Unlocked,
}

impl GroupResult {
    /// The words of the report (tab lines, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupResult::Planned => "planned",
            GroupResult::Deployed => "deployed",
            GroupResult::NothingToDo => "nothing to do",
            GroupResult::RolledBack => "rolled back",
            GroupResult::RollbackFailed => "rollback failed",
            GroupResult::Skipped => "skipped",
            GroupResult::Aborted => "aborted",
            GroupResult::Unlocked => "unlocked",
        }
    }

    /// 6 for a clean rollback, 7 for a failed one, else 0.
    pub fn exit(self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            GroupResult::RolledBack => Exit::RolledBack,
            GroupResult::RollbackFailed => Exit::NeedsHuman,
            _ => Exit::Success,
        }
    }

    /// The group stopped its AMI's deploy: the groups not started yet are skipped.
    pub fn failed(self) -> bool {
        matches!(self, GroupResult::RolledBack | GroupResult::RollbackFailed)
    }
}

impl std::fmt::Display for GroupResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for GroupResult {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What happened to one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupOutcome {
    pub region: String,
    pub group: String,
    pub from_ami: String,
    pub to_ami: String,
    pub result: GroupResult,
    pub detail: String,
    pub batches: u32,
}

impl GroupOutcome {
    /// An outcome of `group` in `region` still to be decided (`result` is set by whoever ends it).
    pub fn new(region: &str, group: &str, from_ami: String, to_ami: &str) -> GroupOutcome {
        GroupOutcome {
            region: region.to_owned(),
            group: group.to_owned(),
            from_ami,
            to_ami: to_ami.to_owned(),
            result: GroupResult::NothingToDo,
            detail: String::new(),
            batches: 0,
        }
    }

    pub fn with(mut self, result: GroupResult, detail: impl Into<String>) -> GroupOutcome {
        self.result = result;
        self.detail = detail.into();
        self
    }
}

/// What `gears deploy` did, group by group.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub groups: Vec<GroupOutcome>,
}

impl Deployed {
    /// What each group did, as Markdown for a CI server's summary page: region, group, result,
    /// the AMIs, batches and the detail.
    pub fn markdown(&self, environment: &str) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace(['\r', '\n'], " ");
        let mut md = format!(
            "### gears deploy: {}\n\n| region | group | result | AMI | batches | detail |\n|---|---|---|---|---|---|\n",
            cell(environment)
        );
        for g in &self.groups {
            md.push_str(&format!(
                "| {} | {} | {} | {} -> {} | {} | {} |\n",
                cell(&g.region),
                cell(&g.group),
                g.result,
                cell(&g.from_ami),
                cell(&g.to_ami),
                g.batches,
                cell(&g.detail)
            ));
        }
        md.push('\n');
        md
    }

    /// 0 all deployed (or planned); 6 a group rolled back cleanly; 7 a rollback failed.
    pub fn exit(&self) -> crate::exit::Exit {
        self.groups.iter().fold(crate::exit::Exit::Success, |e, g| {
            e.most_severe(g.result.exit())
        })
    }
}

/// A deploy that ends with an error (a signal, an AWS error, a refusal), with what each group
/// that got that far did: the report is printed whatever the exit.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub groups: Vec<GroupOutcome>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            groups: Vec::new(),
        }
    }
}

impl From<InputError> for Failed {
    fn from(e: InputError) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary page's table: a row per group, a `|` or a line break in a detail kept in its cell.
    #[test]
    fn the_markdown_summary_has_a_row_per_group() {
        let mut g = GroupOutcome::new("us-east-1", "hello-live", "ami-old".into(), "ami-new");
        g.result = GroupResult::Deployed;
        g.batches = 2;
        g.detail = "a | b\nc".into();
        let md = Deployed { groups: vec![g] }.markdown("live");
        assert!(md.starts_with("### gears deploy: live\n"), "{md}");
        assert!(
            md.contains(
                "| us-east-1 | hello-live | deployed | ami-old -> ami-new | 2 | a \\| b c |\n"
            ),
            "{md}"
        );
    }
}
