//! `stemkit bench`: real-time factor and peak memory of `stemkit separate` on synthetic stereo
//! 48 kHz audio. The separation runs as a child process (the real CLI), so the peak resident
//! memory reported is that of `separate` alone, from the kernel's accounting.

use super::{out, CliResult};
use crate::audio::encode::{SampleFormat, WavSink};
use crate::demo::{render, Part};
use crate::error::Error;
use clap::Args;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Seconds of stereo 48 kHz audio to separate.
    #[arg(long, default_value_t = 180.0)]
    seconds: f64,
    /// Work folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Extra arguments passed to `separate` (default: --stems hpr --device cpu).
    #[arg(last = true)]
    separate_args: Vec<String>,
}

pub(super) fn run(args: BenchArgs) -> CliResult {
    if !(args.seconds >= 1.0 && args.seconds <= 4.0 * 3600.0) {
        return Err(Error::param(
            "--seconds",
            format!("expected 1 to 14400, got {}", args.seconds),
        ));
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            tmp.path().to_path_buf()
        }
    };
    // Render the input in chunks, so an hour of audio needs no hour of memory here either.
    let input = dir.join("bench_mix.wav");
    let frames = (args.seconds * 48000.0).round() as u64;
    let mut sink = WavSink::create(&input, 48000, 2, SampleFormat::Int24, 1)?;
    let mut chunk = vec![Vec::new(), Vec::new()];
    let mut at = 0u64;
    while at < frames {
        let n = (frames - at).min(1 << 18) as usize;
        chunk
            .iter_mut()
            .for_each(|c: &mut Vec<f32>| c.resize(n, 0.0));
        render(Part::Mix, 48000, at, &mut chunk);
        sink.write(&mut chunk)?;
        at += n as u64;
    }
    sink.finish(true)?;

    let exe = std::env::current_exe().map_err(|e| Error::io("stemkit", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("separate")
        .arg(&input)
        .arg("-o")
        .arg(dir.join("stems"))
        .arg("--quiet");
    if args.separate_args.is_empty() {
        cmd.args(["--stems", "hpr", "--device", "cpu"]);
    } else {
        cmd.args(&args.separate_args);
    }
    let started = Instant::now();
    let status = cmd.status().map_err(|e| Error::io("stemkit separate", e))?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(Error::io(
            "stemkit separate",
            std::io::Error::other(format!("exited with {status}")),
        ));
    }
    let peak = peak_child_rss_mib();
    out(format!(
        "stemkit separate {}: {:.1} s of stereo 48 kHz in {:.3} s = {:.1}x real time; peak RSS {}",
        if args.separate_args.is_empty() {
            "--stems hpr --device cpu".to_string()
        } else {
            args.separate_args.join(" ")
        },
        args.seconds,
        wall,
        args.seconds / wall,
        peak.map_or("unknown".to_string(), |m| format!("{m:.0} MiB")),
    ));
    Ok(ExitCode::SUCCESS)
}

/// Largest resident set of any waited-for child, in MiB (Linux reports KiB).
fn peak_child_rss_mib() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct we pass; RUSAGE_CHILDREN is always valid.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
        if rc == 0 {
            // SAFETY: initialised by the successful call above.
            let kib = unsafe { usage.assume_init() }.ru_maxrss as f64;
            return Some(kib / 1024.0);
        }
        None
    }
    #[cfg(not(unix))]
    None
}
