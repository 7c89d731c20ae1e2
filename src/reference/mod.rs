//! The reference made from the code (STYLE.md §24): the pages in `docs/reference/` and the man
//! page. Each page is a function of what gears is: clap's command ([`crate::cli::Cli`]), the exit
//! codes ([`crate::exit::Exit`]), the keys of the component and pipeline files (their tables
//! beside the serde types) and the environment variables gears reads ([`env::VARS`]).
//!
//! A test compares each page with its file and fails when one is stale; `GEARS_BLESS=1 cargo
//! test --lib reference` writes them again.

mod cli;
pub mod env;
mod files;
mod man;

pub use man::man_page;

/// Where the pages live, from the crate's root.
pub const DIR: &str = "docs/reference";

/// The command that writes the pages again, named by the staleness test.
pub const REGENERATE: &str = "GEARS_BLESS=1 cargo test --lib reference";

/// Every generated page: its file name in [`DIR`] and its Markdown.
pub fn pages() -> Vec<(&'static str, String)> {
    vec![
        ("cli.md", cli::page()),
        ("exit-codes.md", files::exit_codes()),
        ("component-file.md", files::component_file()),
        ("pipeline-file.md", files::pipeline_file()),
        ("environment.md", env::page()),
    ]
}

/// The first lines of every page: what it is and how it is made.
fn header(title: &str) -> String {
    format!(
        "# {title}\n\n<!-- Generated from the code by src/reference; do not edit. \
         Regenerate: {REGENERATE} -->\n\n"
    )
}

/// A Markdown table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::{pages, DIR, REGENERATE};
    use std::path::Path;

    /// STYLE.md §24: the pages in docs/reference/ are what the code says now.
    #[test]
    fn reference_pages_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        let bless = std::env::var_os("GEARS_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, text) in pages() {
            let path = dir.join(name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(format!("{DIR}/{name}"));
            }
        }
        assert!(
            stale.is_empty(),
            "stale generated reference page(s): {}; regenerate them with `{REGENERATE}` and commit \
             the result",
            stale.join(", ")
        );
    }

    #[test]
    fn every_page_has_a_unique_name_and_a_title() {
        let mut names: Vec<&str> = pages().iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), pages().len());
        for (name, text) in pages() {
            assert!(text.starts_with("# "), "{name} has no title");
        }
    }
}
