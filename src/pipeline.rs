//! `gears pipeline run FILE`: bake → test → deploy (to each environment in order) from a
//! pipeline file, the manifest handed between the stages as data (and written to disk, so
//! `--from` can resume a pipeline), stopping at the first failing stage with its exit code.

pub mod keys;

use crate::aws::Cloud;
use crate::cancel::{Cancel, Cleanup};
use crate::context::RunContext;
use crate::error::{yaml_error, Error, InputError};
use crate::exit::Exit;
use crate::settings::{AmiChoice, BakeSettings, OutputFormat, TestSettings};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    pub ready_timeout: Option<f64>,
    pub junit: Option<PathBuf>,
}

/// One `deploy:` entry: an environment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployStage {
    pub environment: String,
    pub country: Option<String>,
    pub builder: Option<String>,
    /// `N` or `P%` (default 25%).
    pub batch: Option<String>,
    /// `rolling` (default) or `instance-refresh`.
    pub strategy: Option<String>,
    /// A DynamoDB table for the deploy locks.
    pub lock_table: Option<String>,
    /// Groups of one region rolled at once (default 1).
    pub parallel: Option<u16>,
    /// `P%` of desired capacity kept healthy (default 100%).
    pub min_healthy: Option<String>,
    /// Seconds (default 600).
    pub gate_timeout: Option<f64>,
    /// Seconds between polls (default 5).
    pub poll: Option<f64>,
    /// Where the health gate's smoke tests go instead of each new instance.
    pub smoke_target: Option<String>,
    /// CloudWatch alarms that gate the deploy.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Seconds a healthy batch keeps being gated before gears acts on it.
    pub bake_time: Option<f64>,
}

impl DeployStage {
    /// This entry's deploy settings, through the one resolver `gears deploy` uses too (its
    /// values were checked at their place in the file by [`load`]; a value wrong here still
    /// names the entry and the key).
    fn settings(
        &self,
        p: &Pipeline,
        endpoint_flag: Option<String>,
        ctx: &RunContext,
    ) -> Result<crate::deploy::DeploySettings, Error> {
        let env = &self.environment;
        let refused = |key: &str, e: String| {
            Error::from(InputError::whole_file(
                p.path.display().to_string(),
                format!("deploy {env}: {key} {e}"),
            ))
        };
        let ami = AmiChoice::Manifest {
            path: p.manifest.clone(),
            builder: self.builder.clone(),
            region: None,
        };
        let seconds = |key, v: Option<f64>| {
            v.map(crate::deploy::settings::seconds)
                .transpose()
                .map_err(|e| refused(key, e))
        };
        let ask = crate::deploy::DeployAsk {
            country: self.country.clone(),
            batch: self
                .batch
                .as_deref()
                .map(crate::deploy::Batch::parse)
                .transpose()
                .map_err(|e| refused("batch", e))?,
            strategy: self
                .strategy
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| refused("strategy", e))?,
            gate_timeout: seconds("gate_timeout", self.gate_timeout)?,
            poll: seconds("poll", self.poll)?,
            smoke_target: self
                .smoke_target
                .as_deref()
                .map(|h| {
                    crate::smoke::target::Target::parse(h)
                        .map_err(|e| refused("smoke_target", format!("{h}: {e}")))
                })
                .transpose()?,
            lock_table: self.lock_table.clone(),
            alarms: self.alarms.clone(),
            bake_time: seconds("bake_time", self.bake_time)?,
            parallel: self.parallel,
            min_healthy: self
                .min_healthy
                .as_deref()
                .map(crate::deploy::parse_percent)
                .transpose()
                .map_err(|e| refused("min_healthy", e))?,
            endpoint_flag,
            ..crate::deploy::DeployAsk::new(p.component.clone(), ami, env)
        };
        crate::deploy::DeploySettings::resolve(ask, ctx).map_err(|r| refused(r.knob, r.why))
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
            v.push(format!("deploy:{}", d.environment));
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
    let file: PipelineFile =
        serde_yaml::from_str(&text).map_err(|e| yaml_error(&name, &text, e))?;
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
    check_values(&p, &name, &text)?;
    check_environments(&p, &name, &text)?;
    Ok(p)
}

/// Durations, batches, shares and strategies checked at their place in the file (a wrong one
/// names its line), not replaced by defaults; then the environments.
fn check_values(p: &Pipeline, name: &str, text: &str) -> Result<(), Error> {
    let at = |key: &str, value: &str, why: &str| {
        let line = text
            .lines()
            .position(|l| l.contains(key) && l.contains(value))
            .map(|i| i + 1)
            .unwrap_or(0);
        let col = text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.find(key))
            .map(|c| c + 1)
            .unwrap_or(0);
        Error::from(InputError::at(
            name,
            text,
            line,
            col,
            format!("`{key}: {value}`: {why}"),
        ))
    };
    let seconds_ok = |v: f64| v.is_finite() && v > 0.0 && v <= 604_800.0;
    if let Some(t) = p.file.test.as_ref().and_then(|t| t.ready_timeout) {
        if !seconds_ok(t) {
            return Err(at(
                "ready_timeout",
                &t.to_string(),
                "give seconds, more than 0 and at most a week",
            ));
        }
    }
    for d in &p.file.deploy {
        for (key, v) in [
            ("gate_timeout", d.gate_timeout),
            ("poll", d.poll),
            ("bake_time", d.bake_time),
        ] {
            if let Some(Err(why)) = v.map(crate::deploy::settings::seconds) {
                return Err(at(key, &v.unwrap_or_default().to_string(), &why));
            }
        }
        if let Some(Err(why)) = d.batch.as_deref().map(crate::deploy::Batch::parse) {
            return Err(at("batch", d.batch.as_deref().unwrap_or_default(), &why));
        }
        if let Some(Err(why)) = d
            .strategy
            .as_deref()
            .map(str::parse::<crate::deploy::Strategy>)
        {
            return Err(at(
                "strategy",
                d.strategy.as_deref().unwrap_or_default(),
                &why,
            ));
        }
        if let Some(Err(why)) = d.min_healthy.as_deref().map(crate::deploy::parse_percent) {
            return Err(at(
                "min_healthy",
                d.min_healthy.as_deref().unwrap_or_default(),
                &why,
            ));
        }
    }
    Ok(())
}

/// No environment deployed twice.
fn check_environments(p: &Pipeline, name: &str, text: &str) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for d in &p.file.deploy {
        if !seen.insert(&d.environment) {
            let line = text
                .lines()
                .position(|l| l.contains("environment") && l.contains(d.environment.as_str()))
                .map(|i| i + 1)
                .unwrap_or(0);
            return Err(InputError::at(
                name,
                text,
                line,
                1,
                format!("environment `{}` is deployed twice", d.environment),
            )
            .into());
        }
    }
    Ok(())
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

fn secs(v: Option<f64>, default: u64) -> Duration {
    v.filter(|s| s.is_finite() && *s > 0.0 && *s <= 604_800.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(default))
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
        eprintln!("== pipeline: {stage} ==");
        let t0 = Instant::now();
        let outcome = match stage.strip_prefix("deploy:") {
            None if stage == "bake" => on.bake().await,
            None => on.test().await,
            Some(env) => on.deploy(env).await,
        };
        let seconds = t0.elapsed().as_secs_f64();
        let (e, detail) = match outcome {
            Ok(x) => x,
            Err(Error::Interrupted(sig)) => return Err(Error::Interrupted(sig)),
            Err(err) => {
                eprint!("{}", err.render());
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
    /// `bake`: the manifest written where the later stages read it.
    async fn bake(&self) -> Result<(Exit, String), Error> {
        let b = self.p.file.bake.clone().unwrap_or_default();
        let args = crate::cli::ComponentArgs {
            component: self.p.component.clone(),
            version: self.opts.version.clone(),
            git_sha: self.opts.git_sha.clone(),
            endpoint_url: self.opts.endpoint_url.clone(),
            packer: self.opts.packer.clone(),
            work_dir: self.opts.work_dir.clone(),
        };
        let mut s = BakeSettings::resolve(&args, self.ctx)?;
        s.manifest = self.p.manifest.clone();
        s.force = b.force;
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
        let s = TestSettings {
            component_file: self.p.component.clone(),
            ami: AmiChoice::Manifest {
                path: self.p.manifest.clone(),
                builder: t.builder.clone(),
                region: t.region.clone(),
            },
            target_host: match &t.target_host {
                Some(h) => Some(crate::smoke::target::Target::parse(h).map_err(|e| {
                    Error::from(InputError::whole_file(
                        self.p.path.display().to_string(),
                        format!("test.target_host {h}: {e}"),
                    ))
                })?),
                None => None,
            },
            ready_timeout: secs(t.ready_timeout, 600),
            ttl: Duration::from_secs(3600),
            keep_on_failure: false,
            junit: t.junit.clone(),
            output: OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
            jobs: 8,
            endpoint_flag: self.opts.endpoint_url.clone(),
            work_dir: self.opts.work_dir.clone(),
        };
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
            .find(|d| d.environment == env)
            .cloned()
            .ok_or_else(|| Error::usage(format!("no deploy to {env}"), None))?;
        let s = d.settings(self.p, self.opts.endpoint_url.clone(), self.ctx)?;
        let ui = crate::ui::Staged::new(self.ctx, "deploy", &s.ami.asked_regions());
        let deployed =
            match crate::deploy::deploy(&s, self.ctx, self.cancel, self.cleanup, self.cloud, &ui)
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
        assert!(e.render().contains("`bake_time: -5`"), "{}", e.render());
        assert!(e.render().contains(":3:"), "{}", e.render());
        let e = parse("component: c\ndeploy:\n  - {environment: live, poll: 0}\n").unwrap_err();
        assert!(e.render().contains("p.yaml:3:"), "{}", e.render());
        assert!(e.render().contains("`poll: 0`"), "{}", e.render());
        let e = parse("component: c\ndeploy:\n  - {environment: live, batch: 0%}\n").unwrap_err();
        assert!(e.render().contains("`batch: 0%`"), "{}", e.render());
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
            e.render().contains("environment `live` is deployed twice"),
            "{}",
            e.render()
        );
        assert_eq!(e.exit(), Exit::InvalidInput);
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
                creation_date: "2026-11-24T00:00:00.000Z".into(),
                tags: std::collections::BTreeMap::new(),
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
