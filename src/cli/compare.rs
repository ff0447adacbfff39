//! `stemkit compare`: the GPU and the CPU engines on the same audio, stem by stem. A user
//! feature for validating a new GPU, driver or backend, not only a test: both engines stream the
//! input in lockstep (no whole track in memory), and their stems are compared as they arrive.

use super::{out, CliResult, SeparationArgs};
use crate::audio::decode::AudioReader;
use crate::demo::{render, Part};
use crate::engine::{DeviceChoice, Engine, Engines};
use crate::error::{Error, Result};
use clap::Args;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// Audio files to compare on (decoded at their own rate; no resampling).
    #[arg(required_unless_present = "demo")]
    inputs: Vec<PathBuf>,
    /// Compare on the built-in synthetic mix of this many seconds (stereo 48 kHz) instead.
    #[arg(long, num_args = 0..=1, default_missing_value = "10")]
    demo: Option<f64>,
    #[command(flatten)]
    separation: SeparationArgs,
    /// GPU adapter: an index or part of a name, as `stemkit devices` lists them.
    #[arg(long)]
    adapter: Option<String>,
    /// Frames per GPU chunk (default 2048, fewer where the device's limits require; with the
    /// spatial filter on stereo input, whole segments of 1024 frames at n_fft 2048).
    #[arg(long = "gpu-chunk-frames")]
    gpu_chunk_frames: Option<usize>,
    /// Lowest acceptable SNR of the GPU's stems against the CPU's, in dB.
    #[arg(long = "min-snr", default_value_t = 100.0)]
    min_snr: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One stem's agreement.
#[derive(Clone, Debug, Serialize)]
struct StemComparison {
    stem: String,
    /// Largest |gpu − cpu| over every sample of every channel.
    max_abs_diff: f64,
    /// 10·log10(E_cpu / E_diff), E_cpu floored at 1e-6 of the input's energy so a near-silent
    /// stem is judged against the signal; infinite when identical.
    snr_db: f64,
    pass: bool,
}

/// One input's comparison.
#[derive(Clone, Debug, Serialize)]
struct Comparison {
    input: String,
    device: String,
    sample_rate: u32,
    channels: usize,
    duration_s: f64,
    cpu_seconds: f64,
    gpu_seconds: f64,
    stems: Vec<StemComparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An opened input: its source, rate and channel count.
type Opened = (Source, u32, usize);

/// Where the audio comes from.
enum Source {
    File(AudioReader),
    Demo { frames: u64, at: u64 },
}

impl Source {
    fn read(&mut self, out: &mut [Vec<f32>], max: usize) -> Result<usize> {
        match self {
            Source::File(r) => r.read(out, max),
            Source::Demo { frames, at } => {
                let n = (*frames - *at).min(max as u64) as usize;
                let mut chunk = vec![vec![0.0f32; n]; out.len()];
                render(Part::Mix, 48000, *at, &mut chunk);
                for (o, c) in out.iter_mut().zip(chunk) {
                    o.extend(c);
                }
                *at += n as u64;
                Ok(n)
            }
        }
    }
}

/// Running agreement of one stem, over the samples both engines have produced.
#[derive(Default)]
struct Accumulator {
    max_abs: f64,
    ref_energy: f64,
    err_energy: f64,
    /// Samples produced but not yet matched, per channel: (cpu, gpu).
    pending: Vec<(VecDeque<f32>, VecDeque<f32>)>,
}

impl Accumulator {
    fn absorb(&mut self, cpu: &mut [Vec<f32>], gpu: &mut [Vec<f32>]) {
        self.pending
            .resize_with(cpu.len(), || (VecDeque::new(), VecDeque::new()));
        for ((c, g), (pc, pg)) in cpu.iter_mut().zip(gpu.iter_mut()).zip(&mut self.pending) {
            pc.extend(c.drain(..));
            pg.extend(g.drain(..));
            let n = pc.len().min(pg.len());
            for (a, b) in pc.drain(..n).zip(pg.drain(..n)) {
                let d = b as f64 - a as f64;
                self.max_abs = self.max_abs.max(d.abs());
                self.ref_energy += (a as f64) * (a as f64);
                self.err_energy += d * d;
            }
        }
    }
}

fn compare_one(
    name: &str,
    engines: &Engines,
    source: &mut Source,
    sample_rate: u32,
    channels: usize,
    min_snr: f64,
) -> Result<(Vec<StemComparison>, f64, Duration, Duration, u64)> {
    let gpu: Engine = engines.get(sample_rate)?;
    let cpu: Engine = engines.cpu_engine(sample_rate)?;
    let stems = cpu.stems();
    let mut gpu_stream = gpu.stream(channels);
    let mut cpu_stream = cpu.stream(channels);
    let mut acc: Vec<Accumulator> = stems.iter().map(|_| Accumulator::default()).collect();
    let (mut t_cpu, mut t_gpu) = (Duration::ZERO, Duration::ZERO);
    let mut input_energy = 0.0f64;
    let mut frames = 0u64;
    let mut chunk = vec![Vec::new(); channels];
    let mut run = |chunk: Option<&[Vec<f32>]>,
                   gpu_stream: &mut crate::engine::EngineStream<'_>,
                   cpu_stream: &mut crate::engine::EngineStream<'_>,
                   acc: &mut [Accumulator]|
     -> Result<()> {
        let mut g_out = gpu.empty_output(channels);
        let mut c_out = cpu.empty_output(channels);
        if let Some(chunk) = chunk {
            let t = Instant::now();
            gpu_stream.push(chunk, &mut g_out)?;
            t_gpu += t.elapsed();
            let t = Instant::now();
            cpu_stream.push(chunk, &mut c_out)?;
            t_cpu += t.elapsed();
        }
        for ((a, c), g) in acc.iter_mut().zip(&mut c_out).zip(&mut g_out) {
            a.absorb(c, g);
        }
        Ok(())
    };
    loop {
        chunk.iter_mut().for_each(Vec::clear);
        let n = source.read(&mut chunk, 1 << 16)?;
        if n == 0 {
            break;
        }
        frames += n as u64;
        input_energy += chunk
            .iter()
            .flatten()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>();
        run(Some(&chunk), &mut gpu_stream, &mut cpu_stream, &mut acc)?;
    }
    let n_fft = engines.spec().stft.n_fft as u64;
    if frames < n_fft {
        return Err(Error::bad_input(
            name,
            format!("{frames} samples, shorter than one STFT frame (n_fft {n_fft})"),
        ));
    }
    // Flush both streams and match their last samples.
    let mut g_out = gpu.empty_output(channels);
    let mut c_out = cpu.empty_output(channels);
    let t = Instant::now();
    gpu_stream.finish(&mut g_out)?;
    t_gpu += t.elapsed();
    let t = Instant::now();
    cpu_stream.finish(&mut c_out)?;
    t_cpu += t.elapsed();
    for ((a, c), g) in acc.iter_mut().zip(&mut c_out).zip(&mut g_out) {
        a.absorb(c, g);
        if a.pending
            .iter()
            .any(|(c, g)| !c.is_empty() || !g.is_empty())
        {
            return Err(Error::Gpu(
                "the GPU and CPU engines produced different numbers of samples".into(),
            ));
        }
    }
    let floor = input_energy * 1e-6;
    let results = stems
        .iter()
        .zip(&acc)
        .map(|(stem, a)| {
            let snr_db = if a.err_energy == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (a.ref_energy.max(floor).max(1e-30) / a.err_energy).log10()
            };
            StemComparison {
                stem: stem.name().to_string(),
                max_abs_diff: a.max_abs,
                snr_db,
                pass: snr_db >= min_snr,
            }
        })
        .collect();
    Ok((results, input_energy, t_cpu, t_gpu, frames))
}

pub(super) fn run(args: CompareArgs) -> CliResult {
    let spec = args.separation.spec()?;
    if args.gpu_chunk_frames == Some(0) {
        return Err(Error::param(
            "--gpu-chunk-frames",
            "expected at least 1, got 0",
        ));
    }
    if !args.min_snr.is_finite() {
        return Err(Error::param(
            "--min-snr",
            format!("expected a number of dB, got {}", args.min_snr),
        ));
    }
    let adapter = super::separate::parse_adapter(args.adapter.as_deref());
    let engines = Engines::new(
        spec,
        DeviceChoice::Gpu,
        adapter,
        args.gpu_chunk_frames,
        false,
    )?;
    let mut jobs: Vec<(String, Result<Opened>)> = Vec::new();
    if let Some(seconds) = args.demo {
        if !(0.1..=3600.0).contains(&seconds) {
            return Err(Error::param(
                "--demo",
                format!("expected 0.1 to 3600 seconds, got {seconds}"),
            ));
        }
        let frames = (seconds * 48000.0).round() as u64;
        jobs.push((
            format!("demo mix ({seconds} s)"),
            Ok((Source::Demo { frames, at: 0 }, 48000, 2)),
        ));
    }
    for input in &args.inputs {
        let opened = AudioReader::open(input).map(|r| {
            let (rate, ch) = (r.info().sample_rate, r.info().channels);
            (Source::File(r), rate, ch)
        });
        jobs.push((input.display().to_string(), opened));
    }
    let mut results = Vec::new();
    let mut all_pass = true;
    for (name, job) in jobs {
        let mut comparison = Comparison {
            input: name.clone(),
            device: engines.device_name(),
            sample_rate: 0,
            channels: 0,
            duration_s: 0.0,
            cpu_seconds: 0.0,
            gpu_seconds: 0.0,
            stems: Vec::new(),
            error: None,
        };
        let outcome = job.and_then(|(mut source, rate, channels)| {
            comparison.sample_rate = rate;
            comparison.channels = channels;
            compare_one(&name, &engines, &mut source, rate, channels, args.min_snr)
        });
        match outcome {
            Ok((stems, _, t_cpu, t_gpu, frames)) => {
                comparison.duration_s = frames as f64 / comparison.sample_rate as f64;
                comparison.cpu_seconds = t_cpu.as_secs_f64();
                comparison.gpu_seconds = t_gpu.as_secs_f64();
                all_pass &= stems.iter().all(|s| s.pass);
                comparison.stems = stems;
            }
            Err(e) => {
                all_pass = false;
                let text = match e {
                    Error::BadInput { .. } | Error::Unsupported { .. } | Error::Io { .. } => {
                        e.to_string()
                    }
                    e => format!("{name}: {e}"),
                };
                if !args.json {
                    eprintln!("stemkit: {text}");
                }
                comparison.error = Some(text);
            }
        }
        if !args.json && comparison.error.is_none() {
            print_table(&comparison, args.min_snr);
            if engines
                .spec()
                .resolve(48000)
                .is_ok_and(|p| p.hpss.power.is_infinite())
                && comparison.stems.iter().any(|s| !s.pass)
            {
                out("  note: hard masks (--power inf) move a near-tie bin wholly between stems, so the \
                     FFTs' last-bit differences can flip a few bins; expect 80-100 dB there");
            }
        }
        results.push(comparison);
    }
    if args.json {
        // JSON has no infinity: identical stems report snr_db as null.
        out(serde_json::to_string_pretty(&results).expect("comparisons serialise"));
    }
    Ok(if all_pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(c: &Comparison, min_snr: f64) {
    out(format!(
        "{}: {:.2} s, {} ch at {} Hz on {}",
        c.input, c.duration_s, c.channels, c.sample_rate, c.device
    ));
    out(format!(
        "  time: gpu {:.3} s ({:.0}x real time), cpu {:.3} s ({:.0}x real time)",
        c.gpu_seconds,
        c.duration_s / c.gpu_seconds.max(1e-9),
        c.cpu_seconds,
        c.duration_s / c.cpu_seconds.max(1e-9)
    ));
    out(format!(
        "  {:<10} {:>14} {:>12}",
        "stem", "max |gpu-cpu|", "SNR dB"
    ));
    for s in &c.stems {
        out(format!(
            "  {:<10} {:>14.3e} {:>12} {}",
            s.stem,
            s.max_abs_diff,
            if s.snr_db.is_infinite() {
                "identical".to_string()
            } else {
                format!("{:.1}", s.snr_db)
            },
            if s.pass {
                String::new()
            } else {
                format!("BELOW {min_snr} dB")
            }
        ));
    }
}
