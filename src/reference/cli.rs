//! `docs/reference/cli.md`: every command of gears and each of its arguments, from clap.

use super::{cell, header};
use clap::{Arg, Command, CommandFactory};
use std::fmt::Write;

/// The page: `gears` itself, then each command and subcommand, depth first in clap's order.
pub(super) fn page() -> String {
    let mut root = crate::cli::Cli::command();
    root.build();
    let mut out = header("Command line");
    out.push_str(
        "Every command of gears and each of its arguments, with its default and its values. \
         `gears COMMAND --help` says the same, with examples; `gears man` prints it as a man \
         page.\n\n",
    );
    command(&mut out, &root);
    out
}

/// One command's section, then its subcommands'.
fn command(out: &mut String, cmd: &Command) {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let _ = writeln!(out, "## `{name}`\n");
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{}\n", about.to_string().trim());
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    let _ = writeln!(out, "```text\n{usage}\n```\n");
    arguments(out, cmd);
    if cmd.has_subcommands() {
        out.push_str("| command | what it does |\n|---|---|\n");
        for sub in visible(cmd) {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(out, "| `{}` | {} |", sub.get_name(), cell(&about));
        }
        out.push('\n');
    }
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        let _ = writeln!(out, "```text\n{}\n```\n", after.to_string().trim_end());
    }
    for sub in visible(cmd) {
        command(out, sub);
    }
}

/// The subcommands that `--help` lists (not clap's own `help`).
fn visible(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// The table of a command's arguments, positionals first; clap's `--help` and `--version` are
/// left out.
fn arguments(out: &mut String, cmd: &Command) {
    let args: Vec<&Arg> = cmd
        .get_positionals()
        .chain(cmd.get_arguments().filter(|a| !a.is_positional()))
        .filter(|a| !a.is_hide_set())
        // clap's own --help and --version; a command's own `--version VERSION` (bake, test) stays.
        .filter(|a| a.get_id() != "help" && !matches!(a.get_action(), clap::ArgAction::Version))
        .collect();
    if args.is_empty() {
        return;
    }
    out.push_str("| argument | meaning |\n|---|---|\n");
    for a in args {
        let _ = writeln!(out, "| {} | {} |", cell(&spelling(a)), cell(&meaning(a)));
    }
    out.push('\n');
}

/// How an argument is written: `-e, --environment <ENV>`, or `<FILE>` for a positional.
fn spelling(a: &Arg) -> String {
    let value = a
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", a.get_id().as_str().to_uppercase()));
    if a.is_positional() {
        return format!("`{value}`");
    }
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("--{l}"));
    }
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    if takes_value {
        format!("`{} {value}`", names.join(", "))
    } else {
        format!("`{}`", names.join(", "))
    }
}

/// Its help, then what clap knows about it: required, repeatable, global, its values, its
/// default and the environment variable it falls back to.
fn meaning(a: &Arg) -> String {
    let mut help = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string().trim().to_owned())
        .unwrap_or_default();
    if !help.is_empty() && !help.ends_with('.') {
        help.push('.');
    }
    let mut parts = vec![help];
    if a.is_required_set() {
        parts.push("Required.".into());
    }
    if matches!(a.get_action(), clap::ArgAction::Append) {
        parts.push("Repeatable.".into());
    }
    if a.is_global_set() {
        parts.push("Global: given to any command.".into());
    }
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| match v.get_help() {
            Some(h) => format!(
                "`{}` ({})",
                v.get_name(),
                h.to_string().trim_end_matches('.')
            ),
            None => format!("`{}`", v.get_name()),
        })
        .collect();
    let is_flag = !a.get_num_args().is_some_and(|n| n.takes_values());
    if !values.is_empty() && !is_flag {
        parts.push(format!("Values: {}.", values.join(", ")));
    }
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|d| format!("`{}`", d.to_string_lossy()))
        .collect();
    if !defaults.is_empty() && !is_flag {
        parts.push(format!("Default: {}.", defaults.join(", ")));
    }
    if let Some(env) = a.get_env() {
        parts.push(format!("Environment: `{}`.", env.to_string_lossy()));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}
