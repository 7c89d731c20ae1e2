//! The AMIs' use in the accounts of `accounts:` (each read through its environment's role),
//! and what their shares let a prune do: an AMI that another account may launch goes only when
//! every account it is shared with is one of `accounts:`, was read, and does not use it.

use super::{patience, Ami};
use crate::accounts::{Accounts, RoleSession};
use crate::aws::{AmiCloud, AmiHousekeeping, AmiUse, CloudError, LaunchPermission};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::wait::patiently;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

/// An account of `accounts:` whose use of the AMIs gears reads: one per account id, named by
/// its environments, read through the first one's role.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub account: String,
    pub environments: Vec<String>,
    pub session: RoleSession,
}

impl Consumer {
    /// `account 222222222222 (live)`.
    pub fn label(&self) -> String {
        format!(
            "account {} ({})",
            self.account,
            self.environments.join(", ")
        )
    }
}

/// The accounts of `accounts:`, one per account id (environments in the file's order of
/// names), each with a role session of `gears amis` for the component.
pub fn consumers(component: &str, accounts: &Accounts) -> Vec<Consumer> {
    let mut out: Vec<Consumer> = Vec::new();
    for (env, role) in accounts {
        let account = role.role_arn.account().to_owned();
        if let Some(c) = out.iter_mut().find(|c| c.account == account) {
            c.environments.push(env.clone());
            continue;
        }
        let Some(session) = crate::accounts::session("amis", component, None, Some(env), accounts)
        else {
            continue;
        };
        out.push(Consumer {
            account,
            environments: vec![env.clone()],
            session,
        });
    }
    out
}

/// An account of `accounts:` whose use of the AMIs could not be read in a region (its role
/// refused, access denied, throttled past retries): every AMI shared with it stays, and the
/// run ends with exit 5.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unread {
    pub region: String,
    pub account: String,
    pub environments: Vec<String>,
    #[serde(serialize_with = "as_text")]
    pub error: CloudError,
}

fn as_text<S: Serializer>(e: &CloudError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

impl Unread {
    /// Exit 5: what AWS refused may be granted, or stop throttling, on a later run.
    pub fn exit(&self) -> Exit {
        Exit::Cloud
    }
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "account {} ({}) could not be read in {}: {}",
            self.account,
            self.environments.join(", "),
            self.region,
            self.error
        )
    }
}

/// What uses the AMIs `ids` of `region` in the consumer's account, each named
/// `account … (env): launch-template lt-… (…)`; `Ok(Err(_))` when the account cannot be read.
/// No AMIs, no look. `Err` only when the run is interrupted.
pub(super) async fn uses_in<C: AmiCloud>(
    consumer: &Consumer,
    cloud: &C,
    region: &str,
    ids: &[String],
    cancel: &Cancel,
) -> Result<Result<Vec<(String, AmiUse)>, Unread>, Error> {
    if ids.is_empty() {
        // No AMI of ours in the region: nothing of theirs to read.
        return Ok(Ok(Vec::new()));
    }
    let unread = |error: CloudError| Unread {
        region: region.to_owned(),
        account: consumer.account.clone(),
        environments: consumer.environments.clone(),
        error,
    };
    let port = match cloud.amis(region).await {
        Ok(p) => p,
        Err(e) => return Ok(Err(unread(e))),
    };
    match patiently(cancel, patience(), || port.uses_of(ids)).await {
        Ok(uses) => Ok(Ok(uses
            .into_iter()
            .map(|u| (consumer.label(), u))
            .collect())),
        Err(Error::Cloud(e)) => Ok(Err(unread(e))),
        Err(e) => Err(e),
    }
}

/// What a look at one region found of the accounts of `accounts:`.
#[derive(Debug, Clone, Default)]
pub struct Looked<'a> {
    /// Accounts read: their use is known.
    pub read: BTreeSet<&'a str>,
    /// Accounts that could not be read.
    pub unread: BTreeMap<&'a str, &'a Unread>,
}

/// Why an AMI that [`super::select`] would prune stays because others may launch it, if it
/// does. Without `include_shared`: whenever anyone else may. With it: when it is public,
/// shared with an organization, an organizational unit, an account not in `accounts:`, or an
/// account that could not be read; an AMI shared only with accounts that were read (and, as
/// it was not kept for its use, none of them uses it) goes.
pub fn kept_for_shares(ami: &Ami, include_shared: bool, looked: &Looked<'_>) -> Option<String> {
    let mut shares = ami.shares.clone();
    if ami.public && !shares.contains(&LaunchPermission::Public) {
        shares.insert(0, LaunchPermission::Public);
    }
    if shares.is_empty() {
        return None;
    }
    if !include_shared {
        let who: Vec<String> = shares.iter().map(ToString::to_string).collect();
        return Some(if ami.public {
            "public: anyone may launch it (--include-shared prunes it only when shared with \
             nothing but accounts of accounts:)"
                .to_owned()
        } else {
            format!(
                "shared: {} may launch it (--include-shared prunes it)",
                who.join(", ")
            )
        });
    }
    let why: Vec<String> = shares
        .iter()
        .filter_map(|p| match p {
            LaunchPermission::Public => {
                Some("public: any account may launch it, and gears cannot see their use".into())
            }
            LaunchPermission::Organization(o) => Some(format!(
                "shared with organization {o}: gears cannot see its accounts' use"
            )),
            LaunchPermission::OrganizationalUnit(o) => Some(format!(
                "shared with organizational unit {o}: gears cannot see its accounts' use"
            )),
            LaunchPermission::Account(a) if looked.read.contains(a.as_str()) => None,
            LaunchPermission::Account(a) => Some(match looked.unread.get(a.as_str()) {
                Some(u) => format!(
                    "shared with account {a} ({}), which could not be read",
                    u.environments.join(", ")
                ),
                None => format!(
                    "shared with account {a}, which is not in accounts: (gears cannot see its use)"
                ),
            }),
        })
        .collect();
    (!why.is_empty()).then(|| why.join("; "))
}
