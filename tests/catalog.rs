//! Catalog runs through the real binary: a nested catalog with unicode, spaces, leading dashes
//! and bad files mixed in; the live report's contents; resume (skip, --force, changed input,
//! changed settings); a run killed with SIGKILL mid-catalog and rerun gives outputs identical to
//! an uninterrupted run; --jobs 2 equals --jobs 1; shards partition the catalog and
//! merge-reports joins them; a read-only output folder is one clear error.

mod common;

use common::{mix, stemkit, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stemkit::audio::encode::{write_wav, SampleFormat};

/// Tracks of the test catalog (catalog-relative), with their lengths in seconds.
const TRACKS: [(&str, f32); 6] = [
    ("Album One/disc 1/01 - Intro.wav", 1.2),
    ("Album One/disc 1/-02 leading dash.wav", 1.0),
    ("Album One/disc 2/03 Ünïcødé 曲.wav", 1.1),
    ("Album Two/04 spaces  and.dots.v2.wav", 0.9),
    ("05 at the root.wav", 1.0),
    ("Album Two/deeper/still/06.wav", 1.3),
];

/// Bad files mixed in: not audio, empty, truncated.
const BAD: [&str; 3] = [
    "Album One/disc 1/broken.wav",
    "Album Two/empty.flac",
    "Album Two/deeper/truncated.wav",
];

fn catalog(root: &Path) {
    for (i, (rel, secs)) in TRACKS.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let len = (secs * 44100.0) as usize;
        let planar = vec![
            mix(i as u64 + 1, len, 44100.0),
            mix(i as u64 + 101, len, 44100.0),
        ];
        write_wav(&path, &planar, 44100, SampleFormat::Int24).unwrap();
    }
    std::fs::write(root.join(BAD[0]), b"RIFF nonsense, not a wave").unwrap();
    std::fs::write(root.join(BAD[1]), b"").unwrap();
    let good = std::fs::read(root.join(TRACKS[0].0)).unwrap();
    std::fs::write(root.join(BAD[2]), &good[..60]).unwrap();
    std::fs::write(root.join("Album One/cover notes.txt"), "not audio").unwrap();
}

/// Every file under `dir` (relative path → bytes), reports and done records excluded.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if !name.starts_with("stemkit-report") && !name.ends_with(".stemkit.json") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The live report's lines: track records and summaries.
fn lines(path: &Path) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(path).unwrap();
    let all: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (summaries, tracks): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|v| v.get("summary").is_some());
    (tracks, summaries)
}

fn separate(catalog: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec![
        "separate",
        "--stems",
        "hpr",
        "--device",
        "cpu",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
    ];
    a.extend(extra);
    a.push("--");
    a.push(catalog.to_str().unwrap());
    stemkit(&a)
}

/// The stem files each good track should have, relative to the output folder.
fn expected_stems() -> Vec<String> {
    let mut v: Vec<String> = TRACKS
        .iter()
        .flat_map(|(rel, _)| {
            let p = PathBuf::from(rel);
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let dir = p.parent().unwrap().to_path_buf();
            ["harmonic", "percussive"].map(move |s| {
                dir.join(format!("{stem}_{s}_48k24b.wav"))
                    .to_string_lossy()
                    .into_owned()
            })
        })
        .collect();
    v.sort();
    v
}

#[test]
fn nested_catalog_with_bad_files_mirrors_reports_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (cat, out) = (tmp.path().join("My Catalog"), tmp.path().join("out"));
    catalog(&cat);

    let o = separate(&cat, &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "bad files make exit 1: {}",
        text(&o)
    );
    // One line on stderr per bad file, naming it.
    let stderr = String::from_utf8_lossy(&o.stderr);
    for bad in BAD {
        let name = Path::new(bad).file_name().unwrap().to_string_lossy();
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("stemkit:") && l.contains(&*name)),
            "{bad}: {stderr}"
        );
    }
    let got: Vec<String> = outputs(&out).into_keys().collect();
    assert_eq!(got, expected_stems(), "mirrored stems, nothing else");

    // The live report: one line per track, then the summary.
    let (tracks, summaries) = lines(&out.join("stemkit-report.jsonl"));
    assert_eq!(tracks.len(), TRACKS.len() + BAD.len());
    assert_eq!(summaries.len(), 1);
    let s = &summaries[0]["summary"];
    assert_eq!(s["ok"], TRACKS.len());
    assert_eq!(s["failed"], BAD.len());
    assert_eq!(s["skipped"], 0);
    assert_eq!(s["failures"].as_array().unwrap().len(), BAD.len());
    let audio_s: f64 = TRACKS.iter().map(|t| t.1 as f64).sum();
    let hours = s["audio_hours"].as_f64().unwrap();
    assert!((hours * 3600.0 - audio_s).abs() < 0.01, "{s}");
    assert!(s["realtime_factor"].as_f64().unwrap() > 0.0);
    for t in &tracks {
        let rel = t["rel"].as_str().unwrap();
        if BAD.contains(&rel) {
            assert_eq!(t["status"], "failed", "{t}");
            assert!(t["error"]
                .as_str()
                .unwrap()
                .contains(&*cat.join(rel).to_string_lossy()));
            continue;
        }
        assert_eq!(t["status"], "ok", "{t}");
        assert_eq!(t["device"], "cpu");
        assert!(t["null_peak_dbfs"].as_f64().unwrap() < -120.0, "{t}");
        assert!(t["seconds"].as_f64().unwrap() > 0.0);
        // Loudness of the master and of each stem (a −20 dBFS-ish mix: tens of LUFS below 0).
        let lufs = t["master_lufs"].as_f64().unwrap();
        assert!((-60.0..-3.0).contains(&lufs), "{t}");
        let tp = t["master_true_peak_dbtp"].as_f64().unwrap();
        assert!((-40.0..3.0).contains(&tp), "{t}");
        for st in t["stems"].as_array().unwrap() {
            assert!(st["integrated_lufs"].as_f64().unwrap() < 0.0, "{st}");
            assert!(
                st["true_peak_dbtp"].as_f64().unwrap() >= st["peak_dbfs"].as_f64().unwrap() - 0.01
            );
        }
    }

    // A rerun skips every finished track and changes nothing.
    let before = outputs(&out);
    let o = separate(&cat, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let (tracks, summaries) = lines(&out.join("stemkit-report.jsonl"));
    let s = &summaries[1]["summary"];
    assert_eq!(
        (s["ok"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(TRACKS.len() as u64)),
        "{s}"
    );
    assert_eq!(tracks.len(), 2 * (TRACKS.len() + BAD.len()), "appended");
    assert_eq!(outputs(&out), before);

    // A changed input is redone; so is every track when a setting changes; --force redoes all.
    let changed = cat.join(TRACKS[2].0);
    let planar = vec![mix(77, 44100, 44100.0), mix(78, 44100, 44100.0)];
    write_wav(&changed, &planar, 44100, SampleFormat::Int24).unwrap();
    let o = separate(&cat, &out, &[]);
    let (_, summaries) = lines(&out.join("stemkit-report.jsonl"));
    let s = &summaries[2]["summary"];
    assert_eq!(
        (s["ok"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(5)),
        "{s} {}",
        text(&o)
    );
    let o = separate(&cat, &out, &["--margin", "1.0,1.0", "--kernel", "17"]);
    let (_, summaries) = lines(&out.join("stemkit-report.jsonl"));
    let s = &summaries[3]["summary"];
    assert_eq!(s["ok"].as_u64(), Some(6), "{s} {}", text(&o));
    let o = separate(
        &cat,
        &out,
        &["--margin", "1.0,1.0", "--kernel", "17", "--force"],
    );
    let (_, summaries) = lines(&out.join("stemkit-report.jsonl"));
    assert_eq!(
        summaries[4]["summary"]["ok"].as_u64(),
        Some(6),
        "{}",
        text(&o)
    );
}

#[test]
fn killed_run_resumes_to_identical_outputs_and_jobs_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    catalog(&cat);
    for bad in BAD {
        std::fs::remove_file(cat.join(bad)).unwrap();
    }
    // The reference: one uninterrupted run.
    let whole = tmp.path().join("whole");
    let o = separate(&cat, &whole, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let want = outputs(&whole);
    assert_eq!(want.len(), 2 * TRACKS.len());

    // --jobs 2: the same bytes.
    let jobs = tmp.path().join("jobs");
    let o = separate(&cat, &jobs, &["--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(outputs(&jobs) == want, "--jobs 2 differs from --jobs 1");

    // Killed at several moments (SIGKILL: no cleanup runs), then resumed.
    let exe = env!("CARGO_BIN_EXE_stemkit");
    let mut interrupted = 0;
    for (k, delay_ms) in [5u64, 60, 150, 400].into_iter().enumerate() {
        let out = tmp.path().join(format!("killed-{k}"));
        let mut child = std::process::Command::new(exe)
            .args([
                "separate", "--stems", "hpr", "--device", "cpu", "--quiet", "-o",
            ])
            .arg(&out)
            .arg("--")
            .arg(&cat)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever is under a final name is complete: the uninterrupted run's bytes.
        let finals = if out.exists() {
            outputs(&out)
                .keys()
                .filter(|r| !r.ends_with(".partial"))
                .count()
        } else {
            0
        };
        if finals < want.len() {
            interrupted += 1;
        }
        if out.exists() {
            for (rel, bytes) in outputs(&out) {
                if rel.ends_with(".partial") {
                    continue; // a temporary name, never a final one
                }
                assert_eq!(
                    Some(&bytes),
                    want.get(&rel),
                    "{rel} under its final name after the kill"
                );
            }
        }
        let o = separate(&cat, &out, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let got: BTreeMap<_, _> = outputs(&out)
            .into_iter()
            .filter(|(r, _)| !r.ends_with(".partial"))
            .collect();
        assert!(
            got == want,
            "resumed run (killed after {delay_ms} ms) differs"
        );
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills landed before the run finished"
    );
}

#[test]
fn shards_partition_the_catalog_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    catalog(&cat);
    let out = tmp.path().join("out");
    for k in 0..3 {
        let shard = format!("{k}/3");
        let _ = separate(&cat, &out, &["--shard", &shard]);
    }
    let got: Vec<String> = outputs(&out).into_keys().collect();
    assert_eq!(
        got,
        expected_stems(),
        "the shards together cover the catalog"
    );
    let mut seen = BTreeMap::new();
    let mut reports = Vec::new();
    for k in 0..3 {
        let path = out.join(format!("stemkit-report-shard-{k}-of-3.jsonl"));
        let (tracks, summaries) = lines(&path);
        assert_eq!(summaries[0]["summary"]["shard"], format!("{k}/3"));
        for t in tracks {
            *seen
                .entry(t["rel"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        reports.push(path);
    }
    assert_eq!(seen.len(), TRACKS.len() + BAD.len());
    assert!(
        seen.values().all(|&n| n == 1),
        "each track in exactly one shard: {seen:?}"
    );

    let merged = out.join("merged.jsonl");
    let mut a = vec!["merge-reports", "-o", merged.to_str().unwrap(), "--json"];
    let names: Vec<String> = reports
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    a.extend(names.iter().map(String::as_str));
    let o = stemkit(&a);
    assert_eq!(
        o.status.code(),
        Some(1),
        "failed tracks make exit 1: {}",
        text(&o)
    );
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["tracks"], TRACKS.len() + BAD.len());
    assert_eq!(m["ok"], TRACKS.len());
    assert_eq!(m["failed"], BAD.len());
    assert_eq!(m["runs"], 3);
    assert!(m["separated_more_than_once"].as_array().unwrap().is_empty());
    let (tracks, summaries) = lines(&merged);
    assert_eq!(tracks.len(), TRACKS.len() + BAD.len());
    assert_eq!(summaries.len(), 1);

    // A shard run twice with --force shows up as a track delivered twice.
    let _ = separate(
        &cat,
        &out,
        &[
            "--shard",
            "1/3",
            "--force",
            "--report",
            out.join("again.jsonl").to_str().unwrap(),
        ],
    );
    let mut a = vec!["merge-reports", "-o", merged.to_str().unwrap(), "--json"];
    a.extend(names.iter().map(String::as_str));
    let again = out.join("again.jsonl");
    a.push(again.to_str().unwrap());
    let o = stemkit(&a);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !m["separated_more_than_once"].as_array().unwrap().is_empty(),
        "{m}"
    );
}

#[test]
fn bad_shard_jobs_and_read_only_output_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    catalog(&cat);
    for (args, what) in [
        (&["--shard", "3/3"][..], "--shard"),
        (&["--shard", "x"][..], "--shard"),
        (&["--jobs", "0"][..], "--jobs"),
    ] {
        let o = separate(&cat, &tmp.path().join("o"), args);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(what),
            "{}",
            text(&o)
        );
    }
    // A folder we cannot write: mode 555 (root ignores modes, so then /proc, which nobody can
    // write files into).
    let ro = tmp.path().join("read-only");
    std::fs::create_dir_all(&ro).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let ro = if std::fs::write(ro.join("probe"), b"").is_ok() {
        PathBuf::from("/proc")
    } else {
        ro
    };
    let o = separate(&cat, &ro, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("stemkit:") && l.contains("not writable"))
        .unwrap_or_else(|| panic!("no clear error: {stderr}"));
    assert!(line.contains(&*ro.to_string_lossy()), "{line}");
}
