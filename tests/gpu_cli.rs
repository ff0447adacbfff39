//! The GPU path through the `stemkit` binary and the batch driver: `--device gpu` stems equal
//! the CPU's to within the 24-bit step, `--stats` counts, `compare`, adapter errors (exit 2),
//! `auto` passing over a software adapter, and a device lost mid-batch (the file fails, or is
//! redone on the CPU with `--fallback cpu`; finished outputs stay; the batch goes on).
//! Without a GPU adapter every test prints SKIPPED and passes, unless STEMKIT_REQUIRE_GPU=1.

mod common;

use common::{stemkit, text};

use common::read_wav_planar;
use std::path::Path;
use std::process::Command;
use stemkit::audio::encode::{write_wav, SampleFormat};
use stemkit::batch::{run_batch, BatchObserver, BatchOptions, TrackOutcome};
use stemkit::demo::{render_all, Part};
use stemkit::gpu::{shared_test_context, AdapterSelector};
use stemkit::pipeline::DeliveryOptions;
use stemkit::{DeviceChoice, Engines, SeparationSpec};

fn master(dir: &Path, name: &str, seconds: f64) -> std::path::PathBuf {
    let path = dir.join(name);
    let frames = (seconds * 48000.0) as usize;
    write_wav(
        &path,
        &render_all(Part::Mix, 48000, 2, frames),
        48000,
        SampleFormat::Float32,
    )
    .unwrap();
    path
}

#[test]
fn gpu_stems_equal_cpu_stems_and_stats_count() {
    if shared_test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = master(tmp.path(), "spot.wav", 3.3);
    // (stem set, its stems, submissions per chunk)
    for (set, stems, per_chunk) in [
        ("hpr", &["harmonic", "percussive", "residual"][..], 1),
        (
            "drums,bass,melody,harmony,fx",
            &["drums", "bass", "melody", "harmony", "fx"][..],
            2,
        ),
    ] {
        let gpu_dir = tmp.path().join(format!("gpu-{}", &set[..3]));
        let cpu_dir = tmp.path().join(format!("cpu-{}", &set[..3]));
        let g = stemkit(&[
            "separate",
            "--stems",
            set,
            input.to_str().unwrap(),
            "-o",
            gpu_dir.to_str().unwrap(),
            "--device",
            "gpu",
            "--margin",
            "2",
            "--gpu-chunk-frames",
            "64",
            "--stats",
            // Chunks of 64 frames: the spatial filter, the bass profile, the melody floor and
            // the harmony hold would round them up to a whole segment.
            "--no-spatial",
            "--no-bass-profile",
            "--melody-floor",
            "off",
            "--harmony-hold",
            "off",
        ]);
        assert!(g.status.success(), "{}", text(&g));
        let stdout = String::from_utf8_lossy(&g.stdout);
        // 3.3 s at hop 512 → 310 frames → 5 chunks of 64; one submission each (two for the
        // production stems: the pitch lines are tracked between them).
        let want = format!(
            "5 chunks, {} queue submissions ({per_chunk}.0 per chunk)",
            5 * per_chunk
        );
        assert!(stdout.contains(&want), "{set}: {stdout}");
        let c = stemkit(&[
            "separate",
            "--stems",
            set,
            input.to_str().unwrap(),
            "-o",
            cpu_dir.to_str().unwrap(),
            "--device",
            "cpu",
            "--margin",
            "2",
            "--no-spatial",
            "--no-bass-profile",
            "--melody-floor",
            "off",
            "--harmony-hold",
            "off",
        ]);
        assert!(c.status.success(), "{}", text(&c));
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(gpu_dir.join("stemkit-report.json")).unwrap(),
        )
        .unwrap();
        assert!(
            report["device"].as_str().unwrap().starts_with("gpu: "),
            "{report}"
        );
        assert!(report["tracks"][0]["device"]
            .as_str()
            .unwrap()
            .starts_with("gpu: "));
        assert!(report["tracks"][0]["null_peak_dbfs"].as_f64().unwrap() < -120.0);
        for stem in stems {
            let name = format!("spot_{stem}_48k24b.wav");
            let (_, got) = read_wav_planar(&gpu_dir.join(&name));
            let (_, want) = read_wav_planar(&cpu_dir.join(&name));
            for (ch, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.len(), w.len());
                // The engines agree to ~2e-7 in float (≥ 100 dB); after rounding to 24 bits
                // the files differ by at most 3 steps (−129 dBFS). lavapipe: at most 1.
                let step = 1.0 / (1u32 << 23) as f32;
                let (i, gv, wv) = common::worst(g, w);
                assert!(
                    (gv - wv).abs() <= 3.0 * step * 1.01,
                    "{name} ch {ch}: at {i} gpu {gv} cpu {wv}"
                );
            }
        }
    }
}

#[test]
fn compare_passes_on_the_demo_and_reports_json() {
    if shared_test_context().is_none() {
        return;
    }
    // hpr, the five production stems (the default set), and those through the spatial filter.
    for (args, n) in [
        (&["--stems", "hpr"][..], 2),
        (&[][..], 5),
        (&["--spatial"][..], 5),
    ] {
        let mut a = vec!["compare", "--demo", "2", "--json"];
        a.extend(args);
        let o = stemkit(&a);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let stems = v[0]["stems"].as_array().unwrap();
        assert_eq!(stems.len(), n, "{v}");
        for s in stems {
            assert!(s["pass"].as_bool().unwrap(), "{s}");
            assert!(s["max_abs_diff"].as_f64().unwrap() < 1e-5, "{s}");
        }
    }
    // An impossible bound fails with exit 1 and says which stem.
    let o = stemkit(&[
        "compare",
        "--demo",
        "1",
        "--min-snr",
        "400",
        "--stems",
        "hpr",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("BELOW 400 dB"),
        "{}",
        text(&o)
    );
}

#[test]
fn adapter_errors_are_usage_errors() {
    if shared_test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = master(tmp.path(), "a.wav", 0.5);
    let out = tmp.path().join("out");
    for (env, extra) in [
        (None, vec!["--device", "gpu", "--adapter", "99"]),
        (None, vec!["--device", "gpu", "--adapter", "no such card"]),
        // A backend this machine lacks: no adapters at all.
        (Some("metal"), vec!["--device", "gpu"]),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stemkit"));
        cmd.args([
            "separate",
            "--stems",
            "hpr",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(&extra);
        if let Some(b) = env {
            cmd.env("WGPU_BACKEND", b);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no usable GPU"), "{extra:?}: {err}");
        assert!(!out.join("a_harmonic_48k24b.wav").exists());
    }
}

#[test]
fn auto_passes_over_a_software_adapter() {
    let Some(ctx) = shared_test_context() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = master(tmp.path(), "a.wav", 0.5);
    let out = tmp.path().join("out");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stemkit-report.json")).unwrap())
            .unwrap();
    let device = report["device"].as_str().unwrap();
    if ctx.adapter_info().device_type == wgpu::DeviceType::Cpu {
        assert_eq!(device, "cpu");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("software"),
            "{}",
            text(&o)
        );
    } else {
        assert!(device.starts_with("gpu: "), "{device}");
    }
}

/// Destroys the device when the first track finishes: a loss in the middle of a batch.
struct LoseDeviceAfterFirst(std::sync::Arc<stemkit::gpu::GpuContext>);

impl BatchObserver for LoseDeviceAfterFirst {
    fn track_finished(&mut self, _outcome: &TrackOutcome) {
        self.0.device().destroy();
    }
}

#[test]
fn device_lost_mid_batch_fails_the_file_or_falls_back() {
    if shared_test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let inputs = vec![
        master(tmp.path(), "one.wav", 1.0),
        master(tmp.path(), "two.wav", 1.0),
    ];
    for fallback in [false, true] {
        let out = tmp.path().join(format!("out-{fallback}"));
        // A context of our own (not the shared one), lost after the first track.
        let engines = Engines::new(
            SeparationSpec::default(),
            DeviceChoice::Gpu,
            AdapterSelector::Default,
            None,
            fallback,
        )
        .unwrap();
        let mut observer = LoseDeviceAfterFirst(engines.gpu_context().unwrap().clone());
        let report = run_batch(
            &engines,
            &inputs,
            &out,
            &DeliveryOptions::default(),
            serde_json::json!({}),
            &BatchOptions::default(),
            &mut observer,
        )
        .unwrap();
        assert_eq!(report.tracks.len(), 2, "the batch goes on");
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wav"))
            .collect();
        files.sort();
        match &report.tracks[0] {
            TrackOutcome::Ok(r) => assert!(r.device.starts_with("gpu: "), "{}", r.device),
            t => panic!("first track, before the loss: {t:?}"),
        }
        match (fallback, &report.tracks[1]) {
            (false, TrackOutcome::Failed { error, .. }) => {
                assert!(error.contains("device lost"), "{error}");
                // The first track's stems are kept; nothing of the second is left.
                assert_eq!(
                    files,
                    ["one_harmonic_48k24b.wav", "one_percussive_48k24b.wav"]
                );
            }
            (true, TrackOutcome::Ok(r)) => {
                assert_eq!(r.device, "cpu");
                assert!(
                    r.warnings.iter().any(|w| w.contains("redone on the CPU")),
                    "{:?}",
                    r.warnings
                );
                assert!(r.null_peak_dbfs < -120.0);
                assert_eq!(files.len(), 4, "{files:?}");
            }
            (f, t) => panic!("fallback {f}: unexpected outcome {t:?}"),
        }
    }
}
