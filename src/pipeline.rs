//! One track, end to end: decode → resample to the delivery rate → separate (streaming, in
//! blocks) → one common gain if integer output would clip → encode every stem, each to a temporary
//! name renamed when complete → null test of Σ stems against the master at the output depth.

use crate::audio::decode::AudioReader;
use crate::audio::encode::{SampleFormat, WavSink};
use crate::audio::naming::render_name;
use crate::audio::resample::StreamResampler;
use crate::error::{Error, Result};
use crate::separator::Separators;
use crate::spill::SpillBuffer;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Output rate: a fixed rate, or the source's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRate {
    /// Resample every track to this rate.
    Fixed(u32),
    /// Keep each track's rate.
    Source,
}

impl OutputRate {
    /// Parses `48000`, `44100`, `48k`, `44.1k` or `source`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        if t == "source" {
            return Ok(OutputRate::Source);
        }
        let hz = match t.strip_suffix('k') {
            Some(k) => k.parse::<f64>().ok().map(|v| (v * 1000.0).round()),
            None => t.parse::<f64>().ok(),
        };
        match hz {
            Some(hz) if (8000.0..=192000.0).contains(&hz) && hz.fract() == 0.0 => {
                Ok(OutputRate::Fixed(hz as u32))
            }
            _ => Err(Error::param(
                "--rate",
                format!("expected 8000 to 192000 Hz (48000, 44.1k, …) or source, got {text:?}"),
            )),
        }
    }
}

/// How stems are delivered.
#[derive(Clone, Debug)]
pub struct DeliveryOptions {
    /// Output sample format (default 24-bit PCM).
    pub format: SampleFormat,
    /// Output rate (default 48 kHz).
    pub rate: OutputRate,
    /// File name template (see `audio::naming`).
    pub name_template: String,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            format: SampleFormat::Int24,
            rate: OutputRate::Fixed(48000),
            name_template: crate::audio::naming::DEFAULT_TEMPLATE.to_string(),
        }
    }
}

/// One delivered stem file.
#[derive(Clone, Debug, Serialize)]
pub struct StemReport {
    /// Stem name (`harmonic`, `drums`, …).
    pub stem: String,
    /// Path of the delivered file.
    pub path: PathBuf,
    /// Sample peak of the delivered file, dBFS.
    pub peak_dbfs: f64,
}

/// What happened to one track.
#[derive(Clone, Debug, Serialize)]
pub struct TrackReport {
    /// The input file.
    pub input: PathBuf,
    /// Decoded format, as the decoder names it.
    pub format: String,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Input sample rate.
    pub rate_in: u32,
    /// Output sample rate.
    pub rate_out: u32,
    /// Channel count (in and out).
    pub channels: usize,
    /// Output depth label (`24b`, `16b`, `32f`).
    pub depth: String,
    /// Output frames per channel.
    pub frames_out: u64,
    /// Delivered stems.
    pub stems: Vec<StemReport>,
    /// Common gain applied to every stem (1 unless integer output would have clipped).
    pub gain: f64,
    /// Peak of Σ stems − gain · master at the output rate and depth, dBFS.
    pub null_peak_dbfs: f64,
    /// RMS of the same residual, dBFS.
    pub null_rms_dbfs: f64,
    /// Wall time for the track, seconds.
    pub seconds: f64,
    /// Audio seconds per wall second.
    pub realtime_factor: f64,
    /// Warnings (clipping gain applied, extension mismatch, …).
    pub warnings: Vec<String>,
}

/// Frames decoded per read.
const READ_FRAMES: usize = 1 << 16;

/// 20·log10(x), floored at −400 dB for silence.
pub fn dbfs(x: f64) -> f64 {
    if x > 0.0 {
        20.0 * x.log10()
    } else {
        -400.0
    }
}

/// The file stem used as `{track}` in names.
pub fn track_name(input: &Path) -> String {
    input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "track".into())
}

/// Separates one file into `out_dir` and returns its report. On error nothing is left under a
/// final output name (temporary files are removed).
///
/// `progress` is called with the number of input frames decoded so far.
pub fn separate_file(
    separators: &Separators,
    input: &Path,
    out_dir: &Path,
    delivery: &DeliveryOptions,
    mut progress: impl FnMut(u64),
) -> Result<TrackReport> {
    let started = Instant::now();
    let mut reader = AudioReader::open(input)?;
    let info = reader.info().clone();
    let channels = info.channels;
    let rate_in = info.sample_rate;
    let rate_out = match delivery.rate {
        OutputRate::Fixed(r) => r,
        OutputRate::Source => rate_in,
    };
    let separator = separators.get(rate_out)?;
    let n_fft = separator.params().stft.n_fft;
    if let Some(frames) = info.frames {
        check_length(input, frames, n_fft)?;
    }
    let mut warnings = Vec::new();
    if reader.extension_mismatch() {
        warnings.push(format!(
            "extension does not match the content; decoded as {}",
            info.format
        ));
    }

    // Names first, so a bad template fails before any work.
    let stems = separator.stems().to_vec();
    let track = track_name(input);
    let names = stems
        .iter()
        .map(|s| {
            render_name(
                &delivery.name_template,
                &track,
                s.name(),
                rate_out,
                delivery.format,
            )
        })
        .collect::<Result<Vec<_>>>()?;

    // Pass 1: decode → resample → separate, spilling stems and the resampled master.
    let spill_dir = out_dir;
    let mut master = SpillBuffer::new(spill_dir, channels)?;
    let mut stem_bufs = stems
        .iter()
        .map(|_| SpillBuffer::new(spill_dir, channels))
        .collect::<Result<Vec<_>>>()?;
    let mut resampler = StreamResampler::new(rate_in, rate_out, channels)?;
    let mut stream = separator.stream(channels);
    let mut decoded: Vec<Vec<f32>> = vec![Vec::with_capacity(READ_FRAMES); channels];
    let mut resampled: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let mut stem_out = separator.empty_output(channels);
    let mut frames_in: u64 = 0;
    let mut peaks = vec![0.0f32; stems.len()];
    let mut flush = |resampled: &mut Vec<Vec<f32>>,
                     stem_out: &mut Vec<Vec<Vec<f32>>>,
                     master: &mut SpillBuffer,
                     stem_bufs: &mut [SpillBuffer]|
     -> Result<()> {
        master.append(resampled)?;
        for ((buf, out), peak) in stem_bufs
            .iter_mut()
            .zip(stem_out.iter_mut())
            .zip(peaks.iter_mut())
        {
            *peak = out.iter().flatten().fold(*peak, |m, v| m.max(v.abs()));
            buf.append(out)?;
            out.iter_mut().for_each(Vec::clear);
        }
        resampled.iter_mut().for_each(Vec::clear);
        Ok(())
    };
    loop {
        decoded.iter_mut().for_each(Vec::clear);
        let n = reader.read(&mut decoded, READ_FRAMES)?;
        if n == 0 {
            break;
        }
        frames_in += n as u64;
        progress(frames_in);
        resampler.push(&decoded, &mut resampled)?;
        stream.push(&resampled, &mut stem_out)?;
        flush(&mut resampled, &mut stem_out, &mut master, &mut stem_bufs)?;
    }
    check_length(input, frames_in, n_fft)?;
    resampler.finish(&mut resampled)?;
    stream.push(&resampled, &mut stem_out)?;
    stream.finish(&mut stem_out)?;
    flush(&mut resampled, &mut stem_out, &mut master, &mut stem_bufs)?;
    let frames_out = master.frames();

    // One common gain if any stem would clip at an integer depth; never per stem.
    let mut gain = 1.0f32;
    let peak = peaks.iter().fold(0.0f32, |m, &p| m.max(p));
    if let Some(max) = delivery.format.max_amplitude() {
        if peak > max {
            gain = max / peak;
            warnings.push(format!(
                "stems would clip at {} (peak {:+.2} dBFS): applied one common gain of {:.2} dB to every stem",
                delivery.format.label(),
                dbfs(peak as f64),
                dbfs(gain as f64)
            ));
        }
    }

    // Pass 2: encode every stem (in parallel), summing the decoded-back values for the null test.
    let mut sinks = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            WavSink::create(
                &out_dir.join(name),
                rate_out,
                channels,
                delivery.format,
                0x5EED_0000 + i as u64,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut readers: Vec<_> = stem_bufs
        .into_iter()
        .map(SpillBuffer::into_reader)
        .collect::<Result<_>>()?;
    let mut master_reader = master.into_reader()?;
    let mut chunks: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); channels]; stems.len()];
    let mut master_chunk: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let (mut null_peak, mut null_sq) = (0.0f64, 0.0f64);
    let mut out_peaks = vec![0.0f32; stems.len()];
    loop {
        let n = master_reader.read(&mut master_chunk, READ_FRAMES)?;
        if n == 0 {
            break;
        }
        sinks
            .par_iter_mut()
            .zip(readers.par_iter_mut())
            .zip(chunks.par_iter_mut())
            .zip(out_peaks.par_iter_mut())
            .try_for_each(|(((sink, reader), chunk), peak)| -> Result<()> {
                reader.read(chunk, n)?;
                if gain != 1.0 {
                    chunk.iter_mut().flatten().for_each(|v| *v *= gain);
                }
                sink.write(chunk)?;
                *peak = chunk.iter().flatten().fold(*peak, |m, v| m.max(v.abs()));
                Ok(())
            })?;
        for ch in 0..channels {
            for i in 0..n {
                let sum: f64 = chunks.iter().map(|c| c[ch][i] as f64).sum();
                let r = sum - gain as f64 * master_chunk[ch][i] as f64;
                null_peak = null_peak.max(r.abs());
                null_sq += r * r;
            }
        }
    }
    let mut stem_reports = Vec::with_capacity(stems.len());
    for ((sink, stem), peak) in sinks.into_iter().zip(&stems).zip(&out_peaks) {
        let path = sink.finish(true)?;
        stem_reports.push(StemReport {
            stem: stem.name().to_string(),
            path,
            peak_dbfs: dbfs(*peak as f64),
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let duration_s = frames_in as f64 / rate_in as f64;
    let samples = (frames_out * channels as u64).max(1) as f64;
    Ok(TrackReport {
        input: input.to_path_buf(),
        format: info.format,
        duration_s,
        rate_in,
        rate_out,
        channels,
        depth: delivery.format.label().to_string(),
        frames_out,
        stems: stem_reports,
        gain: gain as f64,
        null_peak_dbfs: dbfs(null_peak),
        null_rms_dbfs: dbfs((null_sq / samples).sqrt()),
        seconds,
        realtime_factor: duration_s / seconds.max(1e-9),
        warnings,
    })
}

fn check_length(input: &Path, frames: u64, n_fft: usize) -> Result<()> {
    if frames == 0 {
        return Err(Error::bad_input(
            input,
            "no audio samples (zero-length audio)",
        ));
    }
    if frames < n_fft as u64 {
        return Err(Error::bad_input(
            input,
            format!("audio is {frames} samples long, shorter than one STFT frame (n_fft {n_fft})"),
        ));
    }
    Ok(())
}
