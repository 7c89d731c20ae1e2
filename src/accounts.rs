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

/// An identifier checked by a pattern, parsed the same from a file and a flag.
macro_rules! checked_id {
    ($(#[$doc:meta])* $name:ident, $re:expr, $words:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let re = regex::Regex::new($re).expect("valid regex");
                if re.is_match(s) {
                    Ok($name(s.to_owned()))
                } else {
                    Err($words.to_owned())
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::units::parsed(d, str::parse)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_id!(
    /// An AWS account id: 12 digits.
    AccountId,
    r"^[0-9]{12}$",
    "expected an AWS account id: 12 digits, like 111111111111"
);
checked_id!(
    /// An organization's ARN.
    OrgArn,
    r"^arn:aws(-[a-z]+)*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$",
    "expected an organization ARN like arn:aws:organizations::123456789012:organization/o-abcd123456"
);
checked_id!(
    /// An organizational unit's ARN.
    OuArn,
    r"^arn:aws(-[a-z]+)*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$",
    "expected an organizational unit ARN like arn:aws:organizations::123456789012:ou/o-abcd123456/ou-ab12-cdefgh12"
);

/// Who may launch the component's AMIs besides the account that bakes them (`share:` in the
/// component file), and so who may create volumes from their snapshots (the accounts).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shares {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<OrgArn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<OuArn>,
}

impl Shares {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.organizations.is_empty()
            && self.organizational_units.is_empty()
    }

    /// What `self` asks for that `seen` lacks, each named.
    pub fn missing_from(&self, seen: &Shares) -> Vec<String> {
        let mut missing: Vec<String> = Vec::new();
        missing.extend(
            self.accounts
                .iter()
                .filter(|a| !seen.accounts.contains(a))
                .map(|a| format!("account {a}")),
        );
        missing.extend(
            self.organizations
                .iter()
                .filter(|o| !seen.organizations.contains(o))
                .map(|o| format!("organization {o}")),
        );
        missing.extend(
            self.organizational_units
                .iter()
                .filter(|o| !seen.organizational_units.contains(o))
                .map(|o| format!("organizational unit {o}")),
        );
        missing
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
    if component.is_empty() {
        // A command without a component (reap): no empty part between two dashes.
        return format!("{head}{run}");
    }
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
    fn shares_are_checked_as_the_file_is_read_and_compared_by_what_is_missing() {
        let f: Shares = serde_yaml::from_str(
            "accounts: [\"111111111111\"]\norganizations: [arn:aws:organizations::123456789012:organization/o-abcd123456]\norganizational_units: [arn:aws:organizations::123456789012:ou/o-abcd123456/ou-ab12-cdefgh12]\n",
        )
        .unwrap();
        assert_eq!(f.accounts, [AccountId("111111111111".into())]);
        let e = serde_yaml::from_str::<Shares>("accounts: [\"111111111111\", \"12345\"]\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("accounts[1]: `12345`: expected an AWS account id"),
            "{e}"
        );
        assert_eq!(e.location().map(|l| (l.line(), l.column())), Some((1, 28)));
        assert!(serde_yaml::from_str::<Shares>("organizations: [o-abcd123456]\n").is_err());
        assert!(serde_yaml::from_str::<Shares>("acounts: []\n").is_err());
        let seen = Shares {
            accounts: vec![AccountId("111111111111".into())],
            ..Shares::default()
        };
        assert_eq!(
            f.missing_from(&seen),
            [
                "organization arn:aws:organizations::123456789012:organization/o-abcd123456",
                "organizational unit arn:aws:organizations::123456789012:ou/o-abcd123456/ou-ab12-cdefgh12"
            ]
        );
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
        assert_eq!(
            session_name("reap", "", "0123456789"),
            "gears-reap-01234567"
        );
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
