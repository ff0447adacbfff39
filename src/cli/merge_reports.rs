//! `stemkit merge-reports`: join the live reports of several runs or shards into one.

use super::{out, CliResult};
use crate::batch::{merge_reports, write_merged};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct MergeReportsArgs {
    /// Live reports (`stemkit-report*.jsonl`) of the runs or shards to join.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Where to write the merged report (JSON lines: one record per track, then a summary).
    #[arg(short, long)]
    output: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: MergeReportsArgs) -> CliResult {
    let merged = merge_reports(&args.reports)?;
    write_merged(&args.output, &merged)?;
    if args.json {
        out(serde_json::to_string_pretty(&merged).expect("serialisable"));
    } else {
        out(format!(
            "{} tracks from {} report(s), {} run(s): {} delivered, {} skipped (done earlier), {} failed; {:.2} h of audio; {}",
            merged.tracks,
            args.reports.len(),
            merged.runs,
            merged.ok,
            merged.skipped,
            merged.failed,
            merged.audio_hours,
            args.output.display()
        ));
        for (rel, n) in &merged.separated_more_than_once {
            out(format!("  delivered {n} times: {rel}"));
        }
        for f in &merged.failures {
            out(format!("  failed: {f}"));
        }
    }
    Ok(if merged.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
