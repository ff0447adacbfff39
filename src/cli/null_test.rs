//! `stemkit null-test MASTER STEM...`: Σ stems − gain · master, with the master resampled to the
//! stems' rate the same way `separate` resamples it.

use super::{out, CliResult};
use crate::audio::decode::read_all;
use crate::audio::resample::resample_all;
use crate::error::Error;
use crate::pipeline::dbfs;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct NullTestArgs {
    /// The master the stems were made from.
    master: PathBuf,
    /// The stems (all the same rate, channels and length).
    #[arg(required = true)]
    stems: Vec<PathBuf>,
    /// Fail (exit 1) when the residual peak is above this, in dBFS.
    #[arg(long = "max-dbfs", default_value_t = -120.0, allow_hyphen_values = true)]
    max_dbfs: f64,
    /// The common gain recorded in the report, if one was applied (linear).
    #[arg(long, default_value_t = 1.0)]
    gain: f64,
}

pub(super) fn run(args: NullTestArgs) -> CliResult {
    let (mi, master) = read_all(&args.master)?;
    let mut sum: Option<(u32, Vec<Vec<f64>>)> = None;
    for path in &args.stems {
        let (info, stem) = read_all(path)?;
        match &mut sum {
            None => {
                sum = Some((
                    info.sample_rate,
                    stem.iter()
                        .map(|c| c.iter().map(|&v| v as f64).collect())
                        .collect(),
                ))
            }
            Some((rate, acc)) => {
                let (frames, want) = (
                    stem.first().map_or(0, Vec::len),
                    acc.first().map_or(0, Vec::len),
                );
                if info.sample_rate != *rate || stem.len() != acc.len() || frames != want {
                    return Err(Error::bad_input(
                        path,
                        format!(
                            "stem layout differs from the first stem: expected {} Hz, {} channels, {} frames; got {} Hz, {} channels, {} frames",
                            rate, acc.len(), want, info.sample_rate, stem.len(), frames
                        ),
                    ));
                }
                for (a, s) in acc.iter_mut().zip(&stem) {
                    for (x, &v) in a.iter_mut().zip(s) {
                        *x += v as f64;
                    }
                }
            }
        }
    }
    let (rate, sum) = sum.expect("clap requires at least one stem");
    let master = resample_all(&master, mi.sample_rate, rate)?;
    let (frames, want) = (
        master.first().map_or(0, Vec::len),
        sum.first().map_or(0, Vec::len),
    );
    if master.len() != sum.len() || frames != want {
        return Err(Error::bad_input(
            &args.master,
            format!(
                "master does not line up with the stems: {} channels, {} frames at {} Hz; stems have {} channels, {} frames",
                master.len(), frames, rate, sum.len(), want
            ),
        ));
    }
    let (mut peak, mut sq) = (0.0f64, 0.0f64);
    for (s, m) in sum.iter().zip(&master) {
        for (&a, &b) in s.iter().zip(m) {
            let r = a - args.gain * b as f64;
            // NaN counts as an infinite residual (f64::max would skip it).
            peak = if r.is_nan() {
                f64::INFINITY
            } else {
                peak.max(r.abs())
            };
            sq += r * r;
        }
    }
    let rms = (sq / (want * sum.len()).max(1) as f64).sqrt();
    let pass = dbfs(peak) <= args.max_dbfs;
    out(format!(
        "residual peak {:.1} dBFS, rms {:.1} dBFS over {} stems: {} (limit {:.1} dBFS)",
        dbfs(peak),
        dbfs(rms),
        args.stems.len(),
        if pass { "PASS" } else { "FAIL" },
        args.max_dbfs
    ));
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
