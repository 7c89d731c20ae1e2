//! `gears man`: one man page, gears(1), made by `clap_mangen` from the command `--help` shows:
//! gears' own sections, then a section per command with its synopsis and options.

use clap::{Command, CommandFactory};

/// The man page, in roff.
pub fn man_page() -> String {
    let mut root = crate::cli::Cli::command();
    root.build();
    let mut out: Vec<u8> = Vec::new();
    // Writing into memory cannot fail.
    let _ = clap_mangen::Man::new(root.clone()).render(&mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    // clap_mangen names a page per command (`gears-deploy(1)`); this one page has a section.
    for sub in root.get_subcommands() {
        let name = sub.get_name();
        text = text.replace(&format!("gears\\-{name}(1)"), &format!("gears {name}"));
    }
    for sub in leaves(&root) {
        text.push_str(&command_section(sub));
    }
    text
}

/// The commands that run something (`gears deploy`, `gears amis list`), in clap's order.
fn leaves(cmd: &Command) -> Vec<&Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        if sub.has_subcommands() {
            out.extend(leaves(sub));
        } else {
            out.push(sub);
        }
    }
    out
}

/// `.SH "GEARS DEPLOY"` with the command's synopsis, description and options as subsections.
fn command_section(cmd: &Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out: Vec<u8> = Vec::new();
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    if cmd.get_after_help().is_some() {
        let _ = man.render_extra_section(&mut out);
    }
    let body = String::from_utf8_lossy(&out)
        .lines()
        .map(|line| match line.strip_prefix(".SH ") {
            Some(title) => format!(".SS {}", sub_title(title)),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(".SH \"{}\"\n{body}\n", name.to_uppercase())
}

/// `SYNOPSIS` → `Synopsis`; `EXTRA` (clap_mangen's name for the examples after the help) →
/// `Examples`.
fn sub_title(title: &str) -> String {
    let title = title.trim_matches('"');
    if title == "EXTRA" {
        return "Examples".into();
    }
    let mut chars = title.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::man_page;

    #[test]
    fn the_man_page_has_every_command_and_its_flags() {
        let page = man_page();
        assert!(
            page.starts_with(".ie") || page.contains(".TH gears"),
            "{page:.200}"
        );
        for needle in [
            ".SH \"GEARS DEPLOY\"",
            ".SH \"GEARS AMIS PRUNE\"",
            "\ngears deploy\n",
            "environment",
            "min\\-healthy",
        ] {
            assert!(page.contains(needle), "the man page lacks {needle:?}");
        }
    }

    /// `man -l` renders it, and a deploy flag is in the text a reader sees.
    #[test]
    fn man_renders_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gears.1");
        std::fs::write(&path, man_page()).unwrap();
        let out = match std::process::Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C")
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("skipped: no `man` to render the page ({e}); apt-get install man-db");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "man -l failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "--environment",
            "--min-healthy",
            "GEARS DEPLOY",
            "Exit codes",
        ] {
            assert!(
                text.contains(needle),
                "man -l shows no {needle:?}:\n{text:.3000}"
            );
        }
    }
}
