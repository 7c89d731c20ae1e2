//! `docs/reference/exit-codes.md`, `component-file.md` and `pipeline-file.md`: from `exit.rs` and
//! the key tables beside the serde types of the two files.

use super::{cell, header};
use crate::exit::Exit;
use std::fmt::Write;

/// Every exit code, in the order of [`Exit::ALL`].
pub(super) fn exit_codes() -> String {
    let mut out = header("Exit codes");
    out.push_str(
        "What a GoCD or Jenkins stage reads from gears' exit status (`src/exit.rs`).\n\n\
         | code | meaning |\n|---|---|\n",
    );
    for e in Exit::ALL {
        let _ = writeln!(out, "| {} | {} |", e.code(), e.meaning());
    }
    out.push_str(
        "\n`gears status` uses two of them: 7 when something on the fleet needs a human (a STOP \
         lock, a deploy recorded whose run is gone, drift, a blue/green switch with no live \
         lock, a gears tag that cannot be read), 5 when a region could not be read; 0 \
         otherwise.\n\nWhen several apply, the most severe wins (7 > 6 > 5 > 4 > 3 > 1); an interruption \
         is reported as such unless a human must look. Errors are printed on stderr as \
         `error:`, `caused by:` and `hint:` lines; errors in files name `file:line:col` and \
         show the line.\n",
    );
    out
}

/// The component file's keys (`gears.yaml`).
pub(super) fn component_file() -> String {
    let mut out = header("Component file keys");
    out.push_str(
        "The component file (`gears.yaml`, or `-c FILE`) describes one component for bake, \
         test and deploy; `examples/hello-service/gears.yaml` is a full example, and \
         [the bake guide](../bake.md) shows one with comments. An unknown key is refused \
         (exit 3) at its `file:line:col`, naming the closest valid one. A nested key is \
         written `section.key`; `builders[].key` is a key of one builder written as a \
         mapping.\n\n",
    );
    table(&mut out, crate::component::file::keys::KEYS);
    out
}

/// The pipeline file's keys.
pub(super) fn pipeline_file() -> String {
    let mut out = header("Pipeline file keys");
    out.push_str(
        "A pipeline file names the component file and the stages `gears pipeline run` runs, in \
         this order: bake, test, then each `deploy` entry; `pipelines/hello-service.yaml` is \
         the example, and [the pipeline guide](../pipeline.md) says how it runs. Unknown keys \
         and bad values are refused (exit 3) at their `file:line:col`. `deploy[].key` is a key \
         of one deploy entry.\n\n",
    );
    table(&mut out, crate::pipeline::keys::KEYS);
    out
}

fn table(out: &mut String, keys: &[(&str, &str)]) {
    out.push_str("| key | meaning |\n|---|---|\n");
    for (key, meaning) in keys {
        let _ = writeln!(out, "| `{key}` | {} |", cell(meaning));
    }
}
