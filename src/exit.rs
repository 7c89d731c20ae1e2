//! The exit-code scheme that GoCD and Jenkins stages read (the README's table and
//! `docs/reference/exit-codes.md`, generated from [`Exit::ALL`]).
//!
//! Every way out of `gears` maps to one of these; when several apply the most severe wins
//! (`7 > 6 > 5 > 4 > 3 > 1`), see [`Exit::most_severe`].

/// A documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: a smoke test ran and failed (the AMI or release is bad).
    SmokeFailed,
    /// 2: bad command line.
    Usage,
    /// 3: invalid config, smoke file or template.
    InvalidInput,
    /// 4: packer failed or produced no AMI.
    Packer,
    /// 5: AWS error after retries (denied, throttled, waiter timeout): safe to retry.
    Cloud,
    /// 6: deploy failed its health gate and rolled back cleanly.
    RolledBack,
    /// 7: rollback failed or state unknown: a human must look.
    NeedsHuman,
    /// 130: interrupted by SIGINT, after cleanup.
    Interrupted,
    /// 143: terminated by SIGTERM, after cleanup.
    Terminated,
}

impl Exit {
    /// Every code, in the order of the README's table and the reference.
    pub const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::SmokeFailed,
        Exit::Usage,
        Exit::InvalidInput,
        Exit::Packer,
        Exit::Cloud,
        Exit::RolledBack,
        Exit::NeedsHuman,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::SmokeFailed => 1,
            Exit::Usage => 2,
            Exit::InvalidInput => 3,
            Exit::Packer => 4,
            Exit::Cloud => 5,
            Exit::RolledBack => 6,
            Exit::NeedsHuman => 7,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// One line for the README table and `gears --help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::SmokeFailed => "a smoke test ran and failed (the AMI or release is bad)",
            Exit::Usage => "bad command line",
            Exit::InvalidInput => "invalid config, smoke file or template",
            Exit::Packer => "packer failed or produced no AMI",
            Exit::Cloud => {
                "AWS error after retries (denied, throttled, waiter timeout): safe to retry"
            }
            Exit::RolledBack => "deploy failed its health gate and rolled back cleanly",
            Exit::NeedsHuman => "rollback failed or state unknown: a human must look",
            Exit::Interrupted => "interrupted by SIGINT, after cleanup",
            Exit::Terminated => "terminated by SIGTERM, after cleanup",
        }
    }

    pub fn severity(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::SmokeFailed => 1,
            Exit::Usage => 2,
            Exit::InvalidInput => 3,
            Exit::Packer => 4,
            Exit::Cloud => 5,
            Exit::RolledBack => 6,
            Exit::NeedsHuman => 7,
            // An interruption is reported as such unless a human must look.
            Exit::Interrupted | Exit::Terminated => 6,
        }
    }

    /// The more severe of two outcomes.
    pub fn most_severe(self, other: Exit) -> Exit {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_order_follows_the_table() {
        assert_eq!(Exit::SmokeFailed.most_severe(Exit::Packer), Exit::Packer);
        assert_eq!(
            Exit::NeedsHuman.most_severe(Exit::RolledBack),
            Exit::NeedsHuman
        );
        assert_eq!(Exit::Cloud.most_severe(Exit::SmokeFailed), Exit::Cloud);
        assert_eq!(
            Exit::Success.most_severe(Exit::SmokeFailed),
            Exit::SmokeFailed
        );
        assert_eq!(
            Exit::Interrupted.most_severe(Exit::NeedsHuman),
            Exit::NeedsHuman
        );
    }

    /// STYLE.md §16: the README's table, the generated reference and `gears --help` say what
    /// exit.rs says (the reference is also held to the code by `reference_pages_are_current`).
    #[test]
    fn readme_reference_and_help_list_every_code() {
        let readme = include_str!("../README.md");
        let reference = include_str!("../docs/reference/exit-codes.md");
        let help = crate::cli::EXIT_CODES;
        for e in Exit::ALL {
            let row = format!("| {} | {} |", e.code(), e.meaning());
            assert!(readme.contains(&row), "README lacks the row {row}");
            assert!(
                reference.contains(&row),
                "docs/reference/exit-codes.md lacks the row {row}"
            );
            let line = format!("{:<5}{}", e.code(), e.meaning());
            assert!(help.contains(&line), "--help lacks the line {line:?}");
        }
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Exit::ALL.len());
    }
}
