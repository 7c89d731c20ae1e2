//! `gears pipeline run` end to end: real packer and moto for bake, moto and httpbin for test,
//! a moto group for deploy.

use crate::common::{closed_port, gears, httpbin, parts, tempdir, unique};
use crate::deploy::{fleet, MOTO_AMI};
use std::path::Path;

/// A one-region component (no playbook: fast bakes) and its pipeline file.
fn files(dir: &Path, name: &str, smoke_uri: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("svc")).unwrap();
    std::fs::write(
        dir.join("svc/gears.yaml"),
        format!("component: {name}\nrepo: r\nami_regions: [us-east-1]\nbuilders: [{{type: amazon-ebs, name: web}}]\nbase_ami: {{id: {MOTO_AMI}}}\ncommunicator: none\ntest:\n  smoke_file: smoke.yaml\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("svc/smoke.yaml"),
        format!("tests:\n  - name: up\n    uri: {smoke_uri}\n"),
    )
    .unwrap();
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        "component: svc/gears.yaml\nbake: {}\ntest: {ready_timeout: 5}\ndeploy:\n  - {environment: live, batch: 50%, poll: 0.2, gate_timeout: 30}\n",
    )
    .unwrap();
    p
}

fn run(dir: &Path, p: &Path, target: &str, extra: &[&str]) -> (String, String, i32) {
    parts(
        &gears()
            .current_dir(dir)
            .args(["pipeline", "run", p.to_str().unwrap()])
            .args([
                "--version",
                "1.0",
                "--git-sha",
                "abc",
                "--target-host",
                target,
            ])
            .args(["--output", "json"])
            .args(extra)
            .output()
            .unwrap(),
    )
}

#[tokio::test]
async fn the_whole_job_then_a_failing_smoke_test_stops_before_deploy() {
    let dir = tempdir();
    let name = unique("pipe");
    let p = files(dir.path(), &name, "/get");
    let (group, _, _) = fleet(&name, "us-east-1", 4).await;
    let (out, err, code) = run(dir.path(), &p, &httpbin(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stages: Vec<(&str, &str)> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("bake", "passed"),
            ("test", "passed"),
            ("deploy:live", "passed")
        ]
    );
    let m = gears::manifest::read(&dir.path().join("gears-manifest.json")).unwrap();
    let ami = m.ami(None, "us-east-1").unwrap().to_owned();
    assert!(v["stages"][2]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("us-east-1/{group} deployed")));

    // --from deploy:live continues from the manifest on disk (nothing is baked again).
    let (out, err, code) = run(dir.path(), &p, &httpbin(), &["--from", "deploy:live"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stages"][0]["result"], "skipped");
    assert_eq!(v["stages"][2]["result"], "passed");
    assert_eq!(
        gears::manifest::read(&dir.path().join("gears-manifest.json"))
            .unwrap()
            .ami(None, "us-east-1"),
        Some(ami.as_str())
    );

    // A failing smoke test: exit 1, deploy skipped, no test instance left running.
    let p = files(dir.path(), &name, "/status/500");
    let (out, err, code) = run(dir.path(), &p, &httpbin(), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stages"][1]["result"], "failed");
    assert_eq!(v["stages"][2]["result"], "skipped");
    assert!(err.contains("terminated"), "{err}");
}

#[test]
fn bad_pipeline_files_and_stage_names_are_refused() {
    let dir = tempdir();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, "component: c.yaml\ntest: {readytimeout: 5}\n").unwrap();
    let (_, err, code) = parts(
        &gears()
            .args(["pipeline", "run", p.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("p.yaml:2:8"), "{err}");
    assert!(err.contains("did you mean `ready_timeout`?"), "{err}");
    std::fs::write(&p, "component: c.yaml\ntest: {}\n").unwrap();
    let (_, err, code) = run(
        dir.path(),
        &p,
        &format!("127.0.0.1:{}", closed_port()),
        &["--only", "deploy:live"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no stage `deploy:live`"), "{err}");
    assert!(err.contains("its stages: test"), "{err}");
}
