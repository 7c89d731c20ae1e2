//! The component's version, git revision and repository, each with where it came from.
//!
//! Order, first found wins (docs/bake.md, "Where version and revision come from"):
//! - version: `--version`, GoCD `GO_PIPELINE_LABEL`, Jenkins `BUILD_NUMBER`, `git describe --tags --always`;
//! - git sha: `--git-sha`, GoCD `GO_REVISION_*` (the first material in name order), Jenkins
//!   `GIT_COMMIT`, `git rev-parse HEAD`;
//! - repo: the component file's `repo`, Jenkins `GIT_URL`, `git remote get-url origin`.

use crate::context::RunContext;
use crate::error::Error;
use serde::Serialize;
use std::path::Path;

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced {
    pub value: String,
    pub source: String,
}

fn sourced(value: impl Into<String>, source: impl Into<String>) -> Sourced {
    Sourced {
        value: value.into(),
        source: source.into(),
    }
}

/// What the metadata lookup was given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub version: Option<String>,
    pub git_sha: Option<String>,
}

/// The metadata of one bake.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    pub version: Sourced,
    pub git_sha: Sourced,
    pub repo: Sourced,
}

/// A git lookup: the arguments of one `git` command, its trimmed output (`None` when git is
/// missing or fails, or prints nothing).
pub type GitArgs = &'static [&'static str];

/// Runs `git` in `dir` on tokio's process support, so a slow repository (a network filesystem,
/// a huge history for `describe`) never blocks the async runtime's threads.
pub fn git_in(dir: &Path) -> impl Fn(GitArgs) -> BoxFuture<Option<String>> {
    let dir = dir.to_path_buf();
    move |args| {
        let dir = dir.clone();
        Box::pin(async move {
            let out = tokio::process::Command::new("git")
                .args(args)
                .current_dir(&dir)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .ok()?;
            if !out.status.success() {
                return None;
            }
            let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (!s.is_empty()).then_some(s)
        })
    }
}

/// The future of one git lookup.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A repository URL without credentials: CI checkouts often have `https://user:token@host/...`
/// as their remote, and the repo ends up in AMI tags and logs.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Resolves version, sha and repo; the error says what to pass when nothing was found. `git` is
/// asked only for what the flags, the component file and the CI variables did not give.
pub async fn resolve(
    overrides: &Overrides,
    ctx: &RunContext,
    file_repo: Option<&str>,
    git: impl Fn(GitArgs) -> BoxFuture<Option<String>>,
) -> Result<Metadata, Error> {
    let version = if let Some(v) = &overrides.version {
        sourced(v, "--version flag")
    } else if let Some(v) = ctx.var("GO_PIPELINE_LABEL") {
        sourced(v, "GO_PIPELINE_LABEL (GoCD)")
    } else if let Some(v) = ctx.var("BUILD_NUMBER") {
        sourced(v, "BUILD_NUMBER (Jenkins)")
    } else if let Some(v) = git(&["describe", "--tags", "--always"]).await {
        sourced(v, "git describe --tags --always")
    } else {
        return Err(Error::usage(
            "no component version: not given, not under GoCD or Jenkins, and not in a git work tree",
            Some("pass --version 1.2.3".into()),
        ));
    };
    let go_revision = ctx
        .vars()
        .iter()
        .filter(|(k, v)| k.starts_with("GO_REVISION_") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .next();
    let git_sha = if let Some(v) = &overrides.git_sha {
        sourced(v, "--git-sha flag")
    } else if let Some((k, v)) = go_revision {
        sourced(v, format!("{k} (GoCD)"))
    } else if let Some(v) = ctx.var("GIT_COMMIT") {
        sourced(v, "GIT_COMMIT (Jenkins)")
    } else if let Some(v) = git(&["rev-parse", "HEAD"]).await {
        sourced(v, "git rev-parse HEAD")
    } else {
        return Err(Error::usage(
            "no git revision: not given, not under GoCD or Jenkins, and not in a git work tree",
            Some("pass --git-sha <commit>".into()),
        ));
    };
    let repo = if let Some(r) = file_repo {
        sourced(r, "component file `repo`")
    } else if let Some(r) = ctx.var("GIT_URL") {
        sourced(r, "GIT_URL (Jenkins)")
    } else if let Some(r) = git(&["remote", "get-url", "origin"]).await {
        sourced(r, "git remote get-url origin")
    } else {
        return Err(Error::usage(
            "no repository for the component: no `repo` in the component file and no git remote `origin`",
            Some("add `repo: <url>` to the component file".into()),
        ));
    };
    let repo = Sourced {
        value: without_credentials(&repo.value),
        source: repo.source,
    };
    Ok(Metadata {
        version,
        git_sha,
        repo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_git(_: GitArgs) -> BoxFuture<Option<String>> {
        Box::pin(async { None })
    }

    fn fake_git(args: GitArgs) -> BoxFuture<Option<String>> {
        let v = match args[0] {
            "describe" => "v2.0.0-3-gabc",
            "rev-parse" => "abc123",
            _ => "git@example.com:team/repo.git",
        };
        Box::pin(async move { Some(v.to_owned()) })
    }

    #[tokio::test]
    async fn git_runs_in_the_component_folder_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let git = git_in(dir.path());
        // Not a work tree: no answer, and no panic on a current-thread runtime.
        assert_eq!(git(&["rev-parse", "HEAD"]).await, None);
        let repo = git_in(Path::new(env!("CARGO_MANIFEST_DIR")));
        if let Some(sha) = repo(&["rev-parse", "HEAD"]).await {
            assert_eq!(sha.len(), 40, "{sha}");
        }
    }

    #[tokio::test]
    async fn flags_win_then_ci_then_git() {
        let ctx = RunContext::from_vars([
            ("GO_PIPELINE_LABEL", "42"),
            ("GO_REVISION_APP", "deadbeef"),
            ("BUILD_NUMBER", "7"),
        ]);
        let o = Overrides {
            version: Some("1.0".into()),
            git_sha: None,
        };
        let m = resolve(&o, &ctx, None, fake_git).await.unwrap();
        assert_eq!(m.version, sourced("1.0", "--version flag"));
        assert_eq!(m.git_sha, sourced("deadbeef", "GO_REVISION_APP (GoCD)"));
        assert_eq!(m.repo.source, "git remote get-url origin");

        let ctx = RunContext::from_vars([
            ("BUILD_NUMBER", "7"),
            ("GIT_COMMIT", "cafe"),
            ("GIT_URL", "https://j/r.git"),
        ]);
        let m = resolve(&Overrides::default(), &ctx, None, fake_git)
            .await
            .unwrap();
        assert_eq!(m.version, sourced("7", "BUILD_NUMBER (Jenkins)"));
        assert_eq!(m.git_sha, sourced("cafe", "GIT_COMMIT (Jenkins)"));
        assert_eq!(m.repo, sourced("https://j/r.git", "GIT_URL (Jenkins)"));

        let m = resolve(
            &Overrides::default(),
            &RunContext::default(),
            Some("https://r"),
            fake_git,
        )
        .await
        .unwrap();
        assert_eq!(m.version.value, "v2.0.0-3-gabc");
        assert_eq!(m.git_sha.value, "abc123");
        assert_eq!(m.repo, sourced("https://r", "component file `repo`"));
    }

    #[tokio::test]
    async fn credentials_never_reach_the_repo_tag() {
        assert_eq!(
            without_credentials("https://ci:s3cr3t@git.example.com/team/repo.git"),
            "https://git.example.com/team/repo.git"
        );
        assert_eq!(
            without_credentials("https://git.example.com/a@b/repo.git"),
            "https://git.example.com/a@b/repo.git"
        );
        assert_eq!(
            without_credentials("git@github.com:team/repo.git"),
            "git@github.com:team/repo.git"
        );
        let ctx = RunContext::from_vars([("GIT_URL", "https://jenkins:tok@git.example.com/r.git")]);
        let m = resolve(&Overrides::default(), &ctx, None, fake_git)
            .await
            .unwrap();
        assert_eq!(m.repo.value, "https://git.example.com/r.git");
    }

    #[tokio::test]
    async fn nothing_found_is_a_usage_error_with_a_hint() {
        let e = resolve(
            &Overrides::default(),
            &RunContext::default(),
            Some("r"),
            no_git,
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Usage);
        assert!(e.render().contains("hint: pass --version"));
    }
}
