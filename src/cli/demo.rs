//! `stemkit demo`: synthesise the built-in mix, separate it, say where the stems are.

use super::{out, CliResult, DeliveryArgs, DeviceArgs, SeparationArgs};
use crate::audio::encode::{write_wav, SampleFormat};
use crate::batch::{run_batch, BatchOptions, Silent, TrackOutcome, REPORT_NAME};
use crate::demo::{render_all, Part};
use crate::error::Error;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Folder for the demo master, its stems and the report.
    #[arg(short, long, default_value = "stemkit-demo")]
    output: PathBuf,
    /// Length of the demo mix in seconds.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    #[command(flatten)]
    separation: SeparationArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

pub(super) fn run(args: DemoArgs) -> CliResult {
    if !(args.seconds > 0.1 && args.seconds <= 3600.0) {
        return Err(Error::param(
            "--seconds",
            format!("expected 0.1 to 3600, got {}", args.seconds),
        ));
    }
    let spec = args.separation.spec()?;
    let engines = args.device.engines(spec.clone())?;
    let params = args.separation.to_json(&spec, &engines);
    let delivery = args.delivery.options()?;
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
    let master = args.output.join("demo_mix.wav");
    let frames = (args.seconds * 48000.0).round() as usize;
    write_wav(
        &master,
        &render_all(Part::Mix, 48000, 2, frames),
        48000,
        SampleFormat::Int24,
    )?;
    out(format!(
        "synthesised {:.1} s of drums, bass and chords: {}",
        args.seconds,
        master.display()
    ));
    let stems_dir = args.output.join("stems");
    let report = run_batch(
        &engines,
        std::slice::from_ref(&master),
        &stems_dir,
        &delivery,
        params,
        &BatchOptions {
            force: true,
            ..Default::default()
        },
        &mut Silent,
    )?;
    match &report.tracks[0] {
        TrackOutcome::Ok(r) => {
            out(format!(
                "separated on {} in {:.2} s ({:.0}x real time):",
                r.device, r.seconds, r.realtime_factor
            ));
            for s in &r.stems {
                out(format!(
                    "  {:<10} {}  (peak {:.1} dBFS)",
                    s.stem,
                    s.path.display(),
                    s.peak_dbfs
                ));
            }
            out(format!(
                "stems sum back to the master: null residual peak {:.1} dBFS",
                r.null_peak_dbfs
            ));
            out(format!("report: {}", stems_dir.join(REPORT_NAME).display()));
            out(format!(
                "check it yourself: stemkit null-test {} {}/*.wav",
                master.display(),
                stems_dir.display()
            ));
            args.device.print_stats(&engines);
            Ok(ExitCode::SUCCESS)
        }
        TrackOutcome::Failed { error, .. } => {
            eprintln!("stemkit: {error}");
            Ok(ExitCode::from(1))
        }
        TrackOutcome::Skipped { reason, .. } => {
            eprintln!("stemkit: skipped: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}
