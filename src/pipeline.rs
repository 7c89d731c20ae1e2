//! `gears pipeline run FILE`: bake → test → deploy (to each environment in order) from a
//! pipeline file, the manifest handed between the stages as data (and written to disk, so
//! `--from` can resume a pipeline), stopping at the first failing stage with its exit code.

pub mod keys;

use crate::aws::Cloud;
use crate::bake::settings::{BakeAsk, BakeSettings};
use crate::cancel::{Cancel, Cleanup};
use crate::context::RunContext;
use crate::deploy::{DeployAsk, DeploySettings, Strategy};
use crate::error::{yaml_error, Error, InputError};
use crate::exit::Exit;
use crate::settings::AmiChoice;
use crate::test_stage::settings::{TestAsk, TestSettings};
use crate::units::{Batch, Delay, Percent, Seconds};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The `bake:` stage of a pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BakeStage {
    /// Bake even if an AMI of this version and revision exists.
    #[serde(default)]
    pub force: bool,
}

/// The `test:` stage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestStage {
    pub builder: Option<String>,
    pub region: Option<String>,
    /// Where the smoke tests go instead of the instance (tunnels, emulators).
    pub target_host: Option<String>,
    /// Seconds (default 600).
    pub ready_timeout: Option<Delay>,
    pub junit: Option<PathBuf>,
}

/// One `deploy:` entry: an environment. Each value is parsed by its unit's one parser as the
/// file is read, so a wrong one is refused at its own line and column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployStage {
    pub environment: Environment,
    pub country: Option<String>,
    pub builder: Option<String>,
    /// `N` or `P%` (default 25%).
    pub batch: Option<Batch>,
    /// `rolling` (default), `instance-refresh` or `blue-green`.
    pub strategy: Option<Strategy>,
    /// A DynamoDB table for the deploy locks.
    pub lock_table: Option<String>,
    /// Groups of one region rolled at once (default 1).
    pub parallel: Option<u16>,
    /// `P%` of desired capacity kept healthy (default 100%).
    pub min_healthy: Option<Percent>,
    /// Seconds (default 600).
    pub gate_timeout: Option<Seconds>,
    /// Seconds between polls (default 5).
    pub poll: Option<Seconds>,
    /// Where the health gate's smoke tests go instead of each new instance.
    pub smoke_target: Option<String>,
    /// CloudWatch alarms that gate the deploy.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Seconds a healthy batch keeps being gated before gears acts on it.
    pub bake_time: Option<Seconds>,
}

thread_local! {
    /// The environments of the pipeline file being read, so a second entry of one is refused
    /// at its own place as it is read.
    static ENVIRONMENTS_SEEN: RefCell<Option<BTreeSet<String>>> = const { RefCell::new(None) };
}

/// A `deploy:` entry's environment: not blank, and not deployed twice in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(pub String);

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::parsed(d, |name| {
            if name.trim().is_empty() {
                return Err(
                    "empty; name the environment the groups are tagged with (gears:environment)"
                        .to_owned(),
                );
            }
            let twice = ENVIRONMENTS_SEEN.with(|seen| {
                seen.borrow_mut()
                    .as_mut()
                    .is_some_and(|set| !set.insert(name.to_owned()))
            });
            if twice {
                return Err("this environment is deployed twice".to_owned());
            }
            Ok(Environment(name.to_owned()))
        })
    }
}

impl std::ops::Deref for Environment {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl DeployStage {
    /// This entry as the ask `gears deploy`'s flags make too.
    fn ask(&self, p: &Pipeline, endpoint_flag: Option<String>) -> DeployAsk {
        let ami = AmiChoice::Manifest {
            path: p.manifest.clone(),
            builder: self.builder.clone(),
            region: None,
        };
        DeployAsk {
            country: self.country.clone(),
            batch: self.batch,
            strategy: self.strategy,
            gate_timeout: self.gate_timeout,
            poll: self.poll,
            smoke_target: self.smoke_target.clone(),
            lock_table: self.lock_table.clone(),
            alarms: self.alarms.clone(),
            bake_time: self.bake_time,
            parallel: self.parallel,
            min_healthy: self.min_healthy,
            endpoint_flag,
            ..DeployAsk::new(p.component.clone(), ami, &self.environment)
        }
    }
}

/// A pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// The component file, relative to the pipeline file.
    pub component: PathBuf,
    /// Where the manifest is kept between stages, relative to the pipeline file (default
    /// `gears-manifest.json` beside it).
    pub manifest: Option<PathBuf>,
    pub bake: Option<BakeStage>,
    pub test: Option<TestStage>,
    #[serde(default)]
    pub deploy: Vec<DeployStage>,
}

/// A pipeline, its paths resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub path: PathBuf,
    pub file: PipelineFile,
    pub component: PathBuf,
    pub manifest: PathBuf,
}

impl Pipeline {
    /// The stages in order: `bake`, `test`, `deploy:<env>`...
    pub fn stages(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.file.bake.is_some() {
            v.push("bake".to_owned());
        }
        if self.file.test.is_some() {
            v.push("test".to_owned());
        }
        for d in &self.file.deploy {
            v.push(format!("deploy:{}", &*d.environment));
        }
        v
    }
}

/// Reads a pipeline file: unknown keys, bad types and missing stages are exit 3 at
/// `file:line:col`.
pub fn load(path: &Path) -> Result<Pipeline, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: name.clone(),
        source: e,
    })?;
    ENVIRONMENTS_SEEN.with(|seen| *seen.borrow_mut() = Some(BTreeSet::new()));
    let parsed = serde_yaml::from_str::<PipelineFile>(&text);
    ENVIRONMENTS_SEEN.with(|seen| *seen.borrow_mut() = None);
    let file = parsed.map_err(|e| yaml_error(&name, &text, e))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let p = Pipeline {
        component: dir.join(&file.component),
        manifest: dir.join(
            file.manifest
                .clone()
                .unwrap_or_else(|| PathBuf::from("gears-manifest.json")),
        ),
        path: path.to_path_buf(),
        file,
    };
    if p.stages().is_empty() {
        return Err(InputError::whole_file(name, "the pipeline has no stage")
            .with_hint("give `bake:`, `test:` and/or `deploy:`")
            .into());
    }
    Ok(p)
}

/// What one stage did.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: String,
    /// `passed`, `failed`, `skipped`.
    pub result: String,
    pub exit: i32,
    pub seconds: f64,
    pub detail: String,
}

/// What the pipeline did.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub stages: Vec<StageSummary>,
    #[serde(skip)]
    pub exit: Exit,
}

/// Which stages run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Start here (the earlier stages are skipped; the manifest on disk is used).
    pub from: Option<String>,
    /// Run only this one.
    pub only: Option<String>,
}

impl Selection {
    /// The index of the first stage to run: `--from` or `--only` (each must name a stage).
    fn start(&self, p: &Pipeline, stages: &[String]) -> Result<usize, Error> {
        for s in [&self.from, &self.only].into_iter().flatten() {
            if !stages.contains(s) {
                return Err(Error::usage(
                    format!("no stage `{s}` in {}", p.path.display()),
                    Some(format!("its stages: {}", stages.join(", "))),
                ));
            }
        }
        Ok(self
            .from
            .as_ref()
            .or(self.only.as_ref())
            .and_then(|s| stages.iter().position(|x| x == s))
            .unwrap_or(0))
    }
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub version: Option<String>,
    pub git_sha: Option<String>,
    pub endpoint_url: Option<String>,
    pub work_dir: PathBuf,
    pub packer: PathBuf,
}

/// Runs the pipeline's stages in order, stopping at the first that fails.
pub async fn run<C: Cloud>(
    p: &Pipeline,
    sel: &Selection,
    opts: &RunOptions,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
    cloud: &C,
) -> Result<Ran, Error> {
    let stages = p.stages();
    let start_at = sel.start(p, &stages)?;
    let on = Stages {
        p,
        opts,
        ctx,
        cancel,
        cleanup,
        cloud,
    };
    let mut summary = Vec::new();
    let mut exit = Exit::Success;
    for (i, stage) in stages.iter().enumerate() {
        let skip = i < start_at || (sel.only.is_some() && sel.only.as_ref() != Some(stage));
        if skip || exit != Exit::Success {
            summary.push(StageSummary {
                stage: stage.clone(),
                result: "skipped".into(),
                exit: 0,
                seconds: 0.0,
                detail: if exit != Exit::Success {
                    "an earlier stage failed".into()
                } else {
                    "not selected".into()
                },
            });
            continue;
        }
        let section = crate::ci::Section::open(ctx, stage, &format!("gears pipeline: {stage}"));
        eprintln!("== pipeline: {stage} ==");
        let t0 = Instant::now();
        let outcome = match stage.strip_prefix("deploy:") {
            None if stage == "bake" => on.bake().await,
            None => on.test().await,
            Some(env) => on.deploy(env).await,
        };
        // The error that ends a stage is said after its section, in sight.
        drop(section);
        let seconds = t0.elapsed().as_secs_f64();
        let (e, detail) = match outcome {
            Ok(x) => x,
            Err(Error::Interrupted(sig)) => return Err(Error::Interrupted(sig)),
            Err(err) => {
                eprint!("{}", err.render());
                if crate::ci::github(ctx) {
                    for a in crate::ci::annotations(&err) {
                        eprintln!("{a}");
                    }
                }
                (err.exit(), err.to_string())
            }
        };
        summary.push(StageSummary {
            stage: stage.clone(),
            result: if e == Exit::Success {
                "passed"
            } else {
                "failed"
            }
            .into(),
            exit: i32::from(e.code()),
            seconds,
            detail,
        });
        exit = e;
    }
    Ok(Ran {
        stages: summary,
        exit,
    })
}

/// What every stage of one pipeline run is given.
struct Stages<'a, C: Cloud> {
    p: &'a Pipeline,
    opts: &'a RunOptions,
    ctx: &'a RunContext,
    cancel: &'a Cancel,
    cleanup: &'a Cleanup,
    cloud: &'a C,
}

impl<C: Cloud> Stages<'_, C> {
    /// A value of an entry refused when its stage is resolved (a smoke target that is no
    /// host, a poll not shorter than the gate timeout): the pipeline file and the entry named,
    /// exit 3 like every other error in the file.
    fn entry_error(&self, entry: &str, e: Error) -> Error {
        match e {
            Error::Usage { message, .. } => Error::from(InputError::whole_file(
                self.p.path.display().to_string(),
                format!("{entry}: {message}"),
            )),
            other => other,
        }
    }

    /// `bake`: the manifest written where the later stages read it.
    async fn bake(&self) -> Result<(Exit, String), Error> {
        let b = self.p.file.bake.clone().unwrap_or_default();
        let ask = BakeAsk {
            version: self.opts.version.clone(),
            git_sha: self.opts.git_sha.clone(),
            endpoint_url: self.opts.endpoint_url.clone(),
            packer: Some(self.opts.packer.clone()),
            work_dir: Some(self.opts.work_dir.clone()),
            manifest: Some(self.p.manifest.clone()),
            force: b.force,
            ..BakeAsk::new(self.p.component.clone())
        };
        let s = BakeSettings::resolve(ask, self.ctx)?;
        let baked =
            crate::bake::run::bake(&s, self.ctx, self.cancel, self.cleanup, self.cloud).await?;
        let crate::bake::run::Baked::Manifest(m) = baked else {
            return Ok((Exit::Success, String::new()));
        };
        m.write(&self.p.manifest)?;
        let amis: Vec<String> = m
            .amis
            .iter()
            .flat_map(|(b, r)| r.iter().map(move |(r, a)| format!("{b}/{r} {a}")))
            .collect();
        let detail = format!(
            "{} {}{}: {}",
            m.component,
            m.version,
            if m.reused { " (reused)" } else { "" },
            amis.join(", ")
        );
        Ok((Exit::Success, detail))
    }

    /// `test`: the smoke tests' blocks on stderr, a count in the summary.
    async fn test(&self) -> Result<(Exit, String), Error> {
        let t = self.p.file.test.clone().unwrap_or_default();
        let ami = AmiChoice::Manifest {
            path: self.p.manifest.clone(),
            builder: t.builder.clone(),
            region: t.region.clone(),
        };
        let ask = TestAsk {
            target_host: t.target_host.clone(),
            ready_timeout: t.ready_timeout,
            junit: t.junit.clone(),
            endpoint_url: self.opts.endpoint_url.clone(),
            work_dir: Some(self.opts.work_dir.clone()),
            ..TestAsk::new(self.p.component.clone(), ami)
        };
        let s = TestSettings::resolve(ask, self.ctx).map_err(|e| self.entry_error("test", e))?;
        let tested =
            crate::test_stage::test(&s, self.ctx, self.cancel, self.cleanup, self.cloud).await?;
        for r in &tested.results {
            eprint!("{}", crate::smoke::report::console::test_block(r, false));
        }
        let passed = tested.results.iter().filter(|r| r.passed()).count();
        let detail = format!(
            "{} in {} from {}: {passed} of {} smoke tests passed{}",
            tested.instance_id,
            tested.region,
            tested.ami,
            tested.results.len(),
            tested
                .failure
                .as_ref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
        let e = if tested.passed {
            Exit::Success
        } else {
            Exit::SmokeFailed
        };
        Ok((e, detail))
    }

    /// `deploy:<env>`: through the settings `gears deploy` resolves too; what the groups did
    /// is not lost when the deploy fails.
    async fn deploy(&self, env: &str) -> Result<(Exit, String), Error> {
        let d = self
            .p
            .file
            .deploy
            .iter()
            .find(|d| &*d.environment == env)
            .cloned()
            .ok_or_else(|| Error::usage(format!("no deploy to {env}"), None))?;
        let component = crate::component::load(&self.p.component)?;
        let ask = d.ask(self.p, self.opts.endpoint_url.clone());
        let s = DeploySettings::resolve(ask, self.ctx, Some(&component)).map_err(|r| {
            self.entry_error(
                &format!("deploy {env}"),
                Error::usage(format!("{} {}", r.knob, r.why), None),
            )
        })?;
        let ui = crate::ui::Staged::new(self.ctx, "deploy", &s.ami.asked_regions());
        // The environment's account (its role in `accounts:`), or the pipeline's own.
        let account = s
            .account
            .is_some()
            .then(|| self.cloud.in_account(s.account.clone()));
        let cloud = account.as_ref().unwrap_or(self.cloud);
        let deployed = match crate::deploy::deploy(
            &s,
            self.ctx,
            self.cancel,
            self.cleanup,
            cloud,
            &ui,
        )
        .await
        {
            Ok(d) => d,
            Err(f) => {
                // What the groups did is not lost.
                for o in &f.groups {
                    crate::ui::Reporter::note(
                        &ui,
                        &format!("{}: {}: {} ({})\n", o.region, o.group, o.result, o.detail),
                    );
                }
                return Err(f.error);
            }
        };
        let detail = deployed
            .groups
            .iter()
            .map(|g| {
                if g.result == "deployed" {
                    format!("{}/{} {}", g.region, g.group, g.result)
                } else {
                    format!("{}/{} {}: {}", g.region, g.group, g.result, g.detail)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok((deployed.exit(), detail))
    }
}

/// A pipeline run's stages as a Markdown table, for the step summary.
pub fn summary_markdown(ran: &Ran) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut md = String::from(
        "### gears pipeline\n\n| stage | result | exit | time | detail |\n|---|---|---|---|---|\n",
    );
    for s in &ran.stages {
        let skipped = s.result == "skipped";
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&s.stage),
            cell(&s.result),
            if skipped {
                "-".into()
            } else {
                s.exit.to_string()
            },
            if skipped {
                "-".into()
            } else {
                format!("{:.1}s", s.seconds)
            },
            cell(&s.detail)
        ));
    }
    md.push('\n');
    md
}

/// The summary table for humans.
pub fn summary_text(ran: &Ran) -> String {
    let mut s = String::from("stage            result    exit  time     detail\n");
    for st in &ran.stages {
        s.push_str(&format!(
            "{:<16} {:<9} {:<5} {:<8} {}\n",
            st.stage,
            st.result,
            if st.result == "skipped" {
                "-".into()
            } else {
                st.exit.to_string()
            },
            if st.result == "skipped" {
                "-".into()
            } else {
                format!("{:.1}s", st.seconds)
            },
            st.detail
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, Error> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    #[test]
    fn stages_in_order_and_located_errors() {
        let p = parse("component: c/gears.yaml\nbake: {}\ntest: {builder: web}\ndeploy:\n  - {environment: stage}\n  - {environment: live, batch: 50%}\n").unwrap();
        assert_eq!(p.stages(), ["bake", "test", "deploy:stage", "deploy:live"]);
        assert!(p.component.ends_with("c/gears.yaml"));
        assert!(p.manifest.ends_with("gears-manifest.json"));
        let e = parse("component: c\nbake: {forse: true}\n").unwrap_err();
        let text = e.render();
        assert!(text.contains("p.yaml:2:8"), "{text}");
        assert!(text.contains("did you mean `force`?"), "{text}");
        let e =
            parse("component: c\ndeploy:\n  - {environment: live, bake_time: -5}\n").unwrap_err();
        assert!(e.render().contains("bake_time: `-5`"), "{}", e.render());
        assert!(e.render().contains("p.yaml:3:36"), "{}", e.render());
        let e = parse("component: c\ndeploy:\n  - {environment: live, poll: 0}\n").unwrap_err();
        assert!(e.render().contains("p.yaml:3:31"), "{}", e.render());
        assert!(e.render().contains("poll: `0`"), "{}", e.render());
        let e = parse("component: c\ndeploy:\n  - {environment: live, batch: 0%}\n").unwrap_err();
        assert!(e.render().contains("batch: `0%`"), "{}", e.render());
        let e = parse("component: c\ndeploy:\n  - {environment: live, strategy: red-black}\n")
            .unwrap_err();
        assert!(
            e.render()
                .contains("expected rolling, instance-refresh or blue-green"),
            "{}",
            e.render()
        );
        let e = parse("component: c\n").unwrap_err();
        assert!(e.render().contains("the pipeline has no stage"));
        let e = parse("component: c\ndeploy:\n  - {environment: live}\n  - {environment: live}\n")
            .unwrap_err();
        assert!(
            e.render()
                .contains("`live`: this environment is deployed twice"),
            "{}",
            e.render()
        );
        assert_eq!(e.exit(), Exit::InvalidInput);
    }

    /// A bad value is reported at its own place, not at an earlier good one of the same key.
    #[test]
    fn a_bad_value_is_placed_at_its_own_line_not_an_earlier_good_one() {
        let text = "component: c\ndeploy:\n  - environment: stage\n    poll: 10\n    gate_timeout: 600\n  - environment: live\n    poll: 0\n";
        let e = parse(text).unwrap_err();
        assert!(e.render().contains("p.yaml:7:11"), "{}", e.render());
        assert_eq!(e.exit(), Exit::InvalidInput);
        let e = parse("component: c\ndeploy:\n  - environment: live\n  - environment: stage\n  - environment: live\n").unwrap_err();
        assert!(e.render().contains("p.yaml:5:18"), "{}", e.render());
        // A file read after a refused one starts afresh.
        assert!(parse("component: c\ndeploy:\n  - environment: live\n").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deploy_that_rolls_back_makes_the_pipeline_exit_6() {
        use crate::aws::fake::FakeCloud;
        use crate::aws::{Group, TemplateRef};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gears.yaml"),
            "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
        )
        .unwrap();
        let (old, new) = ("ami-0000000000000001a", "ami-0000000000000002b");
        std::fs::write(
            dir.path().join("gears-manifest.json"),
            format!(r#"{{"format_version":1,"component":"hello","version":"2","git_sha":"a","repo":"r","created_at":"c","ami_version":"v","base_ami":"b","run_id":"x","packer_run_uuid":null,"reused":false,"amis":{{"web":{{"us-east-1":"{new}"}}}}}}"#),
        )
        .unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(
            &p,
            "component: gears.yaml\ndeploy:\n  - {environment: stage, batch: 2, poll: 1, gate_timeout: 60}\n  - {environment: live}\n",
        )
        .unwrap();
        let cloud = FakeCloud::new();
        cloud.add_group(
            Group {
                name: "hello-stage".into(),
                min: 2,
                max: 2,
                desired: 2,
                template: Some(TemplateRef {
                    id: "lt-1".into(),
                    version: "1".into(),
                }),
                launch_configuration: None,
                mixed: false,
                override_templates: vec![],
                members: vec![],
                target_groups: vec!["tg".into()],
                load_balancers: vec![],
                other_traffic: vec![],
                units: None,
                warm_pool: false,
                suspended: vec![],
                tags: std::collections::BTreeMap::from([
                    ("gears:component".to_owned(), "hello".to_owned()),
                    ("gears:environment".to_owned(), "stage".to_owned()),
                ]),
            },
            &[old],
        );
        cloud.set_unhealthy_images(&[new]);
        cloud.add_image(
            "us-east-1",
            crate::aws::Image {
                id: new.into(),
                name: "hello-2".into(),
                state: "available".into(),
                owner: String::new(),
                public: false,
                creation_date: "2026-11-24T00:00:00.000Z".into(),
                tags: std::collections::BTreeMap::new(),
                ..Default::default()
            },
        );
        let pipeline = load(&p).unwrap();
        let ctx = RunContext::from_vars(Vec::<(String, String)>::new());
        let ran = run(
            &pipeline,
            &Selection::default(),
            &RunOptions::default(),
            &ctx,
            &Cancel::new(),
            &Cleanup::default(),
            &cloud,
        )
        .await
        .unwrap();
        assert_eq!(ran.exit, Exit::RolledBack);
        let got: Vec<(&str, &str)> = ran
            .stages
            .iter()
            .map(|s| (s.stage.as_str(), s.result.as_str()))
            .collect();
        assert_eq!(
            got,
            [("deploy:stage", "failed"), ("deploy:live", "skipped")]
        );
        assert_eq!(ran.stages[0].exit, 6);
        assert!(
            ran.stages[0].detail.contains("rolled back"),
            "{}",
            ran.stages[0].detail
        );
    }
}
