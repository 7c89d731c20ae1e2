//! The component's version, git revision and repository, each with where it came from.
//!
//! Order, first found wins (docs/bake.md, "Where version and revision come from"):
//! - version: `--version`, GoCD `GO_PIPELINE_LABEL`, Jenkins `BUILD_NUMBER`, GitHub Actions
//!   `GITHUB_RUN_NUMBER` (`.GITHUB_RUN_ATTEMPT` appended when over 1), GitLab
//!   `CI_PIPELINE_IID`, `git describe --tags --always`;
//! - git sha: `--git-sha`, GoCD `GO_REVISION_*` (the first material in name order), Jenkins
//!   `GIT_COMMIT`, GitHub `GITHUB_SHA`, GitLab `CI_COMMIT_SHA`, `git rev-parse HEAD`;
//! - repo: the component file's `repo`, Jenkins `GIT_URL`, GitHub
//!   `GITHUB_SERVER_URL/GITHUB_REPOSITORY`, GitLab `CI_PROJECT_URL`, `git remote get-url origin`.
//!
//! A version from `git describe` that is only a commit id (no tag in sight: a shallow clone, as
//! GitHub's checkout makes by default, or a repository without tags) comes with a warning.

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
    /// What a human should know about these values (a version that is only a commit id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
    let mut warnings = Vec::new();
    let version = if let Some(v) = &overrides.version {
        sourced(v, "--version flag")
    } else if let Some(v) = ci_version(ctx) {
        v
    } else if let Some(v) = git(&["describe", "--tags", "--always"]).await {
        if let Some(w) = commit_like_version(&v, &git).await {
            warnings.push(w);
        }
        sourced(v, "git describe --tags --always")
    } else {
        return Err(Error::usage(
            "no component version: not given, not under a CI server gears knows, and not in a git work tree",
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
    } else if let Some(v) = ctx.var("GITHUB_SHA") {
        sourced(v, "GITHUB_SHA (GitHub Actions)")
    } else if let Some(v) = ctx.var("CI_COMMIT_SHA") {
        sourced(v, "CI_COMMIT_SHA (GitLab CI)")
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
    } else if let (Some(server), Some(repo)) =
        (ctx.var("GITHUB_SERVER_URL"), ctx.var("GITHUB_REPOSITORY"))
    {
        sourced(
            format!("{}/{repo}", server.trim_end_matches('/')),
            "GITHUB_SERVER_URL/GITHUB_REPOSITORY (GitHub Actions)",
        )
    } else if let Some(r) = ctx.var("CI_PROJECT_URL") {
        sourced(r, "CI_PROJECT_URL (GitLab CI)")
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
        warnings,
    })
}

/// The version a CI server gives: GoCD's label, Jenkins' build number, GitHub's run number
/// (with the attempt when the run was retried), GitLab's pipeline number in the project.
fn ci_version(ctx: &RunContext) -> Option<Sourced> {
    if let Some(v) = ctx.var("GO_PIPELINE_LABEL") {
        return Some(sourced(v, "GO_PIPELINE_LABEL (GoCD)"));
    }
    if let Some(v) = ctx.var("BUILD_NUMBER") {
        return Some(sourced(v, "BUILD_NUMBER (Jenkins)"));
    }
    if let Some(run) = ctx.var("GITHUB_RUN_NUMBER") {
        return Some(match ctx.var("GITHUB_RUN_ATTEMPT") {
            Some(a) if a != "1" && !a.is_empty() => sourced(
                format!("{run}.{a}"),
                "GITHUB_RUN_NUMBER.GITHUB_RUN_ATTEMPT (GitHub Actions)",
            ),
            _ => sourced(run, "GITHUB_RUN_NUMBER (GitHub Actions)"),
        });
    }
    ctx.var("CI_PIPELINE_IID")
        .map(|v| sourced(v, "CI_PIPELINE_IID (GitLab CI)"))
}

/// `git describe --always` answers a bare commit id when no tag can be seen: said, with why
/// (a shallow clone sees no tags) and what to do, rather than baking a version that looks
/// like a commit by accident.
async fn commit_like_version(
    version: &str,
    git: &impl Fn(GitArgs) -> BoxFuture<Option<String>>,
) -> Option<String> {
    let commit_id = version.len() >= 7 && version.chars().all(|c| c.is_ascii_hexdigit());
    if !commit_id {
        return None;
    }
    let shallow = git(&["rev-parse", "--is-shallow-repository"])
        .await
        .as_deref()
        == Some("true");
    Some(if shallow {
        format!(
            "the version `{version}` is a commit id: this clone is shallow and git describe sees no tag; fetch the history and tags (actions/checkout with fetch-depth: 0, GitLab's GIT_DEPTH: 0, or git fetch --tags --unshallow) or pass --version"
        )
    } else {
        format!(
            "the version `{version}` is a commit id: git describe sees no tag; tag a release or pass --version"
        )
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

    /// Issue 35 item 3: GitHub Actions' and GitLab CI's variables, each named as the source.
    #[tokio::test]
    async fn github_and_gitlab_variables_give_version_revision_and_repo() {
        let ctx = RunContext::from_vars([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_NUMBER", "42"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_SHA", "0123abcd"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "team/svc"),
        ]);
        let m = resolve(&Overrides::default(), &ctx, None, no_git)
            .await
            .unwrap();
        assert_eq!(
            m.version,
            sourced("42", "GITHUB_RUN_NUMBER (GitHub Actions)")
        );
        assert_eq!(
            m.git_sha,
            sourced("0123abcd", "GITHUB_SHA (GitHub Actions)")
        );
        assert_eq!(
            m.repo,
            sourced(
                "https://github.com/team/svc",
                "GITHUB_SERVER_URL/GITHUB_REPOSITORY (GitHub Actions)"
            )
        );
        let retried = RunContext::from_vars([
            ("GITHUB_RUN_NUMBER", "42"),
            ("GITHUB_RUN_ATTEMPT", "3"),
            ("GITHUB_SHA", "0123abcd"),
        ]);
        let m = resolve(&Overrides::default(), &retried, Some("r"), no_git)
            .await
            .unwrap();
        assert_eq!(m.version.value, "42.3");
        let ctx = RunContext::from_vars([
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_IID", "17"),
            ("CI_COMMIT_SHA", "feedf00d"),
            ("CI_PROJECT_URL", "https://gitlab.example.com/team/svc"),
        ]);
        let m = resolve(&Overrides::default(), &ctx, None, no_git)
            .await
            .unwrap();
        assert_eq!(m.version, sourced("17", "CI_PIPELINE_IID (GitLab CI)"));
        assert_eq!(m.git_sha, sourced("feedf00d", "CI_COMMIT_SHA (GitLab CI)"));
        assert_eq!(m.repo.source, "CI_PROJECT_URL (GitLab CI)");
        assert!(m.warnings.is_empty());
    }

    /// A version that is only a commit id is said, with why on a shallow clone.
    #[tokio::test]
    async fn a_commit_id_for_a_version_warns_and_says_why() {
        fn shallow(args: GitArgs) -> BoxFuture<Option<String>> {
            let v = match args {
                ["describe", ..] => "abc1234",
                ["rev-parse", "--is-shallow-repository"] => "true",
                ["rev-parse", ..] => "abc1234def",
                _ => "https://r",
            };
            Box::pin(async move { Some(v.to_owned()) })
        }
        let m = resolve(&Overrides::default(), &RunContext::default(), None, shallow)
            .await
            .unwrap();
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(
            m.warnings[0].contains("this clone is shallow"),
            "{:?}",
            m.warnings
        );
        // A tag in sight: no warning.
        let m = resolve(
            &Overrides::default(),
            &RunContext::default(),
            None,
            fake_git,
        )
        .await
        .unwrap();
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
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
