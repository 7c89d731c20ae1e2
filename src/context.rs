//! The environment of a run, captured once (hurl's `Context`): environment variables, whether
//! stderr/stdout are terminals, whether we run under a CI server, and `NO_COLOR`.
//! Nothing below `app` calls `std::env::var`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

/// A snapshot of the process environment.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    env: BTreeMap<String, String>,
    /// stdout is a terminal.
    pub stdout_tty: bool,
    /// stderr is a terminal.
    pub stderr_tty: bool,
    /// stdin is a terminal (nobody is piping a file in).
    pub stdin_tty: bool,
    /// The directory gears was started in.
    pub cwd: std::path::PathBuf,
}

impl RunContext {
    /// Captures the real environment.
    pub fn capture() -> Self {
        RunContext {
            env: std::env::vars().collect(),
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
            stdin_tty: std::io::stdin().is_terminal(),
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// A context built from explicit values (tests).
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        RunContext {
            env: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Default::default()
        }
    }

    /// A variable, treating an empty value as unset.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// All variables (for child processes that must inherit them).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Running under a CI server (GoCD, Jenkins, or anything that sets `CI`).
    pub fn is_ci(&self) -> bool {
        [
            "CI",
            "GO_SERVER_URL",
            "JENKINS_URL",
            "BUILD_NUMBER",
            "GO_PIPELINE_LABEL",
        ]
        .iter()
        .any(|k| self.var(k).is_some_and(|v| v != "false" && v != "0"))
    }

    /// The CI job this runs in, as its server names it: GoCD's pipeline, counter, stage and
    /// job, Jenkins' `BUILD_TAG`, GitHub Actions' run; `None` outside CI.
    pub fn ci_job(&self) -> Option<String> {
        if let Some(p) = self.var("GO_PIPELINE_NAME") {
            let parts: Vec<&str> = [
                Some(p),
                self.var("GO_PIPELINE_COUNTER"),
                self.var("GO_STAGE_NAME"),
                self.var("GO_STAGE_COUNTER"),
                self.var("GO_JOB_NAME"),
            ]
            .into_iter()
            .flatten()
            .collect();
            return Some(format!("gocd:{}", parts.join("/")));
        }
        if let Some(t) = self.var("BUILD_TAG") {
            return Some(format!("jenkins:{t}"));
        }
        if let (Some(job), Some(n)) = (self.var("JOB_NAME"), self.var("BUILD_NUMBER")) {
            return Some(format!("jenkins:{job}#{n}"));
        }
        // GitHub's and GitLab's runs are named by their link, which a lock's reader can open.
        if let (Some(repo), Some(run)) = (self.var("GITHUB_REPOSITORY"), self.var("GITHUB_RUN_ID"))
        {
            let server = self
                .var("GITHUB_SERVER_URL")
                .unwrap_or("https://github.com");
            return Some(format!(
                "{}/{repo}/actions/runs/{run}",
                server.trim_end_matches('/')
            ));
        }
        self.var("CI_JOB_URL").map(str::to_owned)
    }

    /// The user asked for no colour (https://no-color.org).
    pub fn no_color(&self) -> bool {
        self.env.contains_key("NO_COLOR") && self.var("NO_COLOR").is_some()
    }

    /// Colour on stdout: a terminal, and no `NO_COLOR`.
    pub fn stdout_color(&self) -> bool {
        self.stdout_tty && !self.no_color()
    }

    /// Live progress (bars) on stderr: a terminal, not CI.
    pub fn live_progress(&self) -> bool {
        self.stderr_tty && !self.is_ci()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_ci_job_is_named_as_its_server_names_it() {
        let go = RunContext::from_vars([
            ("GO_PIPELINE_NAME", "hello"),
            ("GO_PIPELINE_COUNTER", "42"),
            ("GO_STAGE_NAME", "deploy"),
            ("GO_STAGE_COUNTER", "1"),
            ("GO_JOB_NAME", "live"),
        ]);
        assert_eq!(go.ci_job().as_deref(), Some("gocd:hello/42/deploy/1/live"));
        let jenkins = RunContext::from_vars([("BUILD_TAG", "jenkins-hello-7")]);
        assert_eq!(jenkins.ci_job().as_deref(), Some("jenkins:jenkins-hello-7"));
        let jenkins = RunContext::from_vars([("JOB_NAME", "hello"), ("BUILD_NUMBER", "7")]);
        assert_eq!(jenkins.ci_job().as_deref(), Some("jenkins:hello#7"));
        let github = RunContext::from_vars([
            ("GITHUB_SERVER_URL", "https://github.example.com"),
            ("GITHUB_REPOSITORY", "team/svc"),
            ("GITHUB_RUN_ID", "123"),
        ]);
        assert_eq!(
            github.ci_job().as_deref(),
            Some("https://github.example.com/team/svc/actions/runs/123")
        );
        let gitlab =
            RunContext::from_vars([("CI_JOB_URL", "https://gitlab.com/team/svc/-/jobs/9")]);
        assert_eq!(
            gitlab.ci_job().as_deref(),
            Some("https://gitlab.com/team/svc/-/jobs/9")
        );
        assert_eq!(
            RunContext::from_vars(Vec::<(String, String)>::new()).ci_job(),
            None
        );
    }

    use super::*;

    #[test]
    fn ci_detection_reads_the_known_servers() {
        assert!(RunContext::from_vars([("GO_SERVER_URL", "https://go")]).is_ci());
        assert!(RunContext::from_vars([("JENKINS_URL", "http://j")]).is_ci());
        assert!(RunContext::from_vars([("CI", "true")]).is_ci());
        assert!(!RunContext::from_vars([("CI", "false")]).is_ci());
        assert!(!RunContext::from_vars([("HOME", "/root")]).is_ci());
    }

    #[test]
    fn empty_vars_are_unset() {
        let ctx = RunContext::from_vars([("TEST_HOST", "")]);
        assert_eq!(ctx.var("TEST_HOST"), None);
    }
}
