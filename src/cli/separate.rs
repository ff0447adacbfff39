//! `stemkit separate`: build the separators and delivery settings, run the batch with a progress
//! bar, print one line per track (errors always), and decide the exit code.

use super::{out, CliResult, DeliveryArgs, DeviceArgs, SeparateArgs, SeparationArgs};
use crate::audio::encode::SampleFormat;
use crate::batch::{run_batch, BatchObserver, BatchOptions, TrackOutcome};
use crate::catalog::Shard;
use crate::engine::{DeviceChoice, Engines};
use crate::error::{Error, Result};
use crate::gpu::AdapterSelector;
use crate::params::{HpssParams, Kernel, StftParams};
use crate::pipeline::{DeliveryOptions, OutputRate};
use crate::production::ProductionSpec;
use crate::separator::{SeparationSpec, DEFAULT_BLOCK_FRAMES};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

impl SeparationArgs {
    /// The validated separation settings.
    pub(crate) fn spec(&self) -> Result<SeparationSpec> {
        // --kernel: a count sets both; a duration only makes sense along time (harmonic), a
        // bandwidth only along frequency (percussive).
        // Unset kernels take the stem set's defaults (31 and 31 for hpr).
        let (mut harmonic_kernel, mut percussive_kernel) = (None, None);
        if let Some(k) = &self.kernel {
            match Kernel::parse("--kernel", k)? {
                Kernel::Count(n) => {
                    (harmonic_kernel, percussive_kernel) =
                        (Some(Kernel::Count(n)), Some(Kernel::Count(n)))
                }
                s @ Kernel::Seconds(_) => harmonic_kernel = Some(s),
                hz @ Kernel::Hertz(_) => percussive_kernel = Some(hz),
            }
        }
        if let Some(k) = &self.harmonic_kernel {
            harmonic_kernel = Some(Kernel::parse("--harmonic-kernel", k)?);
        }
        if let Some(k) = &self.percussive_kernel {
            percussive_kernel = Some(Kernel::parse("--percussive-kernel", k)?);
        }
        if matches!(harmonic_kernel, Some(Kernel::Hertz(_))) {
            return Err(Error::param(
                "--harmonic-kernel",
                "the harmonic kernel runs along time: give frames or a duration (0.2s), not hertz",
            ));
        }
        if matches!(percussive_kernel, Some(Kernel::Seconds(_))) {
            return Err(Error::param("--percussive-kernel", "the percussive kernel runs along frequency: give bins or a bandwidth (500hz), not seconds"));
        }
        let production = ProductionSpec {
            bass_range_hz: parse_range("--bass-range", &self.bass_range)?,
            melody_range_hz: parse_range("--melody-range", &self.melody_range)?,
            bass_cutoff_hz: parse_unit("--bass-cutoff", &self.bass_cutoff, "hz")?,
            bass_comb_fade_hz: parse_unit("--bass-comb-fade", &self.bass_comb_fade, "hz")?,
            comb_cents: parse_unit("--comb-width", &self.comb_width, "cents")?,
            track_ms: parse_unit("--track-window", &self.track_window, "ms")?,
            melody_lift_db: parse_unit("--melody-lift", &self.melody_lift, "db")?,
            melody_overtone_penalty: parse_or_off(
                "--melody-overtones",
                &self.melody_overtones,
                "",
            )?,
            steady_ms: parse_unit("--steady-window", &self.steady_window, "ms")?,
            steady_margin: parse_unit("--steady-margin", &self.steady_margin, "")?,
            tonal_ms: parse_unit("--tonal-window", &self.tonal_window, "ms")?,
            tonal_threshold: parse_unit("--tonal-threshold", &self.tonal_threshold, "")?,
            drum_tail_hz: parse_unit("--drum-tail", &self.drum_tail, "hz")?,
            drum_tail_ms: parse_unit("--drum-tail-window", &self.drum_tail_window, "ms")?,
            drum_tail_decay_db_s: parse_unit("--drum-tail-decay", &self.drum_tail_decay, "")?,
            spatial: !self.no_spatial,
            spatial_max_hz: match self.spatial_max_freq.trim() {
                "all" => f32::INFINITY,
                f => parse_unit("--spatial-max-freq", f, "hz")?,
            },
            bass_profile: !self.no_bass_profile,
            drums_below_line_oct: parse_unit("--drums-below-line", &self.drums_below_line, "")?,
            mid_margin: parse_unit("--mid-margin", &self.mid_margin, "")?,
            mid_band_hz: match self.mid_band.trim() {
                "off" => (0.0, 0.0),
                band => parse_range("--mid-band", band)?,
            },
            profile_rest_db: parse_or_off("--profile-rest", &self.profile_rest, "db")?,
            melody_floor_st: parse_or_off("--melody-floor", &self.melody_floor, "st")?,
            note_sustain: parse_or_off("--note-sustain", &self.note_sustain, "")?,
            harmony_hold_ms: parse_or_off("--harmony-hold", &self.harmony_hold, "ms")?,
            ..ProductionSpec::default()
        };
        if !(20.0..=2000.0).contains(&production.bass_cutoff_hz) {
            return Err(Error::param(
                "--bass-cutoff",
                format!("expected 20 to 2000 Hz, got {}", production.bass_cutoff_hz),
            ));
        }
        let spec = SeparationSpec {
            stft: StftParams {
                n_fft: self.n_fft,
                hop_length: self.hop,
            },
            harmonic_kernel,
            harmonic_tap: self.harmonic_tap,
            percussive_kernel,
            power: self
                .power
                .as_deref()
                .map(HpssParams::parse_power)
                .transpose()?,
            margin: self
                .margin
                .as_deref()
                .map(HpssParams::parse_margin)
                .transpose()?,
            stems: self.stems.clone(),
            no_rest: self.no_rest,
            production,
            block_frames: DEFAULT_BLOCK_FRAMES,
        };
        // Everything that can be checked without a rate, checked now (a usage error).
        spec.resolve(48000)?;
        Ok(spec)
    }

    /// The settings as JSON for the report.
    pub(crate) fn to_json(&self, spec: &SeparationSpec, engines: &Engines) -> serde_json::Value {
        let p = &spec.production;
        serde_json::json!({
            "stems": spec.stems,
            "n_fft": spec.stft.n_fft,
            "hop_length": spec.stft.hop_length,
            "harmonic_kernel": spec.resolve(48000).map(|p| p.hpss.harmonic_kernel).unwrap_or_default(),
            "harmonic_tap": spec.resolve(48000).map(|p| p.hpss.harmonic_tap).unwrap_or_default(),
            "percussive_kernel": spec.resolve(48000).map(|p| p.hpss.percussive_kernel).unwrap_or_default(),
            "kernels_as_given": [spec.harmonic_kernel.map(|k| k.to_string()), spec.percussive_kernel.map(|k| k.to_string())],
            "power": spec.resolve(48000).map(|p| if p.hpss.power.is_infinite() { serde_json::json!("inf") } else { serde_json::json!(short(p.hpss.power)) }).unwrap_or_default(),
            "margin": spec.resolve(48000).map(|p| [short(p.hpss.margin_harmonic), short(p.hpss.margin_percussive)]).unwrap_or_default(),
            "production": {
                "bass_range_hz": [short(p.bass_range_hz.0), short(p.bass_range_hz.1)],
                "melody_range_hz": [short(p.melody_range_hz.0), short(p.melody_range_hz.1)],
                "bass_cutoff_hz": short(p.bass_cutoff_hz),
                "bass_comb_fade_hz": short(p.bass_comb_fade_hz),
                "comb_cents": short(p.comb_cents),
                "track_ms": short(p.track_ms),
                "melody_lift_db": short(p.melody_lift_db),
                // 0: off.
                "melody_overtone_penalty": short(p.melody_overtone_penalty),
                "steady_ms": short(p.steady_ms),
                "steady_margin": short(p.steady_margin),
                "tonal_ms": short(p.tonal_ms),
                "tonal_threshold": short(p.tonal_threshold),
                "drum_tail_hz": short(p.drum_tail_hz),
                "drum_tail_ms": short(p.drum_tail_ms),
                "drum_tail_decay_db_s": short(p.drum_tail_decay_db_s),
                "spatial": p.spatial,
                // null: every bin.
                "spatial_max_hz": p.spatial_max_hz.is_finite().then(|| short(p.spatial_max_hz)),
                "bass_profile": p.bass_profile,
                "drums_below_line_oct": short(p.drums_below_line_oct),
                "mid_margin": short(p.mid_margin),
                // [0, 0]: off.
                "mid_band_hz": [short(p.mid_band_hz.0), short(p.mid_band_hz.1)],
                // 0: off.
                "profile_rest_db": short(p.profile_rest_db),
                // 0: off.
                "melody_floor_st": short(p.melody_floor_st),
                "note_sustain": short(p.note_sustain),
                // 0: off.
                "harmony_hold_ms": short(p.harmony_hold_ms),
            },
            "device": engines.device_name(),
        })
    }
}

/// `--adapter`: an index, or part of a name; none: wgpu's preferred adapter.
pub(crate) fn parse_adapter(text: Option<&str>) -> AdapterSelector {
    match text.map(str::trim) {
        None | Some("") => AdapterSelector::Default,
        Some(a) => a.parse::<usize>().map_or_else(
            |_| AdapterSelector::Name(a.to_string()),
            AdapterSelector::Index,
        ),
    }
}

/// `LO-HI` in Hz (`30-260`, `30hz-260hz`).
fn parse_range(what: &'static str, text: &str) -> Result<(f32, f32)> {
    let bad = || {
        Error::param(
            what,
            format!("expected LO-HI in Hz such as 30-260, got {text:?}"),
        )
    };
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let num = |t: &str| {
        t.trim()
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<f32>()
            .map_err(|_| bad())
    };
    Ok((num(lo)?, num(hi)?))
}

/// A number with an optional unit suffix (`100ms`, `100hz`, `35cents`, or a bare number).
/// An f32 setting as the f64 of its shortest decimal form (0.8, not 0.800000011920929), for the
/// report.
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// [`parse_unit`], with `off` for 0 (the rule switched off).
fn parse_or_off(what: &'static str, text: &str, unit: &str) -> Result<f32> {
    match text.trim() {
        "off" => Ok(0.0),
        t => parse_unit(what, t, unit),
    }
}

fn parse_unit(what: &'static str, text: &str, unit: &str) -> Result<f32> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix(unit).unwrap_or(&t).trim();
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::param(
            what,
            if unit.is_empty() {
                format!("expected a number, got {text:?}")
            } else {
                format!("expected a number of {unit}, got {text:?}")
            },
        )),
    }
}

impl DeviceArgs {
    /// Opens the device and returns the engines; prints `auto`'s fallback note on stderr.
    pub(crate) fn engines(&self, spec: SeparationSpec) -> Result<Engines> {
        let device = DeviceChoice::parse(&self.device)?;
        let adapter = parse_adapter(self.adapter.as_deref());
        if device == DeviceChoice::Cpu && adapter != AdapterSelector::Default {
            return Err(Error::param(
                "--adapter",
                "picks a GPU adapter; it makes no sense with --device cpu",
            ));
        }
        let fallback_cpu = match self.fallback.trim().to_ascii_lowercase().as_str() {
            "none" => false,
            "cpu" => true,
            other => {
                return Err(Error::param(
                    "--fallback",
                    format!("expected none or cpu, got {other:?}"),
                ))
            }
        };
        if self.gpu_chunk_frames == Some(0) {
            return Err(Error::param(
                "--gpu-chunk-frames",
                "expected at least 1, got 0",
            ));
        }
        let engines = Engines::new(spec, device, adapter, self.gpu_chunk_frames, fallback_cpu)?;
        if let Some(note) = &engines.note {
            eprintln!("stemkit: {note}");
        }
        Ok(engines)
    }

    /// Prints the run's statistics when `--stats` was given.
    pub(crate) fn print_stats(&self, engines: &Engines) {
        if self.stats {
            out(engines.stats_text());
        }
    }
}

impl DeliveryArgs {
    /// The validated delivery settings.
    pub(crate) fn options(&self) -> Result<DeliveryOptions> {
        let options = DeliveryOptions {
            format: SampleFormat::parse(&self.bits)?,
            rate: OutputRate::parse(&self.rate)?,
            name_template: self.name_template.clone(),
            loudness: !self.no_loudness,
        };
        // A template that cannot render is a usage error, found before any work.
        crate::audio::naming::render_name(
            &options.name_template,
            "track",
            "stem",
            48000,
            options.format,
        )?;
        Ok(options)
    }
}

/// One overall progress bar (tracks done of all, audio hours, real-time factor, ETA) and
/// per-track lines on stderr. The bar advances within tracks too (decoded frames of each track in
/// flight against its length from the header), so one long file shows progress and an ETA.
struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    started: std::time::Instant,
    audio_s: f64,
    done: usize,
    total: usize,
    /// Tracks in flight: input → (index, frames in the header (0: unknown), frames decoded).
    in_flight: HashMap<PathBuf, (usize, u64, u64)>,
}

/// Bar units per track.
const UNITS: u64 = 1000;

impl Progress {
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            let partial: u64 = self
                .in_flight
                .values()
                .map(|&(_, total, done)| {
                    (done.min(total) * (UNITS - 1))
                        .checked_div(total)
                        .unwrap_or(0)
                })
                .sum();
            bar.set_position(self.done as u64 * UNITS + partial);
            let wall = self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{}/{} tracks, {:.2} h of audio, {:.0}x real time",
                self.done,
                self.total,
                self.audio_s / 3600.0,
                self.audio_s / wall
            ));
        }
    }
}

impl BatchObserver for Progress {
    fn batch_started(&mut self, total: usize) {
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64 * UNITS);
        }
        self.redraw();
    }

    fn track_started(&mut self, index: usize, _total: usize, input: &Path) {
        if self.bar.is_some() {
            let frames = crate::audio::decode::AudioReader::open(input)
                .ok()
                .and_then(|r| r.info().frames)
                .unwrap_or(0);
            self.in_flight
                .insert(input.to_path_buf(), (index, frames, 0));
        }
    }

    fn track_progress(&mut self, index: usize, frames: u64) {
        if let Some(entry) = self.in_flight.values_mut().find(|e| e.0 == index) {
            entry.2 = frames;
            self.redraw();
        }
    }

    fn track_finished(&mut self, outcome: &TrackOutcome) {
        let input = match outcome {
            TrackOutcome::Ok(r) => {
                self.audio_s += r.duration_s;
                &r.input
            }
            TrackOutcome::Skipped { input, .. } | TrackOutcome::Failed { input, .. } => input,
        };
        self.in_flight.remove(input);
        self.done += 1;
        self.redraw();
        let line = match outcome {
            TrackOutcome::Ok(r) => (!self.quiet).then(|| {
                let mut line = format!(
                    "{}: {} stems, {:.1} s at {:.0}x real time, null {:.1} dBFS",
                    r.input.display(),
                    r.stems.len(),
                    r.duration_s,
                    r.realtime_factor,
                    r.null_peak_dbfs
                );
                for w in &r.warnings {
                    line.push_str(&format!("\n{}: warning: {w}", r.input.display()));
                }
                line
            }),
            TrackOutcome::Skipped { .. } => None,
            TrackOutcome::Failed { error, .. } => Some(format!("stemkit: {error}")),
        };
        if let Some(line) = line {
            self.say(line);
        }
    }
}

pub(super) fn run(args: SeparateArgs) -> CliResult {
    let spec = args.separation.spec()?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    if args.jobs == 0 {
        return Err(Error::param("--jobs", "expected at least 1, got 0"));
    }
    let engines = args.device.engines(spec.clone())?;
    let params = args.separation.to_json(&spec, &engines);
    let delivery = args.delivery.options()?;
    let options = BatchOptions {
        force: args.force,
        jobs: args.jobs,
        shard,
        report: args.report.clone(),
    };
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {percent:>3}% {elapsed_precise} ETA {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    let mut progress = Progress {
        quiet: args.quiet,
        bar,
        started: std::time::Instant::now(),
        audio_s: 0.0,
        done: 0,
        total: 0,
        in_flight: HashMap::new(),
    };
    let report = run_batch(
        &engines,
        &args.inputs,
        &args.output,
        &delivery,
        params,
        &options,
        &mut progress,
    )?;
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    args.device.print_stats(&engines);
    if !args.quiet {
        let s = &report.summary;
        out(format!(
            "{} delivered, {} skipped (already done), {} failed; {:.2} h of audio in {:.1} s ({:.0}x real time); report {}",
            s.ok,
            s.skipped,
            s.failed,
            s.audio_hours,
            s.seconds,
            s.realtime_factor,
            options.live_report(&args.output).display()
        ));
    }
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
