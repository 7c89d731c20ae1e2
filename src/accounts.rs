//! The AWS accounts gears acts in: the environment's role it assumes (`accounts:` in the
//! component file, `--role-arn`/`--external-id` on the command line) and the session it names
//! for CloudTrail. Each account is its own SDK configuration (`aws::Aws`), made once per run.

use serde::de::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// An IAM role's ARN: `arn:<partition>:iam::<12 digits>:role/<path and name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn(String);

impl RoleArn {
    /// The account the role is in.
    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RoleArn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let re = regex::Regex::new(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$")
            .expect("valid regex");
        if s.len() <= 2048 && re.is_match(s) {
            Ok(RoleArn(s.to_owned()))
        } else {
            Err("expected a role ARN like arn:aws:iam::111111111111:role/gears-deploy (12 digits of account)".to_owned())
        }
    }
}

impl<'de> Deserialize<'de> for RoleArn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::parsed(d, str::parse)
    }
}

/// A role gears assumes, with the external id its trust policy may demand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub role_arn: RoleArn,
    pub external_id: Option<String>,
}

/// The component file's `accounts:`: each environment's role.
pub type Accounts = BTreeMap<String, Role>;

/// A role as a run assumes it: the role, the environment it is for (named in errors), and the
/// session name CloudTrail shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    pub role: Role,
    pub environment: Option<String>,
    pub session_name: String,
}

/// STS's longest role session name.
const SESSION_NAME_MAX: usize = 64;

/// `gears-<command>-<component>-<8 hex of the run>`, in STS's character set (`[\w+=,.@-]`)
/// and within its 64 characters: the component is shortened, never the run's hex.
pub fn session_name(command: &str, component: &str, run: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let run: String = clean(run).chars().take(8).collect();
    let head = format!("gears-{}-", clean(command));
    let room = SESSION_NAME_MAX.saturating_sub(head.len() + 1 + run.len());
    let component: String = clean(component).chars().take(room).collect();
    format!("{head}{component}-{run}")
}

/// The role a command acts through: the flag's (`--role-arn`, `--external-id`) wins; else,
/// for a command that names an environment, that environment's entry in `accounts:`; else
/// none (the caller's own account).
pub fn choose(
    flag: Option<Role>,
    environment: Option<&str>,
    accounts: &Accounts,
) -> Option<(Role, Option<String>)> {
    match (flag, environment) {
        (Some(r), env) => Some((r, env.map(str::to_owned))),
        (None, Some(env)) => accounts.get(env).map(|r| (r.clone(), Some(env.to_owned()))),
        (None, None) => None,
    }
}

/// The role session of one command of this run, if it acts through a role: [`choose`]'s role,
/// named [`session_name`] with 8 hex digits of a random run id.
pub fn session(
    command: &str,
    component: &str,
    flag: Option<Role>,
    environment: Option<&str>,
    accounts: &Accounts,
) -> Option<RoleSession> {
    let (role, environment) = choose(flag, environment, accounts)?;
    let run: String = crate::random::bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(RoleSession {
        session_name: session_name(command, component, &run),
        role,
        environment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_name_a_twelve_digit_account() {
        let r: RoleArn = "arn:aws:iam::111111111111:role/gears-deploy"
            .parse()
            .unwrap();
        assert_eq!(r.account(), "111111111111");
        assert!("arn:aws-us-gov:iam::111111111111:role/path/x"
            .parse::<RoleArn>()
            .is_ok());
        for bad in [
            "arn:aws:iam::11111111111:role/x",
            "arn:aws:iam::111111111111:user/x",
            "arn:aws:iam::111111111111:role/",
            "111111111111",
            "arn:aws:iam::111111111111:role/a b",
        ] {
            assert!(bad.parse::<RoleArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names_fit_sts() {
        let n = session_name("deploy", "hello-service", "0123456789abcdef");
        assert_eq!(n, "gears-deploy-hello-service-01234567");
        let long = session_name("deploy", &"x".repeat(200), "0123456789abcdef");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-01234567"), "{long}");
        let odd = session_name("deploy", "a b/c", "ff");
        assert_eq!(odd, "gears-deploy-a-b-c-ff");
    }

    #[test]
    fn a_flag_wins_over_the_environments_account() {
        let live = Role {
            role_arn: "arn:aws:iam::222222222222:role/d".parse().unwrap(),
            external_id: Some("x".into()),
        };
        let flag = Role {
            role_arn: "arn:aws:iam::333333333333:role/d".parse().unwrap(),
            external_id: None,
        };
        let accounts = Accounts::from([("live".to_owned(), live.clone())]);
        assert_eq!(
            choose(None, Some("live"), &accounts),
            Some((live, Some("live".into())))
        );
        assert_eq!(
            choose(Some(flag.clone()), Some("live"), &accounts).map(|r| r.0),
            Some(flag)
        );
        assert_eq!(choose(None, Some("stage"), &accounts), None);
        assert_eq!(choose(None, None, &accounts), None);
    }
}
