//! Batches and catalogs: expand the inputs (files, folders recursively, mirrored under the output
//! folder), skip tracks already done with the same input and settings, separate the rest with
//! `jobs` tracks in flight, keep going past bad ones, and report as it goes: one JSON line per
//! track appended to `stemkit-report.jsonl` the moment it finishes (a crash loses nothing), a
//! summary line at the end, and the whole run as `stemkit-report.json` (written atomically).

use crate::catalog::{self, CatalogEntry, DoneFile, DoneRecord, Shard};
use crate::engine::Engines;
use crate::error::{Error, Result};
use crate::pipeline::{separate_file, DeliveryOptions, TrackReport};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The run report's file name inside the output folder.
pub const REPORT_NAME: &str = "stemkit-report.json";
/// The live report's (JSON lines) file name inside the output folder.
pub const LIVE_REPORT_NAME: &str = "stemkit-report.jsonl";

/// One input's outcome.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TrackOutcome {
    /// Delivered.
    Ok(TrackReport),
    /// Already done: its stems and done record match the input and the settings.
    Skipped {
        /// The input.
        input: PathBuf,
        /// Why it was skipped.
        reason: String,
    },
    /// Failed; nothing was written for it.
    Failed {
        /// The input.
        input: PathBuf,
        /// The reason, one line.
        error: String,
    },
}

/// A track's line in the live report: its catalog-relative path, then its outcome.
#[derive(Serialize)]
struct TrackLine<'a> {
    rel: &'a str,
    #[serde(flatten)]
    outcome: &'a TrackOutcome,
}

/// How a batch runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Redo tracks that are already done.
    pub force: bool,
    /// Tracks in flight at once (each runs decode, separation and encoding as pipelined stages;
    /// several keep the cores busy across the gaps between tracks).
    pub jobs: usize,
    /// Process only the tracks of this shard.
    pub shard: Option<Shard>,
    /// The live report (JSON lines, appended); default `stemkit-report.jsonl` in the output
    /// folder, `stemkit-report-shard-K-of-N.jsonl` with a shard.
    pub report: Option<PathBuf>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            force: false,
            jobs: 1,
            shard: None,
            report: None,
        }
    }
}

impl BatchOptions {
    /// The live report's path for a run into `out_dir`.
    pub fn live_report(&self, out_dir: &Path) -> PathBuf {
        match (&self.report, self.shard) {
            (Some(p), _) => p.clone(),
            (None, Some(s)) => out_dir.join(format!(
                "stemkit-report-shard-{}-of-{}.jsonl",
                s.index, s.count
            )),
            (None, None) => out_dir.join(LIVE_REPORT_NAME),
        }
    }

    /// The run report's path: beside the live report, `.json` for `.jsonl`.
    pub fn run_report(&self, out_dir: &Path) -> PathBuf {
        let live = self.live_report(out_dir);
        match (&self.report, self.shard) {
            (None, None) => out_dir.join(REPORT_NAME),
            _ => live.with_extension("json"),
        }
    }
}

/// The run's totals (the live report's last line, `{"summary": …}`).
#[derive(Clone, Debug, Serialize)]
pub struct BatchSummary {
    /// stemkit's version.
    pub stemkit: String,
    /// Device that ran the separation.
    pub device: String,
    /// `K/N` when sharded.
    pub shard: Option<String>,
    /// Tracks in this run (after sharding).
    pub tracks: usize,
    /// Tracks delivered.
    pub ok: usize,
    /// Tracks that failed.
    pub failed: usize,
    /// Tracks already done.
    pub skipped: usize,
    /// Hours of audio delivered in this run.
    pub audio_hours: f64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Audio delivered per wall second.
    pub realtime_factor: f64,
    /// The failed tracks and why.
    pub failures: Vec<String>,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct BatchReport {
    /// stemkit's version.
    pub stemkit: String,
    /// Device that ran the separation.
    pub device: String,
    /// Parameters in force.
    pub params: serde_json::Value,
    /// One record per input, in input order.
    pub tracks: Vec<TrackOutcome>,
    /// Tracks delivered.
    pub ok: usize,
    /// Tracks that failed.
    pub failed: usize,
    /// Tracks already done.
    pub skipped: usize,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Totals.
    pub summary: BatchSummary,
}

/// Callbacks a front end gets during a batch (from the worker threads, one call at a time).
pub trait BatchObserver: Send {
    /// The run covers `total` tracks.
    fn batch_started(&mut self, _total: usize) {}
    /// A track starts; `index` counts from 0.
    fn track_started(&mut self, _index: usize, _total: usize, _input: &Path) {}
    /// Input frames decoded so far for track `index`.
    fn track_progress(&mut self, _index: usize, _frames: u64) {}
    /// A track finished (delivered, skipped or failed).
    fn track_finished(&mut self, _outcome: &TrackOutcome) {}
}

/// Observer that does nothing.
pub struct Silent;
impl BatchObserver for Silent {}

/// What decides a track's output, for its done record: the version and every setting except
/// the device (GPU and CPU give the same stems).
fn output_settings(params: &serde_json::Value, delivery: &DeliveryOptions) -> serde_json::Value {
    let mut p = params.clone();
    if let Some(m) = p.as_object_mut() {
        m.remove("device");
    }
    serde_json::json!({
        "stemkit": env!("CARGO_PKG_VERSION"),
        "params": p,
        "format": delivery.format.label(),
        "rate": format!("{:?}", delivery.rate),
        "name_template": delivery.name_template,
    })
}

/// Separates every input into `out_dir` (folders mirrored), skipping tracks already done unless
/// `options.force`, continuing past failures, appending each track's line to the live report as
/// it finishes, and writing the run report at the end.
///
/// # Errors
/// [`Error::Io`] when the output folder or the reports cannot be written (the tracks' own
/// failures are in the report, not errors).
pub fn run_batch(
    engines: &Engines,
    inputs: &[PathBuf],
    out_dir: &Path,
    delivery: &DeliveryOptions,
    params: serde_json::Value,
    options: &BatchOptions,
    observer: &mut dyn BatchObserver,
) -> Result<BatchReport> {
    let started = Instant::now();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    // A folder we cannot write is one clear error before any work.
    temp_file_in(out_dir).map_err(|e| {
        Error::io(
            out_dir,
            std::io::Error::new(e.kind(), format!("the output folder is not writable ({e})")),
        )
    })?;
    let live_path = options.live_report(out_dir);
    let live = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live_path)
        .map_err(|e| Error::io(&live_path, e))?;
    let mut entries = catalog::collect(inputs, out_dir);
    if let Some(shard) = options.shard {
        entries.retain(|e| shard.owns(e));
    }
    let settings = output_settings(&params, delivery);
    let canon_inputs: Vec<Option<PathBuf>> = entries
        .iter()
        .map(|e| e.input.canonicalize().ok())
        .collect();
    let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
    let prechecks: Vec<Result<()>> = entries
        .iter()
        .map(|e| check_outputs(engines, e, delivery, &canon_inputs, &mut claimed))
        .collect();
    observer.batch_started(entries.len());

    let total = entries.len();
    let next = AtomicUsize::new(0);
    let shared = Mutex::new(Shared {
        observer,
        live,
        live_path: live_path.clone(),
        outcomes: vec![None; total],
        write_error: None,
    });
    let jobs = options.jobs.clamp(1, total.max(1));
    let worker = || loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(entry) = entries.get(index) else {
            break;
        };
        lock(&shared)
            .observer
            .track_started(index, total, &entry.input);
        let outcome = match &prechecks[index] {
            Err(e) => TrackOutcome::Failed {
                input: entry.input.clone(),
                error: one_line(e, &entry.input),
            },
            Ok(()) => run_track(engines, entry, delivery, &settings, options.force, |f| {
                lock(&shared).observer.track_progress(index, f)
            }),
        };
        let mut sh = lock(&shared);
        sh.append(&TrackLine {
            rel: &entry.rel_text(),
            outcome: &outcome,
        });
        sh.observer.track_finished(&outcome);
        sh.outcomes[index] = Some(outcome);
    };
    if jobs == 1 {
        worker(); // on this thread: no extra thread, no extra allocator arena
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(worker);
            }
        });
    }
    let shared = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = shared.write_error {
        return Err(e);
    }
    let mut live = shared.live;
    let tracks: Vec<TrackOutcome> = shared.outcomes.into_iter().flatten().collect();
    let count = |f: fn(&TrackOutcome) -> bool| tracks.iter().filter(|t| f(t)).count();
    let ok = count(|t| matches!(t, TrackOutcome::Ok(_)));
    let skipped = count(|t| matches!(t, TrackOutcome::Skipped { .. }));
    let audio_s: f64 = tracks
        .iter()
        .map(|t| match t {
            TrackOutcome::Ok(r) => r.duration_s,
            _ => 0.0,
        })
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let summary = BatchSummary {
        stemkit: env!("CARGO_PKG_VERSION").to_string(),
        device: engines.device_name(),
        shard: options.shard.map(|s| format!("{}/{}", s.index, s.count)),
        tracks: tracks.len(),
        ok,
        failed: tracks.len() - ok - skipped,
        skipped,
        audio_hours: audio_s / 3600.0,
        seconds,
        realtime_factor: audio_s / seconds.max(1e-9),
        failures: tracks
            .iter()
            .filter_map(|t| match t {
                TrackOutcome::Failed { error, .. } => Some(error.clone()),
                _ => None,
            })
            .collect(),
    };
    write_line(
        &mut live,
        &live_path,
        &serde_json::json!({ "summary": summary }),
    )?;
    let report = BatchReport {
        stemkit: env!("CARGO_PKG_VERSION").to_string(),
        device: engines.device_name(),
        params,
        ok,
        failed: summary.failed,
        skipped,
        tracks,
        seconds,
        summary,
    };
    write_json_atomic(&options.run_report(out_dir), &report)?;
    Ok(report)
}

/// State the workers share.
struct Shared<'a> {
    observer: &'a mut dyn BatchObserver,
    live: std::fs::File,
    live_path: PathBuf,
    outcomes: Vec<Option<TrackOutcome>>,
    write_error: Option<Error>,
}

impl Shared<'_> {
    fn append(&mut self, line: &impl Serialize) {
        if self.write_error.is_none() {
            if let Err(e) = write_line(&mut self.live, &self.live_path, line) {
                self.write_error = Some(e);
            }
        }
    }
}

fn lock<'a, 'b>(m: &'a Mutex<Shared<'b>>) -> std::sync::MutexGuard<'a, Shared<'b>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Appends one JSON line with a single write (a line is never split by a crash mid-run).
fn write_line(file: &mut std::fs::File, path: &Path, value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(value).map_err(|e| Error::io(path, e.into()))?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| Error::io(path, e))
}

/// One track: skipped when done, else separated and recorded as done.
fn run_track(
    engines: &Engines,
    entry: &CatalogEntry,
    delivery: &DeliveryOptions,
    settings: &serde_json::Value,
    force: bool,
    progress: impl FnMut(u64),
) -> TrackOutcome {
    let input = &entry.input;
    let failed = |e: &Error| TrackOutcome::Failed {
        input: input.clone(),
        error: one_line(e, input),
    };
    let track = crate::pipeline::track_name(input);
    let fingerprint = match catalog::fingerprint(input) {
        Ok(f) => f,
        Err(e) => return failed(&e),
    };
    if !force && catalog::stale_reason(&entry.out_dir, &track, &fingerprint, settings).is_none() {
        return TrackOutcome::Skipped {
            input: input.clone(),
            reason: "done: its stems match the input and the settings".into(),
        };
    }
    if let Err(e) = std::fs::create_dir_all(&entry.out_dir) {
        return failed(&Error::io(&entry.out_dir, e));
    }
    match separate_file(engines, input, &entry.out_dir, delivery, progress) {
        Ok(mut report) => {
            let files = report
                .stems
                .iter()
                .map(|s| DoneFile {
                    name: s
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    bytes: std::fs::metadata(&s.path).map_or(0, |m| m.len()),
                })
                .collect();
            let record = DoneRecord {
                input: entry.rel_text(),
                fingerprint,
                settings: settings.clone(),
                files,
            };
            if let Err(e) = catalog::write_record(&entry.out_dir, &track, &record) {
                report.warnings.push(format!(
                    "stems delivered, but the done record could not be written ({e}); a rerun will redo this track"
                ));
            }
            TrackOutcome::Ok(report)
        }
        Err(e) => failed(&e),
    }
}

/// Refuses outputs that would overwrite an input or another track's outputs in this batch.
fn check_outputs(
    engines: &Engines,
    entry: &CatalogEntry,
    delivery: &DeliveryOptions,
    canon_inputs: &[Option<PathBuf>],
    claimed: &mut HashMap<PathBuf, PathBuf>,
) -> Result<()> {
    let input = &entry.input;
    let track = crate::pipeline::track_name(input);
    let rate = match delivery.rate {
        crate::pipeline::OutputRate::Fixed(r) => r,
        // The real rate is known only after decoding; names for `source` are checked there too.
        crate::pipeline::OutputRate::Source => 0,
    };
    let mut paths = Vec::new();
    for stem in engines.stems() {
        let name = crate::audio::naming::render_name(
            &delivery.name_template,
            &track,
            stem.name(),
            rate.max(1),
            delivery.format,
        )?;
        let path = entry.out_dir.join(&name);
        if let Ok(c) = path.canonicalize() {
            if canon_inputs
                .iter()
                .any(|i| i.as_deref() == Some(c.as_path()))
            {
                return Err(Error::UnsafeOutput {
                    path,
                    reason: "it is one of the inputs".into(),
                });
            }
        }
        if rate != 0 {
            if let Some(other) = claimed.get(&path) {
                return Err(Error::UnsafeOutput {
                    path,
                    reason: format!("{} already writes this name in this batch", other.display()),
                });
            }
        }
        paths.push(path);
    }
    for path in paths {
        claimed.insert(path, input.to_path_buf());
    }
    Ok(())
}

/// The error as one line that names the file.
fn one_line(e: &Error, input: &Path) -> String {
    let text = e.to_string().replace('\n', " ");
    if text.contains(&*input.to_string_lossy()) {
        text
    } else {
        format!("{}: {text}", input.display())
    }
}

/// A temporary file in `dir`, named as stemkit's other temporaries (`.stemkit-XXXXXX.partial`), so
/// one a kill leaves behind never looks like a finished file.
fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".stemkit-")
        .suffix(".partial")
        .tempfile_in(dir)
}

/// Writes JSON to a temporary sibling and renames it into place.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir).map_err(|e| Error::io(dir, e))?;
    serde_json::to_writer_pretty(&mut tmp, value).map_err(|e| Error::io(path, e.into()))?;
    tmp.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Shard reports joined by [`merge_reports`].
#[derive(Clone, Debug, Serialize)]
pub struct MergedReport {
    /// Distinct tracks seen.
    pub tracks: usize,
    /// Tracks delivered (in some report).
    pub ok: usize,
    /// Tracks only ever skipped (done by an earlier run).
    pub skipped: usize,
    /// Tracks that failed and were never delivered.
    pub failed: usize,
    /// Tracks delivered by more than one record (a shard overlap or a forced redo), with counts.
    pub separated_more_than_once: Vec<(String, usize)>,
    /// Hours of audio delivered.
    pub audio_hours: f64,
    /// Summary lines found (one per finished run).
    pub runs: usize,
    /// The failed tracks and why.
    pub failures: Vec<String>,
    /// Per track (sorted by catalog-relative path): its deciding record — the last delivery,
    /// else the last skip, else the last failure.
    #[serde(skip)]
    pub records: Vec<serde_json::Value>,
}

/// Joins live reports (JSON lines from any number of runs and shards): one outcome per track.
///
/// # Errors
/// [`Error::Io`] for a file that cannot be read; [`Error::BadInput`] for a line that is not a
/// report record.
pub fn merge_reports(paths: &[PathBuf]) -> Result<MergedReport> {
    use std::collections::BTreeMap;
    // rel → (deliveries, best record, its rank: 2 ok, 1 skipped, 0 failed)
    let mut by_rel: BTreeMap<String, (usize, serde_json::Value, u8)> = BTreeMap::new();
    let mut runs = 0;
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::bad_input(path, format!("line {}: not JSON ({e})", n + 1)))?;
            if v.get("summary").is_some() {
                runs += 1;
                continue;
            }
            let (Some(rel), Some(status)) = (
                v.get("rel").and_then(|r| r.as_str()),
                v.get("status").and_then(|s| s.as_str()),
            ) else {
                return Err(Error::bad_input(
                    path,
                    format!("line {}: not a track record (no rel/status)", n + 1),
                ));
            };
            let rank = match status {
                "ok" => 2,
                "skipped" => 1,
                _ => 0,
            };
            let e = by_rel
                .entry(rel.to_string())
                .or_insert((0, serde_json::Value::Null, 0));
            if rank == 2 {
                e.0 += 1;
            }
            if e.1.is_null() || rank >= e.2 {
                e.1 = v.clone();
                e.2 = rank;
            }
        }
    }
    let mut m = MergedReport {
        tracks: by_rel.len(),
        ok: 0,
        skipped: 0,
        failed: 0,
        separated_more_than_once: Vec::new(),
        audio_hours: 0.0,
        runs,
        failures: Vec::new(),
        records: Vec::new(),
    };
    for (rel, (delivered, record, rank)) in by_rel {
        match rank {
            2 => {
                m.ok += 1;
                m.audio_hours += record["duration_s"].as_f64().unwrap_or(0.0) / 3600.0;
            }
            1 => m.skipped += 1,
            _ => {
                m.failed += 1;
                m.failures.push(
                    record["error"]
                        .as_str()
                        .map_or_else(|| rel.clone(), str::to_string),
                );
            }
        }
        if delivered > 1 {
            m.separated_more_than_once.push((rel, delivered));
        }
        m.records.push(record);
    }
    Ok(m)
}

/// Writes a merged report as JSON lines: one record per track, then `{"summary": …}`.
///
/// # Errors
/// [`Error::Io`] when it cannot be written.
pub fn write_merged(path: &Path, merged: &MergedReport) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir).map_err(|e| Error::io(dir, e))?;
    for r in &merged.records {
        write_line(tmp.as_file_mut(), path, r)?;
    }
    write_line(
        tmp.as_file_mut(),
        path,
        &serde_json::json!({ "summary": merged }),
    )?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
