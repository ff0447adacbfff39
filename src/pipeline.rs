//! One track, end to end: decode → resample to the delivery rate → separate (streaming, in
//! blocks) → encode every stem to a temporary name, renamed when complete → null test of Σ stems
//! against the master at the output depth. One common gain if integer output would clip.

use crate::audio::decode::{AudioReader, InputInfo};
use crate::audio::encode::{SampleFormat, WavSink};
use crate::audio::naming::render_name;
use crate::audio::resample::StreamResampler;
use crate::engine::Engines;
use crate::error::{Error, Result};
use crate::stems::Stem;
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
    /// Measure EBU R128 loudness and true peak of the master and every stem for the report
    /// (a fifth to a third of the CPU path's time; `--no-loudness` turns it off).
    pub loudness: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            format: SampleFormat::Int24,
            rate: OutputRate::Fixed(48000),
            name_template: crate::audio::naming::DEFAULT_TEMPLATE.to_string(),
            loudness: true,
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
    /// EBU R128 integrated loudness, LUFS (null for silence or when not measured).
    #[serde(serialize_with = "finite_or_null")]
    pub integrated_lufs: f64,
    /// EBU R128 true peak (4× oversampled), dBTP, over all channels (null when not measured).
    #[serde(serialize_with = "finite_or_null")]
    pub true_peak_dbtp: f64,
}

/// A float as JSON, with non-finite values (silence's −inf LUFS) as `null`.
fn finite_or_null<S: serde::Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

pub use crate::audio::loudness::LoudnessMeter;

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
    /// EBU R128 integrated loudness of the master (at the output rate), LUFS.
    #[serde(serialize_with = "finite_or_null")]
    pub master_lufs: f64,
    /// EBU R128 true peak of the master, dBTP.
    #[serde(serialize_with = "finite_or_null")]
    pub master_true_peak_dbtp: f64,
    /// Peak of Σ stems − gain · master at the output rate and depth, dBFS.
    pub null_peak_dbfs: f64,
    /// RMS of the same residual, dBFS.
    pub null_rms_dbfs: f64,
    /// Wall time for the track, seconds.
    pub seconds: f64,
    /// Audio seconds per wall second.
    pub realtime_factor: f64,
    /// Device that separated this track (`cpu` or `gpu: <adapter>`).
    pub device: String,
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
/// Decode, resampling, separation and encoding run in one streaming pass, writing every stem to
/// a temporary file as its samples complete. If an integer depth would clip, that pass is thrown
/// away and the track is run again with one common gain on every stem (the separation is
/// deterministic, so the second pass differs only by that gain): hot masters cost two passes,
/// every other track one, and no track is ever held whole in memory.
///
/// `progress` is called with the number of input frames decoded so far.
pub fn separate_file(
    engines: &Engines,
    input: &Path,
    out_dir: &Path,
    delivery: &DeliveryOptions,
    mut progress: impl FnMut(u64),
) -> Result<TrackReport> {
    let started = Instant::now();
    let mut on_cpu = !engines.is_gpu();
    let mut device = engines.device_name();
    let mut fallback_note = None;
    // One pass over the track on the CPU or the chosen device, at a common gain.
    let mut pass_at = |on_cpu: bool, gain: f32| {
        run_pass(
            engines,
            on_cpu,
            input,
            out_dir,
            delivery,
            gain,
            &mut progress,
        )
    };
    let mut pass = match pass_at(on_cpu, 1.0) {
        // `--fallback cpu`: a GPU failure (device lost, out of memory) redoes the track on the
        // CPU; the failed pass's temporary files are already gone.
        Err(Error::Gpu(message)) if engines.fallback_cpu() => {
            on_cpu = true;
            device = "cpu".into();
            fallback_note = Some(format!("the GPU failed ({message}); redone on the CPU"));
            pass_at(on_cpu, 1.0)?
        }
        other => other?,
    };
    let mut gain = 1.0f32;
    let mut warnings: Vec<String> = fallback_note.into_iter().collect();
    warnings.extend(pass.warnings.iter().cloned());
    let peak = pass.peaks.iter().fold(0.0f32, |m, &p| m.max(p));
    if let Some(max) = delivery.format.max_amplitude() {
        if peak > max {
            gain = max / peak;
            warnings.push(format!(
                "stems would clip at {} (peak {:+.2} dBFS): applied one common gain of {:.2} dB to every stem",
                delivery.format.label(),
                dbfs(peak as f64),
                dbfs(gain as f64)
            ));
            drop(pass);
            pass = pass_at(on_cpu, gain)?;
        }
    }
    if !pass.null_peak.is_finite() {
        // Dropping the sinks removes their temporary files: nothing is delivered.
        return Err(Error::Internal {
            path: input.to_path_buf(),
            reason: "the stems hold non-finite samples (please report this track)".into(),
        });
    }
    // Finish (sync and rename) every stem at once, so the syncs overlap: one thread per stem
    // (they wait on the disk, not on a core; on the compute pool only as many as it has cores
    // would sync at a time).
    let paths = std::thread::scope(|scope| {
        let finishing: Vec<_> = pass
            .sinks
            .into_iter()
            .map(|sink| scope.spawn(move || sink.finish(true)))
            .collect();
        finishing
            .into_iter()
            .map(|h| h.join().expect("a stem's finishing thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let stems = paths
        .into_iter()
        .zip(&pass.stems)
        .zip(&pass.out_peaks)
        .zip(&pass.meters)
        .map(|(((path, stem), peak), meter)| {
            let (integrated_lufs, true_peak_dbtp) = meter
                .as_ref()
                .map_or((f64::NAN, f64::NAN), LoudnessMeter::result);
            StemReport {
                stem: stem.name().to_string(),
                path,
                peak_dbfs: dbfs(*peak as f64),
                integrated_lufs,
                true_peak_dbtp,
            }
        })
        .collect();
    let (master_lufs, master_true_peak_dbtp) = pass
        .master_meter
        .as_ref()
        .map_or((f64::NAN, f64::NAN), LoudnessMeter::result);
    let seconds = started.elapsed().as_secs_f64();
    let duration_s = pass.frames_in as f64 / pass.info.sample_rate as f64;
    let samples = (pass.frames_out * pass.info.channels as u64).max(1) as f64;
    Ok(TrackReport {
        input: input.to_path_buf(),
        format: pass.info.format.clone(),
        duration_s,
        rate_in: pass.info.sample_rate,
        rate_out: pass.rate_out,
        channels: pass.info.channels,
        depth: delivery.format.label().to_string(),
        frames_out: pass.frames_out,
        stems,
        gain: gain as f64,
        master_lufs,
        master_true_peak_dbtp,
        null_peak_dbfs: dbfs(pass.null_peak),
        null_rms_dbfs: dbfs((pass.null_sq / samples).sqrt()),
        seconds,
        realtime_factor: duration_s / seconds.max(1e-9),
        device,
        warnings,
    })
}

/// One streaming pass over a track, with its stems written to temporary files.
struct Pass {
    info: InputInfo,
    rate_out: u32,
    stems: Vec<Stem>,
    sinks: Vec<WavSink>,
    /// Peak of each stem after the gain, before quantisation (decides clipping).
    peaks: Vec<f32>,
    /// Peak of each stem as delivered.
    out_peaks: Vec<f32>,
    null_peak: f64,
    null_sq: f64,
    frames_in: u64,
    frames_out: u64,
    warnings: Vec<String>,
    /// The resampled master, waiting for its stem samples.
    master: Vec<Vec<f32>>,
    /// Loudness of each stem as delivered (when measured).
    meters: Vec<Option<LoudnessMeter>>,
    /// Loudness of the master at the output rate (when measured).
    master_meter: Option<LoudnessMeter>,
}

/// `on_cpu` forces the CPU engine (after a GPU failure with `--fallback cpu`).
fn run_pass(
    engines: &Engines,
    on_cpu: bool,
    input: &Path,
    out_dir: &Path,
    delivery: &DeliveryOptions,
    gain: f32,
    progress: &mut impl FnMut(u64),
) -> Result<Pass> {
    let reader = AudioReader::open(input)?;
    let info = reader.info().clone();
    let channels = info.channels;
    let rate_out = match delivery.rate {
        OutputRate::Fixed(r) => r,
        OutputRate::Source => info.sample_rate,
    };
    let separator = if on_cpu {
        engines.cpu_engine(rate_out)?
    } else {
        engines.get(rate_out)?
    };
    let n_fft = separator.params().stft.n_fft;
    if let Some(frames) = info.frames {
        check_length(input, frames, n_fft)?;
    }
    let mut warnings = Vec::new();
    if reader.extension_mismatch() {
        warnings.push(format!(
            "the extension does not match the content; decoded as {}",
            info.format
        ));
    }
    let stems = separator.stems().to_vec();
    let track = track_name(input);
    let input_canon = input.canonicalize().ok();
    let mut sinks = Vec::with_capacity(stems.len());
    for (i, stem) in stems.iter().enumerate() {
        let name = render_name(
            &delivery.name_template,
            &track,
            stem.name(),
            rate_out,
            delivery.format,
        )?;
        let path = out_dir.join(name);
        if input_canon.is_some() && path.canonicalize().ok() == input_canon {
            return Err(Error::UnsafeOutput {
                path,
                reason: "it is one of the inputs".into(),
            });
        }
        sinks.push(WavSink::create(
            &path,
            rate_out,
            channels,
            delivery.format,
            0x5EED_0000 + i as u64,
        )?);
    }

    let stems_len = stems.len();
    let mut pass = Pass {
        info,
        rate_out,
        peaks: vec![0.0; stems.len()],
        out_peaks: vec![0.0; stems.len()],
        stems,
        sinks,
        null_peak: 0.0,
        null_sq: 0.0,
        frames_in: 0,
        frames_out: 0,
        warnings,
        master: vec![Vec::new(); channels],
        meters: (0..stems_len)
            .map(|_| {
                delivery
                    .loudness
                    .then(|| LoudnessMeter::new(channels, rate_out))
                    .transpose()
            })
            .collect::<Result<_>>()?,
        master_meter: delivery
            .loudness
            .then(|| LoudnessMeter::new(channels, rate_out))
            .transpose()?,
    };
    // Software pipeline on the rayon pool: while chunk k is separated, chunk k+1 is decoded and
    // resampled and chunk k−1 is encoded and measured. `rayon::join` lets idle workers steal
    // the separation's parallel work, so the sequential ends overlap it without oversubscribing
    // the cores.
    let mut decoder = ChunkSource {
        resampler: StreamResampler::new(pass.info.sample_rate, rate_out, channels)?,
        reader,
        decoded: vec![Vec::with_capacity(READ_FRAMES); channels],
        frames_in: 0,
        finished: false,
        input,
        n_fft,
    };
    let mut stream = Some(separator.stream(channels));
    let mut current = decoder.next()?;
    let mut pending: Option<Delivery> = None;
    // Stem buffers come back from delivery emptied and are refilled: a block of five stereo
    // stems is 20 MB, and fresh allocations of that size cost page faults on every block.
    let mut spare: Vec<Vec<Vec<Vec<f32>>>> = Vec::new();
    while current.is_some() || pending.is_some() {
        progress(decoder.frames_in);
        let more = current.as_ref().is_some_and(|c| !c.last);
        let (next, (separated, delivered)) = rayon::join(
            || if more { decoder.next() } else { Ok(None) },
            || {
                rayon::join(
                    || -> Result<Option<Delivery>> {
                        let Some(chunk) = current.take() else {
                            return Ok(None);
                        };
                        let mut stems = spare
                            .pop()
                            .unwrap_or_else(|| separator.empty_output(channels));
                        let s = stream.as_mut().expect("stream open until the last chunk");
                        s.push(&chunk.samples, &mut stems)?;
                        if chunk.last {
                            stream.take().expect("stream open").finish(&mut stems)?;
                        }
                        Ok(Some(Delivery {
                            master: chunk.samples,
                            stems,
                        }))
                    },
                    || pending.take().map(|d| pass.deliver(d, gain)).transpose(),
                )
            },
        );
        spare.extend(delivered?);
        pending = separated?;
        current = next?;
    }
    pass.frames_in = decoder.frames_in;
    Ok(pass)
}

/// A resampled chunk of the master; `last` marks the final one (the resampler's flush).
struct Chunk {
    samples: Vec<Vec<f32>>,
    last: bool,
}

/// The master's resampled samples and the stem samples completed with them (which lag the
/// master by up to a block: `Pass::deliver` pairs them up).
struct Delivery {
    master: Vec<Vec<f32>>,
    stems: Vec<Vec<Vec<f32>>>,
}

/// Decode and resample, one chunk at a time.
struct ChunkSource<'a> {
    reader: AudioReader,
    resampler: StreamResampler,
    decoded: Vec<Vec<f32>>,
    frames_in: u64,
    finished: bool,
    input: &'a Path,
    n_fft: usize,
}

impl ChunkSource<'_> {
    fn next(&mut self) -> Result<Option<Chunk>> {
        if self.finished {
            return Ok(None);
        }
        self.decoded.iter_mut().for_each(Vec::clear);
        let n = self.reader.read(&mut self.decoded, READ_FRAMES)?;
        let mut samples = vec![Vec::new(); self.decoded.len()];
        if n == 0 {
            check_length(self.input, self.frames_in, self.n_fft)?;
            self.resampler.finish(&mut samples)?;
            self.finished = true;
            return Ok(Some(Chunk {
                samples,
                last: true,
            }));
        }
        self.frames_in += n as u64;
        self.resampler.push(&self.decoded, &mut samples)?;
        Ok(Some(Chunk {
            samples,
            last: false,
        }))
    }
}

impl Pass {
    /// Writes the stem samples that are complete and measures them against the master; hands
    /// back the stem buffers, emptied, for reuse.
    fn deliver(&mut self, delivery: Delivery, gain: f32) -> Result<Vec<Vec<Vec<f32>>>> {
        let Delivery {
            master: mut resampled,
            stems: mut stem_out,
        } = delivery;
        let master = &mut self.master;
        for (m, r) in master.iter_mut().zip(resampled.iter_mut()) {
            m.append(r);
        }
        let n = stem_out[0][0].len();
        if n == 0 {
            return Ok(stem_out);
        }
        type StemSlot<'a> = (
            (
                (&'a mut WavSink, &'a mut Vec<Vec<f32>>),
                (&'a mut f32, &'a mut f32),
            ),
            &'a mut Option<LoudnessMeter>,
        );
        let deliver_stem =
            |(((sink, chunk), (peak, out_peak)), meter): StemSlot<'_>| -> Result<()> {
                if gain != 1.0 {
                    chunk.iter_mut().flatten().for_each(|v| *v *= gain);
                }
                *peak = chunk.iter().flatten().fold(*peak, |m, v| m.max(v.abs()));
                sink.write(chunk)?;
                *out_peak = chunk
                    .iter()
                    .flatten()
                    .fold(*out_peak, |m, v| m.max(v.abs()));
                if let Some(meter) = meter {
                    meter.add(&chunk.iter().map(Vec::as_slice).collect::<Vec<_>>());
                }
                Ok(())
            };
        // Each stem's encoding and metering, and the master's metering, all in parallel.
        let master_meter = &mut self.master_meter;
        let master_ref = &*master;
        let (written, ()) = rayon::join(
            || {
                self.sinks
                    .par_iter_mut()
                    .zip(stem_out.par_iter_mut())
                    .zip(self.peaks.par_iter_mut().zip(self.out_peaks.par_iter_mut()))
                    .zip(self.meters.par_iter_mut())
                    .try_for_each(deliver_stem)
            },
            || {
                if let Some(meter) = master_meter {
                    meter.add(&master_ref.iter().map(|m| &m[..n]).collect::<Vec<_>>());
                }
            },
        );
        written?;
        // Null residual at the output depth: Σ delivered stems − gain · master, in parallel runs
        // of samples whose partial peaks and sums are combined in order (reproducible).
        const RUN: usize = 1 << 14;
        let g = gain as f64;
        for (ch, m) in master.iter_mut().enumerate() {
            let stems: Vec<&[f32]> = stem_out.iter().map(|s| &s[ch][..n]).collect();
            let partial: Vec<(f64, f64)> = m[..n]
                .par_chunks(RUN)
                .enumerate()
                .map_init(Vec::new, |r, (run, m)| {
                    let i0 = run * RUN;
                    // The residual of the run, stem by stem (each sample's sum in stem order).
                    r.clear();
                    r.extend(m.iter().map(|&mv| -g * mv as f64));
                    for s in &stems {
                        for (r, &v) in r.iter_mut().zip(&s[i0..i0 + m.len()]) {
                            *r += v as f64;
                        }
                    }
                    null_stats(r)
                })
                .collect();
            for (peak, sq) in partial {
                self.null_peak = self.null_peak.max(peak);
                self.null_sq += sq;
            }
            m.drain(..n);
        }
        self.frames_out += n as u64;
        stem_out.iter_mut().flatten().for_each(Vec::clear);
        Ok(stem_out)
    }
}

/// Peak |r| and Σ r² of a run of residual samples; a NaN counts as an infinite peak.
fn null_stats(r: &[f64]) -> (f64, f64) {
    // Four lanes of partial sums (combined in a fixed order), so the loop vectorises.
    let (mut peak, mut sq, mut nan) = ([0.0f64; 4], [0.0f64; 4], false);
    let mut chunks = r.chunks_exact(4);
    for c in &mut chunks {
        for l in 0..4 {
            nan |= c[l].is_nan();
            peak[l] = peak[l].max(c[l].abs());
            sq[l] += c[l] * c[l];
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        nan |= v.is_nan();
        peak[l] = peak[l].max(v.abs());
        sq[l] += v * v;
    }
    if nan {
        return (f64::INFINITY, f64::NAN);
    }
    (
        peak[0].max(peak[1]).max(peak[2].max(peak[3])),
        (sq[0] + sq[1]) + (sq[2] + sq[3]),
    )
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

#[cfg(test)]
mod tests {
    use super::null_stats;
    use crate::rng::Rng;

    #[test]
    fn null_stats_match_the_naive_sums() {
        // Seeded residuals of every length mod 4: the peak exactly, Σ r² to 1e-12 relative
        // (the lanes sum in another order); a NaN anywhere is an infinite peak.
        let mut rng = Rng::new(11);
        for len in [0usize, 1, 3, 4, 5, 1021] {
            let r: Vec<f64> = (0..len)
                .map(|_| (rng.uniform() as f64 - 0.5) * 1e-6)
                .collect();
            let peak = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let sq: f64 = r.iter().map(|v| v * v).sum();
            let (p, s) = null_stats(&r);
            assert_eq!(p, peak, "peak, length {len}");
            assert!(
                (s - sq).abs() <= 1e-12 * sq,
                "Σr², length {len}: {s} vs {sq}"
            );
            if len > 0 {
                let mut bad = r.clone();
                bad[len / 2] = f64::NAN;
                assert_eq!(null_stats(&bad).0, f64::INFINITY, "NaN at {}", len / 2);
            }
        }
    }
}
