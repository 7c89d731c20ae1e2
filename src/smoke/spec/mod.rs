//! Smolder-compatible smoke files: parsing and validation.
//!
//! [`helpers`] has the serde helpers and small typed fields, [`inputs`] and [`outcomes`] the two
//! halves of a test, [`parse`](mod@parse) reads a whole file.
//!
//! A file is YAML (or JSON) with a top-level `tests:` list. Parsing goes straight into typed
//! structures with `deny_unknown_fields`, so every mistake is reported by serde with its line and
//! column; [`parse`] turns that into an [`InputError`] with the source line and, for a typo, the
//! closest valid key. Outcomes keep their file order (Smolder's plugin order is not kept, see
//! `shared/research/smolder-spec.md`).

mod helpers;
mod inputs;
mod outcomes;
mod parse;

pub use helpers::*;
pub use inputs::*;
pub use outcomes::*;
pub use parse::parse;

/// A parsed smoke file.
#[derive(Debug, Clone)]
pub struct SmokeFile {
    /// Where it came from, as the user named it.
    pub path: String,
    /// The tests, in file order.
    pub tests: Vec<TestSpec>,
    /// Things that run but deserve a word (keys Smolder ignores), once each.
    pub warnings: Vec<String>,
}

/// A test ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    pub name: String,
    pub description: Option<String>,
    pub uri: String,
    pub port: Option<u16>,
    pub protocol: Option<Protocol>,
    pub method: Method,
    pub inputs: Inputs,
    pub checks: Vec<Outcome>,
    pub tcp_test: bool,
    pub show_body: bool,
    pub colour: bool,
    pub response_headers_present: Vec<String>,
}
