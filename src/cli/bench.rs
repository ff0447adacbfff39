//! `stemkit bench`: real-time factor and peak memory of `stemkit separate` on synthetic stereo
//! 48 kHz audio. The separation runs as a child process (the real CLI), so the peak resident
//! memory reported is that of `separate` alone, from the kernel's accounting.

use super::{out, CliResult};
use crate::audio::encode::{SampleFormat, WavSink};
use crate::demo::{render, Part};
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Seconds of stereo 48 kHz audio to separate.
    #[arg(long, default_value_t = 180.0)]
    seconds: f64,
    /// Separate a catalog of this many tracks of --seconds each (in nested folders) instead of
    /// one file, then run it again (every track already done) and time that rerun too.
    #[arg(long, default_value_t = 1)]
    tracks: usize,
    /// Work folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Time this many runs (one track only) and report the median and range.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Also time `--stems hpr` with the same other arguments, alternating run by run, and report
    /// the ratio of the medians, of wall-clock and of CPU time (the five-stem cost target is
    /// ≤ 2×).
    #[arg(long)]
    against_hpr: bool,
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
    if args.tracks == 0 || args.tracks > 100_000 {
        return Err(Error::param(
            "--tracks",
            format!("expected 1 to 100000, got {}", args.tracks),
        ));
    }
    if args.rounds == 0 || args.rounds > 100 {
        return Err(Error::param(
            "--rounds",
            format!("expected 1 to 100, got {}", args.rounds),
        ));
    }
    if args.tracks > 1 && (args.rounds > 1 || args.against_hpr) {
        return Err(Error::param(
            "--rounds",
            "--rounds and --against-hpr time one track: leave out --tracks",
        ));
    }
    let frames = (args.seconds * 48000.0).round() as u64;
    let input = if args.tracks == 1 {
        let input = dir.join("bench_mix.wav");
        render_file(&input, 0, frames)?;
        input
    } else {
        // A catalog: ten tracks per album folder, each a different stretch of the mix.
        let catalog = dir.join("catalog");
        for i in 0..args.tracks {
            let path = catalog
                .join(format!("album {:03}", i / 10))
                .join(format!("track {i:05}.wav"));
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .map_err(|e| Error::io(&path, e))?;
            render_file(&path, i as u64 * frames, frames)?;
        }
        catalog
    };

    let exe = std::env::current_exe().map_err(|e| Error::io("stemkit", e))?;
    let stems_dir = dir.join("stems");
    let what = if args.separate_args.is_empty() {
        vec![
            "--stems".to_string(),
            "hpr".into(),
            "--device".into(),
            "cpu".into(),
        ]
    } else {
        args.separate_args.clone()
    };
    // One timed run of `separate` with `extra`, into an emptied stems folder with `clear` (so
    // a track finished by an earlier run is not skipped as already done).
    let run = |extra: &[String], clear: bool| -> Result<(f64, Option<f64>)> {
        if clear && stems_dir.exists() {
            std::fs::remove_dir_all(&stems_dir).map_err(|e| Error::io(&stems_dir, e))?;
        }
        let mut cmd = Command::new(&exe);
        cmd.arg("separate")
            .arg("-o")
            .arg(&stems_dir)
            .arg("--quiet")
            .args(extra);
        cmd.arg("--").arg(&input);
        let cpu_before = child_cpu_seconds();
        let started = Instant::now();
        let status = cmd.status().map_err(|e| Error::io("stemkit separate", e))?;
        let wall = started.elapsed().as_secs_f64();
        // Children are waited for one at a time: the difference is this run's.
        let cpu = cpu_before
            .zip(child_cpu_seconds())
            .map(|(before, after)| after - before);
        if !status.success() {
            return Err(Error::io(
                "stemkit separate",
                std::io::Error::other(format!("exited with {status}")),
            ));
        }
        Ok((wall, cpu))
    };
    let hpr_args = with_hpr(&what);
    let (mut walls, mut hpr_walls) = (Vec::new(), Vec::new());
    let (mut cpus, mut hpr_cpus) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        if args.against_hpr {
            let (wall, cpu) = run(&hpr_args, true)?;
            hpr_walls.push(wall);
            hpr_cpus.extend(cpu);
        }
        let (wall, cpu) = run(&what, true)?;
        walls.push(wall);
        cpus.extend(cpu);
    }
    let peak = peak_child_rss_mib();
    let audio = args.seconds * args.tracks as f64;
    let source = if args.tracks == 1 {
        format!("{:.1} s of stereo 48 kHz", args.seconds)
    } else {
        format!(
            "a catalog of {} tracks × {:.1} s ({:.2} h) of stereo 48 kHz",
            args.tracks,
            args.seconds,
            audio / 3600.0
        )
    };
    let line = |what: &[String], walls: &[f64], cpus: &[f64]| {
        let m = median(walls);
        let spread = if walls.len() > 1 {
            let (lo, hi) = walls
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(l, h), &w| (l.min(w), h.max(w)));
            format!(" (median of {}, {lo:.3}–{hi:.3} s)", walls.len())
        } else {
            String::new()
        };
        // CPU time (user + system) moves far less from run to run than the wall clock on a
        // shared machine.
        let cpu = if cpus.len() == walls.len() {
            format!(", CPU time {:.3} s", median(cpus))
        } else {
            String::new()
        };
        format!(
            "stemkit separate {}: {source} in {m:.3} s{spread} = {:.1}x real time{cpu}",
            what.join(" "),
            audio / m
        )
    };
    let rss = peak.map_or("unknown".to_string(), |m| format!("{m:.0} MiB"));
    out(format!("{}; peak RSS {rss}", line(&what, &walls, &cpus)));
    if args.against_hpr {
        out(line(&hpr_args, &hpr_walls, &hpr_cpus));
        let per_round: Vec<f64> = walls.iter().zip(&hpr_walls).map(|(w, h)| w / h).collect();
        out(format!(
            "ratio: {:.2}x the time of --stems hpr (medians; per round {})",
            median(&walls) / median(&hpr_walls),
            per_round
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        if cpus.len() == walls.len() && hpr_cpus.len() == hpr_walls.len() {
            out(format!(
                "CPU-time ratio: {:.2}x (medians)",
                median(&cpus) / median(&hpr_cpus)
            ));
        }
    }
    if args.tracks > 1 {
        let (again, _) = run(&what, false)?;
        out(format!(
            "rerun of the finished catalog ({} tracks, all already done): {again:.3} s",
            args.tracks
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `args` with `--stems hpr` in place of any `--stems` it has.
fn with_hpr(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--stems" {
            skip = true;
        } else if !a.starts_with("--stems=") {
            out.push(a.clone());
        }
    }
    out.extend(["--stems".to_string(), "hpr".to_string()]);
    out
}

/// Median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Renders `frames` of the synthetic mix from frame `from` into a 24-bit stereo WAV, in chunks
/// (an hour of audio needs no hour of memory).
fn render_file(path: &std::path::Path, from: u64, frames: u64) -> Result<()> {
    let mut sink = WavSink::create(path, 48000, 2, SampleFormat::Int24, 1)?;
    let mut chunk = vec![Vec::new(), Vec::new()];
    let mut at = 0u64;
    while at < frames {
        let n = (frames - at).min(1 << 18) as usize;
        chunk
            .iter_mut()
            .for_each(|c: &mut Vec<f32>| c.resize(n, 0.0));
        render(Part::Mix, 48000, from + at, &mut chunk);
        sink.write(&mut chunk)?;
        at += n as u64;
    }
    sink.finish(true)?;
    Ok(())
}

/// Resource usage of all waited-for children so far.
#[cfg(unix)]
fn child_usage() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we pass; RUSAGE_CHILDREN is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    // SAFETY: initialised by the successful call.
    (rc == 0).then(|| unsafe { usage.assume_init() })
}

/// User plus system CPU time of all waited-for children so far, in seconds.
fn child_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        child_usage().map(|u| secs(u.ru_utime) + secs(u.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

/// Largest resident set of any waited-for child, in MiB (Linux reports KiB).
fn peak_child_rss_mib() -> Option<f64> {
    #[cfg(unix)]
    {
        child_usage().map(|u| u.ru_maxrss as f64 / 1024.0)
    }
    #[cfg(not(unix))]
    None
}
