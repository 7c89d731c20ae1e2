//! The IAM policy in `docs/iam-policy.json` against what each stage calls.
//!
//! Each stage runs a few representative scenarios on the fake AWS. Every operation the fake
//! logged becomes an IAM action through [`SERVICES`]. The stage's statement must list each
//! one, and the failure names what is missing. Two more tables add what the fake's log does not
//! show: [`UNLOGGED`], calls `src/aws` makes that the fake does not log, and [`IMPLIED`], actions
//! IAM checks beyond the operation's own. Packer's own calls during a bake are not Rust code; the
//! Bake statement keeps them as documented, and this test only checks the lookups gears makes
//! itself.

mod amis;
mod bake;
mod deploy;
mod reap;
mod status;
mod tables;
mod test_stage;

use tables::{IMPLIED, SERVICES, UNLOGGED};

use crate::aws::fake::{FakeCloud, Faults};
use crate::aws::{Cloud, Group, Image, Instance, LockTable, SecurityGroup, TemplateRef};
use crate::cancel::{Cancel, Cleanup};
use crate::context::RunContext;
use crate::deploy::{defaults, Batch, DeploySettings, Strategy};
use crate::settings::AmiChoice;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Where the policy is, from the crate's root; the docs link to it.
const POLICY_FILE: &str = "docs/iam-policy.json";

/// The policy's statements in [`POLICY_FILE`]: Sid → the actions it allows.
fn policy() -> BTreeMap<String, BTreeSet<String>> {
    let json = include_str!("../../../docs/iam-policy.json");
    let doc: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{POLICY_FILE} is not JSON: {e}"));
    let mut out = BTreeMap::new();
    for s in doc["Statement"].as_array().expect("a Statement list") {
        let sid = s["Sid"].as_str().expect("every statement has a Sid");
        let actions: BTreeSet<String> = match &s["Action"] {
            serde_json::Value::String(a) => BTreeSet::from([a.clone()]),
            serde_json::Value::Array(v) => v
                .iter()
                .map(|a| a.as_str().expect("an action is a string").to_owned())
                .collect(),
            other => panic!("statement {sid}: Action is neither a string nor a list: {other}"),
        };
        assert!(
            out.insert(sid.to_owned(), actions).is_none(),
            "two statements with Sid {sid}"
        );
    }
    out
}

/// The IAM actions behind what the fake logged (`Operation region` lines), for a stage.
fn actions(stage: &str, calls: &[String]) -> BTreeSet<String> {
    let service = |op: &str| {
        SERVICES
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, s)| format!("{s}:{op}"))
            .unwrap_or_else(|| {
                panic!(
                    "the {stage} stage called `{op}`, an operation this test does not know: add \
                     it to SERVICES in src/testing/iam_policy/tables.rs with its IAM service, \
                     then to docs/iam-policy.json"
                )
            })
    };
    let mut ops: BTreeSet<&str> = calls
        .iter()
        .map(|c| c.split_whitespace().next().unwrap_or_default())
        .collect();
    for (stages, logged, also) in UNLOGGED {
        if stages.contains(&stage) && ops.contains(logged) {
            ops.insert(also);
        }
    }
    let mut out: BTreeSet<String> = ops.iter().map(|op| service(op)).collect();
    for (op, with, action) in IMPLIED {
        if ops.contains(op) && (with.is_empty() || with.iter().any(|w| ops.contains(w))) {
            out.insert((*action).to_owned());
        }
    }
    out
}

/// Each scenario's calls, as (scenario, fake log).
type Runs = Vec<(&'static str, Vec<String>)>;

/// The actions the runs needed that `allowed` lacks, each with the scenarios that called it.
fn missing(stage: &str, allowed: &BTreeSet<String>, runs: &Runs) -> Vec<String> {
    let mut needed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (scenario, calls) in runs {
        assert!(!calls.is_empty(), "{stage}: `{scenario}` called nothing");
        for a in actions(stage, calls) {
            needed.entry(a).or_default().push(scenario);
        }
    }
    needed
        .iter()
        .filter(|(a, _)| !allowed.contains(*a))
        .map(|(a, by)| format!("{a} (called by: {})", by.join("; ")))
        .collect()
}

/// Asserts that the stage's statement in [`POLICY_FILE`] lists every action its runs needed,
/// naming each missing one.
fn assert_listed(stage: &str, runs: &Runs) {
    let policy = policy();
    let allowed = policy
        .get(stage)
        .unwrap_or_else(|| panic!("{POLICY_FILE} has no statement with Sid {stage:?}"));
    let missing = missing(stage, allowed, runs);
    assert!(
        missing.is_empty(),
        "{POLICY_FILE}: the IAM statement {stage:?} lacks {} action(s) the stage \
         calls:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn a_missing_action_is_named_with_the_scenarios_that_call_it() {
    let allowed = BTreeSet::from(["autoscaling:DescribeAutoScalingGroups".to_owned()]);
    let calls = |ops: &[&str]| ops.iter().map(|o| format!("{o} us-east-1")).collect();
    let runs: Runs = vec![
        ("a", calls(&["DescribeAutoScalingGroups", "DescribeImages"])),
        ("b", calls(&["DescribeImages", "PutItem"])),
    ];
    assert_eq!(
        missing("Deploy", &allowed, &runs),
        [
            "dynamodb:GetItem (called by: b)",
            "dynamodb:PutItem (called by: b)",
            "ec2:DescribeImages (called by: a; b)",
        ]
    );
    // An action IAM implies: a launch with tags needs ec2:CreateTags.
    let runs: Runs = vec![("t", calls(&["RunInstances"]))];
    assert_eq!(
        missing(
            "Test",
            &BTreeSet::from(["ec2:RunInstances".to_owned()]),
            &runs
        ),
        ["ec2:CreateTags (called by: t)"]
    );
}

#[test]
#[should_panic(expected = "called `DescribeFleetWidgets`, an operation this test does not know")]
fn an_operation_the_table_does_not_know_fails_naming_it() {
    actions("Deploy", &["DescribeFleetWidgets us-east-1".to_owned()]);
}

#[test]
fn every_stage_has_a_statement_in_the_policy_file() {
    let policy = policy();
    for sid in [
        "Bake",
        "Test",
        "Deploy",
        "Reap",
        "Amis",
        "AmisInEnvironments",
        "Status",
    ] {
        assert!(policy.contains_key(sid), "no statement {sid}: {policy:?}");
    }
}

fn ctx() -> RunContext {
    RunContext::from_vars(Vec::<(String, String)>::new())
}

fn image(id: &str, tags: &[(&str, &str)]) -> Image {
    Image {
        id: id.into(),
        name: id.into(),
        state: "available".into(),
        owner: String::new(),
        public: false,
        creation_date: "2026-11-24T00:00:00.000Z".into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A local HTTP server answering 200 to anything, and its port.
async fn http_ok() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

/// The fake logged a call of `op`: a scenario does what it is there for.
fn called(cloud: &FakeCloud, op: &str) -> bool {
    let prefix = format!("{op} ");
    cloud.calls().iter().any(|c| c.starts_with(&prefix))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const COMPONENT: &str =
    "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0b0b0b0b0b0b0b0b0}\n";
