//! What the unit tests of several modules share: the in-memory fake cloud, an empty
//! `RunContext`, component files in a temporary directory, AMIs and tags, packer's names, and a
//! local HTTP server answering 200. Test-only (`#[cfg(test)]` in `lib.rs`); a test that only one
//! module needs stays beside that module. And test support that belongs to no one stage: the
//! IAM policy test, which runs every stage on the fake AWS and checks `docs/iam-policy.json`
//! against the calls they made, and the recorder of a serde type's fields that proves the key
//! tables of the reference complete.

pub(crate) mod fields;
mod iam_policy;

use crate::aws::Image;
use crate::context::RunContext;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) use crate::aws::fake::{FakeCloud, Faults};

/// A run context with no environment variables: no CI, no terminal, no proxy.
pub(crate) fn ctx() -> RunContext {
    RunContext::from_vars(Vec::<(String, String)>::new())
}

/// A base AMI id the component files here name.
pub(crate) const BASE_AMI: &str = "ami-0123456789abcdef0";

/// Writes `dir/gears.yaml`: the component `hello` (repo `r`, us-east-1, [`BASE_AMI`]) and then
/// `extra` (more top-level keys, each line ending in a newline); returns its path.
pub(crate) fn component_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("gears.yaml");
    let text = format!(
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: {BASE_AMI}}}\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The metadata of `version` at revision `abc` of repo `r`, each from a test.
pub(crate) fn metadata(version: &str) -> crate::component::metadata::Metadata {
    let s = |v: &str| crate::component::metadata::Sourced {
        value: v.into(),
        source: "test".into(),
    };
    crate::component::metadata::Metadata {
        warnings: vec![],
        version: s(version),
        git_sha: s("abc"),
        repo: s("r"),
    }
}

/// Tags from pairs.
pub(crate) fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An available AMI named as its id, created 2026-11-24, with `tags`.
pub(crate) fn image(id: &str, kv: &[(&str, &str)]) -> Image {
    Image {
        id: id.into(),
        name: id.into(),
        state: "available".into(),
        owner: String::new(),
        public: false,
        creation_date: "2026-11-24T00:00:00.000Z".into(),
        tags: tags(kv),
        architecture: "x86_64".into(),
        root_device_name: "/dev/xvda".into(),
    }
}

/// A name packer 1.6 gives its key pairs and security groups, made `secs_ago` seconds ago
/// (`packer_` and a time-ordered UUID whose first 8 hex digits are the Unix time).
pub(crate) fn packer_name(secs_ago: i64) -> String {
    format!(
        "packer_{:08x}-0000-0000-0000-000000000000",
        chrono::Utc::now().timestamp() - secs_ago
    )
}

/// A local HTTP server answering 200 to anything, and its port.
pub(crate) async fn http_ok() -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_file_here_is_a_valid_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = component_file(dir.path(), "test: {smoke_file: smoke.yaml}\n");
        let c = crate::component::load(&path).unwrap();
        assert_eq!(c.name, "hello");
    }

    #[tokio::test]
    async fn the_http_server_answers_ok() {
        let port = http_ok().await;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    }
}
