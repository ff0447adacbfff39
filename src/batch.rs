//! Batches: expand the inputs (files, folders recursively), separate each track, keep going past
//! bad ones, and write `stemkit-report.json` (atomically) with one record per input.

use crate::audio::decode::looks_like_audio;
use crate::engine::Engines;
use crate::error::{Error, Result};
use crate::pipeline::{separate_file, DeliveryOptions, TrackReport};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The report's file name inside the output folder.
pub const REPORT_NAME: &str = "stemkit-report.json";

/// One input's outcome.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TrackOutcome {
    /// Delivered.
    Ok(TrackReport),
    /// Failed; nothing was written for it.
    Failed {
        /// The input.
        input: PathBuf,
        /// The reason, one line.
        error: String,
    },
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
    /// Wall time of the run, seconds.
    pub seconds: f64,
}

/// Expands files and folders (recursively, sorted) into audio files. Files named explicitly are
/// always taken (their content decides); inside folders, audio is recognised by extension or
/// content, and the output folder itself is skipped.
pub fn collect_inputs(inputs: &[PathBuf], out_dir: &Path) -> Vec<PathBuf> {
    let out_canon = out_dir.canonicalize().ok();
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, out_canon.as_deref(), &mut files);
        } else {
            files.push(input.clone());
        }
    }
    files
}

fn walk(dir: &Path, skip: Option<&Path>, files: &mut Vec<PathBuf>) {
    if skip.is_some() && dir.canonicalize().ok().as_deref() == skip {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        files.push(dir.to_path_buf()); // reported as unreadable when opened
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if p.is_dir() {
            if !hidden {
                walk(&p, skip, files);
            }
        } else if !hidden && looks_like_audio(&p) {
            files.push(p);
        }
    }
}

/// Callbacks a front end gets during a batch.
pub trait BatchObserver {
    /// A track starts; `index` counts from 0.
    fn track_started(&mut self, _index: usize, _total: usize, _input: &Path) {}
    /// Input frames decoded so far for the current track.
    fn track_progress(&mut self, _frames: u64) {}
    /// A track finished (delivered or failed).
    fn track_finished(&mut self, _outcome: &TrackOutcome) {}
}

/// Observer that does nothing.
pub struct Silent;
impl BatchObserver for Silent {}

/// Separates every input into `out_dir`, continuing past failures, and writes the report.
pub fn run_batch(
    engines: &Engines,
    inputs: &[PathBuf],
    out_dir: &Path,
    delivery: &DeliveryOptions,
    params: serde_json::Value,
    observer: &mut dyn BatchObserver,
) -> Result<BatchReport> {
    let started = Instant::now();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let files = collect_inputs(inputs, out_dir);
    let canon_inputs: Vec<Option<PathBuf>> = files.iter().map(|f| f.canonicalize().ok()).collect();
    let mut claimed: HashMap<String, PathBuf> = HashMap::new();
    let mut tracks = Vec::with_capacity(files.len());
    for (index, input) in files.iter().enumerate() {
        observer.track_started(index, files.len(), input);
        let outcome = match check_outputs(
            engines,
            input,
            out_dir,
            delivery,
            &canon_inputs,
            &mut claimed,
        ) {
            Err(e) => Err(e),
            Ok(()) => separate_file(engines, input, out_dir, delivery, |f| {
                observer.track_progress(f)
            }),
        };
        let outcome = match outcome {
            Ok(report) => TrackOutcome::Ok(report),
            Err(e) => TrackOutcome::Failed {
                input: input.clone(),
                error: one_line(&e, input),
            },
        };
        observer.track_finished(&outcome);
        tracks.push(outcome);
    }
    let ok = tracks
        .iter()
        .filter(|t| matches!(t, TrackOutcome::Ok(_)))
        .count();
    let report = BatchReport {
        stemkit: env!("CARGO_PKG_VERSION").to_string(),
        device: engines.device_name(),
        params,
        failed: tracks.len() - ok,
        ok,
        tracks,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out_dir.join(REPORT_NAME), &report)?;
    Ok(report)
}

/// Refuses outputs that would overwrite an input or another track's outputs in this batch.
fn check_outputs(
    engines: &Engines,
    input: &Path,
    out_dir: &Path,
    delivery: &DeliveryOptions,
    canon_inputs: &[Option<PathBuf>],
    claimed: &mut HashMap<String, PathBuf>,
) -> Result<()> {
    let track = crate::pipeline::track_name(input);
    let rate = match delivery.rate {
        crate::pipeline::OutputRate::Fixed(r) => r,
        // The real rate is known only after decoding; names for `source` are checked there too.
        crate::pipeline::OutputRate::Source => 0,
    };
    let mut names = Vec::new();
    for stem in engines.stems() {
        let name = crate::audio::naming::render_name(
            &delivery.name_template,
            &track,
            stem.name(),
            rate.max(1),
            delivery.format,
        )?;
        let path = out_dir.join(&name);
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
            if let Some(other) = claimed.get(&name) {
                return Err(Error::UnsafeOutput {
                    path,
                    reason: format!("{} already writes this name in this batch", other.display()),
                });
            }
        }
        names.push(name);
    }
    for name in names {
        claimed.insert(name, input.to_path_buf());
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

/// Writes JSON to a temporary sibling and renames it into place.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    serde_json::to_writer_pretty(&mut tmp, value).map_err(|e| Error::io(path, e.into()))?;
    tmp.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
