//! `gears test`: launch an instance of the new AMI, wait until it runs, smoke-test it, and
//! always terminate it.
//!
//! The instance is tagged in the launch call itself, and a cleanup step that terminates it is
//! registered the moment EC2 answers, so a failure, an AWS error or a signal anywhere after
//! that still ends with the instance terminated (the composition root runs what is left, on
//! cleanup's own token and deadline).

mod prepare;
pub mod settings;

use crate::aws::{Cloud, CloudError, ErrorKind, Instance, Instances, LaunchSpec};
use crate::cancel::{Cancel, Cleanup};
use crate::component::file::TestAddress;
use crate::context::RunContext;
use crate::error::Error;
use crate::smoke::runner::{RunOptions, TestResult};
use crate::smoke::target::Target;
use crate::terminate;
use crate::test_stage::settings::TestSettings;
use crate::wait::{poll, unless_cancelled, Backoff, Check, Poll, Polled};
use prepare::{check_image, check_input, expires_at, launch_spec, Prepared};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How long the launch call is retried while AWS throttles (or fails transiently).
const LAUNCH_DEADLINE: Duration = Duration::from_secs(120);

/// What `gears test` found, for the front to print.
#[derive(Debug, Clone, Serialize)]
pub struct Tested {
    pub component: String,
    pub version: String,
    pub ami: String,
    pub region: String,
    pub instance_id: String,
    /// Where the smoke tests went (`host:port`).
    pub target: String,
    pub smoke_file: String,
    /// All smoke tests passed.
    pub passed: bool,
    /// Why the instance never got to the smoke tests (it died, or never ran in time).
    pub failure: Option<String>,
    /// The smoke results, in file order (empty when the instance never ran).
    pub results: Vec<TestResult>,
    /// The instance was terminated (false when kept with --keep-on-failure).
    pub terminated: bool,
    /// When a kept instance expires (`gears:expires-at`).
    pub expires_at: String,
    /// The console output saved on failure.
    pub console_file: Option<PathBuf>,
    pub timings: Timings,
}

/// Seconds from the start of the stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub launched: f64,
    pub running: f64,
    pub smoke_done: f64,
    pub total: f64,
}

/// The progress worker of the stage: its one test instance.
const WORKER: Option<&str> = Some("instance");

/// Runs `gears test` against `cloud`.
pub async fn test<C: Cloud>(
    settings: &TestSettings,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
    cloud: &C,
) -> Result<Tested, Error> {
    let start = Instant::now();
    // Everything that can be wrong with the input is found before anything is launched.
    let mut input = check_input(settings, cancel).await?;
    input.version = check_image(cloud, &input, cancel).await?;

    let instances = unless_cancelled(cancel, cloud.instances(&input.region)).await??;
    let run_id = crate::random::uuid_v7();
    let expires_at = expires_at(settings.ttl);
    let spec = launch_spec(&input, &run_id, &expires_at);
    if let Some(sig) = cancel.signal() {
        return Err(Error::Interrupted(sig));
    }
    let mut ui = crate::ui::StageProgress::new(ctx, "test", &["instance".to_owned()]);
    let mut stage = Stage {
        settings,
        cancel,
        cleanup,
        instances: &instances,
        ui: &mut ui,
        start,
    };
    match stage.run(&input, &spec, &run_id, expires_at).await {
        Ok(mut tested) => {
            ui.finish(tested.passed);
            tested.timings.total = stage_secs(start);
            Ok(tested)
        }
        Err(e) => {
            ui.finish(false);
            Err(e)
        }
    }
}

/// Seconds from `start` until now.
fn stage_secs(start: Instant) -> f64 {
    Instant::now().duration_since(start).as_secs_f64()
}

/// The address the smoke tests go to: `--target`, else the instance's IP the component asks for.
fn smoke_target(
    settings: &TestSettings,
    component: &crate::component::Component,
    instance: &Instance,
) -> Option<Target> {
    match &settings.target_host {
        Some(t) => Some(t.clone()),
        None => match component.test.address {
            TestAddress::PrivateIp => instance.private_ip.clone(),
            TestAddress::PublicIp => instance.public_ip.clone(),
        }
        .map(|ip| Target {
            host: ip,
            port: component.test.port,
            scheme: None,
        }),
    }
}

/// The directory a failed test's console output is saved in: beside the JUnit report, else in
/// the run's work directory.
fn console_dir(settings: &TestSettings, run_id: &str) -> PathBuf {
    match &settings.junit {
        Some(j) => j
            .parent()
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(".")),
        None => settings.work_dir.join(run_id),
    }
}

/// What a wait for the instance to run ended with: the running instance, why it never ran (a
/// verdict), or an error (a signal, an AWS error).
fn running_or_why(
    polled: Polled<Result<Option<Instance>, CloudError>>,
    id: &str,
    ready_timeout: Duration,
    cancel: &Cancel,
) -> Result<Result<Instance, String>, Error> {
    match polled {
        Polled::Ready(Ok(Some(i)), _) => Ok(Ok(i)),
        Polled::Cancelled(..) => Err(Error::Interrupted(cancel.ended_by())),
        Polled::Failed(Err(e), _) => Err(e.into()),
        Polled::Failed(Ok(Some(i)), _) => Ok(Err(format!(
            "{id} stopped before it ran: state {}",
            i.state
        ))),
        other => {
            let state = match other {
                Polled::TimedOut(Ok(Some(i)), _) => i.state,
                Polled::TimedOut(Err(e), _) => e.to_string(),
                _ => "unknown".into(),
            };
            Ok(Err(format!(
                "{id} was not running after {} (last: {state})",
                crate::text::human_duration(ready_timeout)
            )))
        }
    }
}

/// The stage once the instance port is open: what each step after the launch needs.
struct Stage<'a, I: Instances> {
    settings: &'a TestSettings,
    cancel: &'a Cancel,
    cleanup: &'a Cleanup,
    instances: &'a I,
    ui: &'a mut crate::ui::StageProgress,
    start: Instant,
}

impl<I: Instances + Clone + 'static> Stage<'_, I> {
    /// Launches the instance, waits until it runs, smoke-tests it, shows its console when
    /// something failed, and terminates it (or keeps it with --keep-on-failure).
    async fn run(
        &mut self,
        input: &Prepared,
        spec: &LaunchSpec,
        run_id: &str,
        expires_at: String,
    ) -> Result<Tested, Error> {
        self.ui.line(
            WORKER,
            &format!(
                "launching {} in {} from {}",
                spec.instance_type, input.region, input.ami
            ),
        );
        let (id, step) = self.launch(spec, &input.region).await?;
        let mut tested = Tested {
            component: input.component.name.clone(),
            version: input.version.clone(),
            ami: input.ami.clone(),
            region: input.region.clone(),
            instance_id: id.clone(),
            target: String::new(),
            smoke_file: input.smoke_path.display().to_string(),
            passed: false,
            failure: None,
            results: Vec::new(),
            terminated: false,
            expires_at,
            console_file: None,
            timings: Timings {
                launched: stage_secs(self.start),
                ..Default::default()
            },
        };
        let deadline = self.start + self.settings.ready_timeout;
        let polled = self.poll_running(&id, deadline).await;
        match running_or_why(polled, &id, self.settings.ready_timeout, self.cancel)? {
            Ok(instance) => {
                tested.timings.running = stage_secs(self.start);
                self.smoke(&mut tested, input, &instance, deadline).await?;
            }
            Err(why) => tested.failure = Some(why),
        }
        if !tested.passed {
            self.show_console(&mut tested, run_id).await?;
        }
        self.terminate_or_keep(&mut tested, step).await;
        Ok(tested)
    }

    /// Launches the instance and registers its termination with cleanup the moment EC2 answers.
    async fn launch(
        &mut self,
        spec: &LaunchSpec,
        region: &str,
    ) -> Result<(String, crate::cancel::CleanupId), Error> {
        // The launch call is not raced against a signal: once it is sent, the instance may exist,
        // and only its answer says which one to terminate.
        // Retried while AWS throttles: the client token (the run's id) makes a second attempt
        // return the first one's instance, never a second instance.
        let launched = crate::wait::retry(
            Instant::now() + LAUNCH_DEADLINE,
            self.cancel,
            || self.instances.launch(spec),
            crate::aws::CloudError::is_retryable,
        )
        .await?;
        let id = launched.id.clone();
        let port = self.instances.clone();
        let undo_cancel = self.cancel.for_cleanup();
        let undo_id = id.clone();
        let step = self.cleanup.register(
            format!("terminate test instance {id} in {region}"),
            move || async move {
                let deadline = Instant::now() + terminate::DEADLINE;
                terminate::until_gone(&port, &undo_id, &undo_cancel, deadline).await
            },
        );
        self.ui
            .line(WORKER, &format!("{id} launched; waiting until it runs"));
        Ok((id, step))
    }

    /// Asks EC2 about instance `id` until it runs (with its status checks ok where EC2 reports
    /// them), stops, or `deadline` passes.
    async fn poll_running(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Polled<Result<Option<Instance>, CloudError>> {
        let instances = self.instances;
        poll(
            Poll {
                deadline: Some(deadline),
                backoff: Backoff {
                    first: Duration::from_secs(1),
                    max: Duration::from_secs(5),
                },
                jitter: 0.2,
                successes: 1,
            },
            self.cancel,
            || async {
                let i = instances.describe(id).await?;
                // Running, and EC2's status checks ok where EC2 reports them.
                match &i {
                    Some(x) if x.state == "running" => match instances.status_checks(id).await? {
                        Some(false) => Ok(Some(Instance {
                            state: "running, status checks not passed yet".into(),
                            ..x.clone()
                        })),
                        _ => Ok(i),
                    },
                    _ => Ok(i),
                }
            },
            |r: &Result<Option<Instance>, CloudError>| match r {
                Ok(Some(i)) if i.state == "running" => Check::Pass,
                Ok(Some(i)) if i.is_gone() || i.state == "stopped" => Check::Fail,
                // Just launched: EC2 may not list it yet.
                Ok(_) => Check::Retry,
                Err(e) if e.is_retryable() || e.kind() == ErrorKind::NotFound => Check::Retry,
                Err(_) => Check::Fail,
            },
        )
        .await
    }

    /// Runs the smoke tests against the running instance until they pass or `deadline`, and
    /// records their results (or that the instance has no address to test).
    async fn smoke(
        &mut self,
        tested: &mut Tested,
        input: &Prepared,
        instance: &Instance,
        deadline: Instant,
    ) -> Result<(), Error> {
        let id = &tested.instance_id;
        let Some(target) = smoke_target(self.settings, &input.component, instance) else {
            tested.failure = Some(format!(
                "{id} has no {} to test",
                match input.component.test.address {
                    TestAddress::PrivateIp => "private IP",
                    TestAddress::PublicIp => "public IP",
                }
            ));
            return Ok(());
        };
        tested.target = format!("{}:{}", target.url_host(), target.port.unwrap_or(80));
        self.ui.line(
            WORKER,
            &format!(
                "{id} is running; smoke tests against {} until they pass or {} have passed",
                tested.target,
                crate::text::human_duration(self.settings.ready_timeout)
            ),
        );
        let opts = RunOptions {
            target,
            jobs: self.settings.jobs,
            wait: Some(deadline.saturating_duration_since(Instant::now())),
            cancel: self.cancel.clone(),
        };
        let results = self
            .with_heartbeat(crate::smoke::runner::run(&input.file, &opts, |_| {}))
            .await?;
        let passed = results.iter().filter(|r| r.passed()).count();
        self.ui.line(
            WORKER,
            &format!("smoke: {passed} of {} tests passed", results.len()),
        );
        tested.passed = results.iter().all(TestResult::passed);
        tested.results = results;
        tested.timings.smoke_done = stage_secs(self.start);
        Ok(())
    }

    /// Awaits `fut` with a heartbeat every `settings.heartbeat`, so CI logs never go silent.
    async fn with_heartbeat<T>(
        &mut self,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::pin!(fut);
        let every = self.settings.heartbeat;
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tokio::select! {
                r = &mut fut => return r,
                _ = tick.tick() => self.ui.heartbeat(),
            }
        }
    }

    /// Shows the tail of the instance's console output and saves all of it: what an operator
    /// needs when a service never came up.
    async fn show_console(&mut self, tested: &mut Tested, run_id: &str) -> Result<(), Error> {
        let id = &tested.instance_id;
        let text = match unless_cancelled(self.cancel, self.instances.console_output(id)).await? {
            Ok(text) => text,
            Err(e) => {
                self.ui
                    .note(&format!("console output of {id} unavailable: {e}"));
                return Ok(());
            }
        };
        let dir = console_dir(self.settings, run_id);
        let path = dir.join(format!("console-{id}.txt"));
        let saved = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&path, &text))
            .is_ok();
        let lines: Vec<&str> = text.lines().collect();
        self.ui.note(&format!(
            "console output of {id} (last {} of {} lines{}):",
            lines.len().min(40),
            lines.len(),
            if saved {
                format!(", all in {}", path.display())
            } else {
                String::new()
            }
        ));
        for l in &lines[lines.len().saturating_sub(40)..] {
            self.ui.note(&format!("  | {l}"));
        }
        if saved {
            tested.console_file = Some(path);
        }
        Ok(())
    }

    /// Terminates the instance, or keeps it when it failed and --keep-on-failure asks so. A
    /// termination that fails leaves its cleanup step registered.
    async fn terminate_or_keep(&mut self, tested: &mut Tested, step: crate::cancel::CleanupId) {
        let id = &tested.instance_id;
        if !tested.passed && self.settings.keep_on_failure {
            self.cleanup.done(step);
            self.ui.note(&format!(
                "keeping {id} for debugging (--keep-on-failure): address {}, expires {} ({}; `gears reap` terminates it after that)",
                if tested.target.is_empty() { "unknown" } else { &tested.target },
                tested.expires_at,
                crate::tags::EXPIRES_AT
            ));
            return;
        }
        let term_deadline = Instant::now() + terminate::DEADLINE;
        let cancel = self.cancel.for_cleanup();
        match terminate::until_gone(self.instances, id, &cancel, term_deadline).await {
            Ok(()) => {
                self.cleanup.done(step);
                tested.terminated = true;
                self.ui.line(WORKER, &format!("{id} terminated"));
            }
            // Left registered: cleanup tries once more, then says a human must look (exit 7).
            Err(why) => self.ui.note(&format!("could not terminate {id}: {why}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Image;
    use crate::exit::Exit;
    use crate::settings::AmiChoice;
    use crate::testing::{component_file, ctx, FakeCloud, Faults};
    use std::collections::BTreeMap;

    const AMI: &str = crate::testing::BASE_AMI;

    /// A component with a `test:` section and a one-test smoke file, in `dir`.
    fn settings(dir: &std::path::Path, target: Option<&str>) -> TestSettings {
        let component = component_file(
            dir,
            "test:\n  smoke_file: smoke.yaml\n  port: 8080\n  user_data: \"#!/bin/sh\\necho hi\"\n",
        );
        std::fs::write(dir.join("smoke.yaml"), "tests:\n  - name: up\n    uri: /\n").unwrap();
        TestSettings {
            account: None,
            component_file: component,
            ami: AmiChoice::Explicit {
                ami: AMI.into(),
                region: "us-east-1".into(),
            },
            target_host: target.map(|t| Target::parse(t).unwrap()),
            ready_timeout: Duration::from_secs(300),
            ttl: Duration::from_secs(3600),
            keep_on_failure: false,
            junit: None,
            output: crate::settings::OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
            jobs: 4,
            endpoint_flag: None,
            work_dir: dir.join(".gears"),
            version: None,
        }
    }

    fn cloud_with_ami(state: &str) -> FakeCloud {
        let cloud = FakeCloud::new();
        cloud.add_image(
            "us-east-1",
            Image {
                id: AMI.into(),
                name: "hello-1".into(),
                state: state.into(),
                owner: String::new(),
                public: false,
                creation_date: String::new(),
                tags: BTreeMap::from([("COMPONENT_VERSION".to_owned(), "1.0".to_owned())]),
                ..Default::default()
            },
        );
        cloud
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_that_never_runs_fails_the_test_and_is_terminated_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), Some("127.0.0.1:9"));
        let cloud = cloud_with_ami("available");
        cloud.set_faults(Faults {
            boot: Duration::from_secs(3600),
            ..Default::default()
        });
        cloud.set_console_output("boot: kernel panic\n");
        let cleanup = Cleanup::default();
        let t = test(&s, &ctx(), &Cancel::new(), &cleanup, &cloud)
            .await
            .unwrap();
        assert!(!t.passed);
        assert!(
            t.failure
                .as_deref()
                .unwrap()
                .contains("was not running after 5m"),
            "{t:?}"
        );
        assert!(t.terminated);
        assert_eq!(cleanup.pending(), 0);
        let console = std::fs::read_to_string(t.console_file.unwrap()).unwrap();
        assert_eq!(console, "boot: kernel panic\n");
        let launched = cloud.launched();
        assert_eq!(launched.len(), 1);
        let (instance, spec) = &launched[0];
        assert_eq!(instance.state, "shutting-down");
        assert_eq!(spec.image_id, AMI);
        assert_eq!(spec.user_data.as_deref(), Some("#!/bin/sh\necho hi"));
        for (k, v) in [
            ("gears:component", "hello"),
            ("gears:version", "1.0"),
            ("gears:purpose", "test"),
            ("Name", "gears-test hello 1.0"),
        ] {
            assert_eq!(spec.tags[k], v, "{k}");
        }
        assert_eq!(spec.tags["gears:run-id"].len(), 36);
        assert!(spec.tags["gears:expires-at"].ends_with('Z'));
    }

    #[tokio::test(start_paused = true)]
    async fn status_checks_are_waited_for_where_ec2_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), Some("127.0.0.1:9"));
        s.ready_timeout = Duration::from_secs(40);
        let cloud = cloud_with_ami("available");
        cloud.set_faults(Faults {
            boot: Duration::from_secs(5),
            checks: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let t = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let why = t.failure.unwrap();
        assert!(
            why.contains("not running after 40.0s (last: running, status checks not passed yet)"),
            "{why}"
        );
        assert!(t.results.is_empty(), "no smoke test before the checks pass");
        assert!(t.terminated);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_or_pending_ami_is_refused_before_anything_launches() {
        for (cloud, want) in [
            (FakeCloud::new(), "does not exist in us-east-1"),
            (cloud_with_ami("pending"), "is pending, not available"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let s = settings(dir.path(), None);
            let e = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            assert_eq!(e.exit(), Exit::InvalidInput);
            assert!(e.render().contains(want), "{}", e.render());
            assert!(cloud.launched().is_empty());
        }
    }

    /// Issue 33 item 3: `--ami` of an AMI shared from another account, whose tags EC2 does not
    /// show here, needs `--version` (refused before anything launches); with it, the instance
    /// carries that version.
    #[tokio::test(start_paused = true)]
    async fn a_shared_ami_without_visible_tags_needs_a_version() {
        use crate::aws::{Cloud, Images};
        let cloud = FakeCloud::new();
        let owned = Image {
            owner: String::new(),
            public: false,
            ..(cloud_with_ami("available")
                .images("us-east-1")
                .await
                .unwrap())
            .describe_images(&[AMI.into()])
            .await
            .unwrap()[AMI]
                .clone()
        };
        cloud.add_owned_image("us-east-1", owned, "111111111111");
        let shares = crate::accounts::Shares {
            accounts: vec![crate::accounts::AccountId("222222222222".into())],
            ..Default::default()
        };
        let images = cloud.images("us-east-1").await.unwrap();
        images.share(AMI, &shares).await.unwrap();
        let cloud = cloud.as_account("222222222222");
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), Some("127.0.0.1:9"));
        let e = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(
            e.render().contains(&format!(
                "{AMI} shows no tags here, so no version (its owner is account 111111111111"
            )) && e.render().contains("--version"),
            "{}",
            e.render()
        );
        assert!(cloud.launched().is_empty());
        s.version = Some("1.0".into());
        cloud.set_faults(Faults {
            boot: Duration::from_secs(3600),
            ..Default::default()
        });
        let _ = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud).await;
        let launched = cloud.launched();
        assert_eq!(launched.len(), 1);
        assert_eq!(launched[0].1.tags["gears:version"], "1.0");
    }

    /// Issue 24 item 7: throttling of any of the first calls (the AMI's look, the launch) never
    /// fails `gears test` by itself, and a retried launch makes one instance.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_first_call_never_fails_the_test_and_launches_once() {
        for n in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let mut s = settings(dir.path(), Some("127.0.0.1:9"));
            s.ready_timeout = Duration::from_secs(10);
            let cloud = cloud_with_ami("available");
            cloud.set_faults(Faults {
                fail_at: Some((n, crate::aws::ErrorKind::Throttled)),
                boot: Duration::from_secs(3600),
                ..Default::default()
            });
            let t = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .map_err(|e| format!("call {n} throttled: {}", e.render()))
                .unwrap();
            assert!(t.terminated, "call {n}");
            assert_eq!(cloud.launched().len(), 1, "call {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_at_launch_is_exit_5_with_nothing_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), None);
        let cloud = cloud_with_ami("available");
        cloud.set_faults(Faults {
            throttle_ops: vec!["RunInstances"],
            ..Default::default()
        });
        let cleanup = Cleanup::default();
        let e = test(&s, &ctx(), &Cancel::new(), &cleanup, &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud);
        assert!(cloud.launched().is_empty());
        assert_eq!(cleanup.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn terminate_is_retried_until_its_deadline_then_names_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), Some("127.0.0.1:9"));
        s.ready_timeout = Duration::from_secs(10);
        let cloud = cloud_with_ami("available");
        cloud.set_faults(Faults {
            boot: Duration::from_secs(3600),
            throttle_ops: vec!["TerminateInstances"],
            ..Default::default()
        });
        let cleanup = Cleanup::default();
        let start = Instant::now();
        let t = test(&s, &ctx(), &Cancel::new(), &cleanup, &cloud)
            .await
            .unwrap();
        assert!(!t.terminated);
        // 10 s waiting to run, then terminate retried for its whole deadline.
        assert!(
            start.elapsed() >= terminate::DEADLINE,
            "{:?}",
            start.elapsed()
        );
        let terminates = cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("TerminateInstances"))
            .count();
        assert!(terminates > 10, "retried with backoff: {terminates}");
        // The step is still registered: the composition root tries again, then exit 7.
        assert_eq!(cleanup.pending(), 1);
        let results = cleanup
            .run_all(
                &Cancel::new().for_cleanup(),
                Instant::now() + Duration::from_secs(600),
            )
            .await;
        let (what, result) = &results[0];
        assert_eq!(
            what,
            &format!("terminate test instance {} in us-east-1", t.instance_id)
        );
        let why = result.clone().unwrap_err().to_string();
        assert!(why.contains("still not terminating"), "{why}");
        assert!(
            why.contains(&format!(
                "aws ec2 terminate-instances --region us-east-1 --instance-ids {}",
                t.instance_id
            )),
            "{why}"
        );
        // Once AWS stops throttling, the same step terminates it.
        cloud.set_faults(Faults::default());
        let port = cloud.instances("us-east-1").await.unwrap();
        terminate::until_gone(
            &port,
            &t.instance_id,
            &Cancel::new(),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(cloud.launched()[0].0.state, "shutting-down");
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_while_waiting_leaves_the_terminate_step_for_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), None);
        let cloud = cloud_with_ami("available");
        cloud.set_faults(Faults {
            boot: Duration::from_secs(3600),
            ..Default::default()
        });
        let cancel = Cancel::new();
        let (c2, watch) = (cancel.clone(), cloud.clone());
        tokio::spawn(async move {
            // SIGTERM 5 s after the instance exists, while gears waits for it to run.
            while watch.launched().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let cleanup = Cleanup::default();
        let e = test(&s, &ctx(), &cancel, &cleanup, &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Terminated);
        assert_eq!(cloud.launched()[0].0.state, "pending");
        // Cleanup runs on its own token although the run's is cancelled.
        let results = cleanup
            .run_all(
                &cancel.for_cleanup(),
                Instant::now() + Duration::from_secs(600),
            )
            .await;
        assert_eq!(results.len(), 1);
        assert!(results[0].1.is_ok(), "{results:?}");
        assert_eq!(cloud.launched()[0].0.state, "shutting-down");
    }

    #[tokio::test(start_paused = true)]
    async fn manifests_without_the_asked_builder_or_region_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), None);
        let m = dir.path().join("m.json");
        std::fs::write(
            &m,
            r#"{"format_version":1,"component":"hello","version":"1.0","git_sha":"a","repo":"r","created_at":"c","ami_version":"v","base_ami":"b","run_id":"x","packer_run_uuid":null,"reused":false,"amis":{"web":{"us-east-1":"ami-0123456789abcdef0"}}}"#,
        )
        .unwrap();
        let cloud = cloud_with_ami("available");
        for (builder, region, want) in [
            (Some("api"), None, "no builder `api`"),
            (
                None,
                Some("eu-west-1"),
                "no AMI of builder `web` in region `eu-west-1`",
            ),
        ] {
            s.ami = AmiChoice::Manifest {
                path: m.clone(),
                builder: builder.map(str::to_owned),
                region: region.map(str::to_owned),
            };
            let e = test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            assert_eq!(e.exit(), Exit::InvalidInput);
            assert!(e.render().contains(want), "{}", e.render());
        }
        assert!(cloud.launched().is_empty());
    }
}
