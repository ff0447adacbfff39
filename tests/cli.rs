//! The `stemkit` binary end to end: naming, formats, rates, the report, exit codes, the null
//! test, and every kind of bad input (one clear line, the batch goes on, nothing written for it).

mod common;

use common::{stemkit, text};

use common::read_wav_planar;
use std::path::{Path, PathBuf};
use std::process::Command;
use stemkit::demo::{render_all, Part};

fn write_int_wav(path: &Path, planar: &[Vec<f32>], rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: planar.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let scale = (1i64 << (bits - 1)) as f32;
    for i in 0..planar[0].len() {
        for ch in planar {
            w.write_sample((ch[i] * scale).round().clamp(-scale, scale - 1.0) as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

fn write_float_wav(path: &Path, planar: &[Vec<f32>], rate: u32) {
    let spec = hound::WavSpec {
        channels: planar.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planar[0].len() {
        for ch in planar {
            w.write_sample(ch[i]).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stemkit-report.json")).unwrap())
        .unwrap()
}

#[test]
fn demo_runs_and_nulls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = stemkit(&["demo", "-o", dir.to_str().unwrap(), "--seconds", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    // The default stems: the five production stems.
    let stems = files_in(&dir.join("stems"));
    for stem in ["drums", "bass", "melody", "harmony", "fx"] {
        assert!(
            stems.contains(&format!("demo_mix_{stem}_48k24b.wav")),
            "{stems:?}"
        );
    }
    let r = report(&dir.join("stems"));
    let null = r["tracks"][0]["null_peak_dbfs"].as_f64().unwrap();
    assert!(null < -120.0, "null residual {null} dBFS");
    // The spatial filter's stems null too.
    let dir = tmp.path().join("spatial");
    let o = stemkit(&[
        "demo",
        "-o",
        dir.to_str().unwrap(),
        "--seconds",
        "3",
        "--spatial",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = report(&dir.join("stems"));
    assert_eq!(r["params"]["production"]["spatial"], true, "{r}");
    let null = r["tracks"][0]["null_peak_dbfs"].as_f64().unwrap();
    assert!(null < -120.0, "spatial: null residual {null} dBFS");
}

#[test]
fn naming_rates_depths_and_lengths() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("spot.wav");
    let len = 44100 * 2 + 17;
    write_int_wav(&input, &render_all(Part::Mix, 44100, 2, len), 44100, 16);
    for (args, suffix, rate, bits) in [
        (vec![], "_48k24b.wav", 48000u32, 24u16),
        (
            vec!["--bits", "16", "--rate", "44.1k"],
            "_44.1k16b.wav",
            44100,
            16,
        ),
        (
            vec!["--bits", "32f", "--rate", "source"],
            "_44.1k32f.wav",
            44100,
            32,
        ),
        (vec!["--rate", "96000"], "_96k24b.wav", 96000, 24),
    ] {
        let out = tmp.path().join(format!("out{suffix}"));
        let mut a = vec![
            "separate",
            "--stems",
            "hpr",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        a.extend(args.iter().copied());
        let o = stemkit(&a);
        assert!(o.status.success(), "{}", text(&o));
        let want_len = ((len as u64 * rate as u64 + 22050) / 44100) as usize;
        for stem in ["harmonic", "percussive"] {
            let path = out.join(format!("spot_{stem}{suffix}"));
            let r = hound::WavReader::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; have {:?}", path.display(), files_in(&out)));
            assert_eq!(r.spec().sample_rate, rate);
            assert_eq!(r.spec().bits_per_sample, bits);
            assert_eq!(r.spec().channels, 2);
            assert_eq!(r.duration() as usize, want_len, "{} length", path.display());
        }
        // No residual at margin 1, no temporary files left.
        assert!(
            !files_in(&out)
                .iter()
                .any(|f| f.contains("residual") || f.ends_with(".partial")),
            "{:?}",
            files_in(&out)
        );
        // The stems null against the master resampled the same way.
        let stems: Vec<PathBuf> = ["harmonic", "percussive"]
            .iter()
            .map(|s| out.join(format!("spot_{s}{suffix}")))
            .collect();
        let limit = if bits == 16 { "-80" } else { "-120" };
        let gain = report(&out)["tracks"][0]["gain"]
            .as_f64()
            .unwrap()
            .to_string();
        let o = stemkit(&[
            "null-test",
            input.to_str().unwrap(),
            stems[0].to_str().unwrap(),
            stems[1].to_str().unwrap(),
            "--max-dbfs",
            limit,
            "--gain",
            &gain,
        ]);
        assert!(o.status.success(), "{suffix}: {}", text(&o));
    }
    // A custom template, sanitised: no path separators reach the file system.
    let out = tmp.path().join("custom");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--name-template",
        "../{stem}/{track}",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let names = files_in(&out);
    assert!(
        names
            .iter()
            .any(|n| n.contains("harmonic") && n.contains("spot") && n.ends_with(".wav")),
        "{names:?}"
    );
    assert!(!tmp.path().join("harmonic").exists());
}

#[test]
fn margin_gives_residual_and_report_has_the_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("mono.wav");
    write_float_wav(&input, &render_all(Part::Mix, 48000, 1, 48000 * 2), 48000);
    let out = tmp.path().join("out");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--margin",
        "3",
        "--kernel",
        "0.2s",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        o.stdout.is_empty(),
        "--quiet prints nothing on success: {}",
        text(&o)
    );
    let names = files_in(&out);
    for stem in ["harmonic", "percussive", "residual"] {
        assert!(
            names.contains(&format!("mono_{stem}_48k24b.wav")),
            "{names:?}"
        );
    }
    let r = report(&out);
    let t = &r["tracks"][0];
    assert_eq!(t["status"], "ok");
    assert_eq!(t["rate_in"], 48000);
    assert_eq!(t["rate_out"], 48000);
    assert_eq!(t["channels"], 1);
    assert!((t["duration_s"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    assert_eq!(t["stems"].as_array().unwrap().len(), 3);
    assert!(t["stems"][0]["peak_dbfs"].as_f64().unwrap() < 0.0);
    assert!(t["null_peak_dbfs"].as_f64().unwrap() < -120.0, "{t}");
    assert!(t["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["ok"], 1);
    assert_eq!(r["failed"], 0);
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("a.wav");
    write_float_wav(&input, &[vec![0.1; 4096]], 48000);
    let out = tmp.path().join("out");
    for bad in [
        vec!["--n-fft", "1000"],
        vec!["--hop", "4096"],
        vec!["--margin", "0.5"],
        vec!["--power", "0"],
        vec!["--bits", "12"],
        vec!["--rate", "4000"],
        vec!["--kernel", "abc"],
        vec!["--stems", "vocals"],
        vec!["--name-template", "{nope}"],
        vec!["--no-such-flag"],
        vec!["--device", "tpu"],
        vec!["--fallback", "maybe"],
        vec!["--gpu-chunk-frames", "0"],
        vec!["--device", "cpu", "--adapter", "0"],
        vec!["--spatial-max-freq", "0hz"],
        vec!["--spatial-max-freq", "loud"],
        vec!["--melody-overtones", "1.5"],
        vec!["--melody-overtones", "some"],
        vec!["--harmony-hold", "20000ms"],
        vec!["--harmony-hold", "long"],
    ] {
        let mut a = vec![
            "separate",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        a.extend(bad.iter().copied());
        let o = stemkit(&a);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(!o.stderr.is_empty());
        if bad.contains(&"--harmony-hold") {
            assert!(text(&o).contains("--harmony-hold"), "{bad:?}: {}", text(&o));
        }
    }
    for sub in [
        "separate",
        "null-test",
        "demo",
        "bench",
        "compare",
        "devices",
    ] {
        let o = stemkit(&[sub, "--help"]);
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Example"),
            "{sub}: {}",
            text(&o)
        );
    }
}

/// Writes each kind of bad input into `dir` and returns (file name, words the error must contain).
fn bad_inputs(dir: &Path) -> Vec<(String, &'static str)> {
    let mut v = Vec::new();
    std::fs::write(dir.join("empty.wav"), b"").unwrap();
    v.push(("empty.wav".into(), "empty"));
    let mut rng = stemkit::rng::Rng::new(3);
    let noise: Vec<u8> = (0..5000).map(|_| rng.below(256) as u8).collect();
    std::fs::write(dir.join("noise.wav"), &noise).unwrap();
    v.push(("noise.wav".into(), "not an audio file"));
    std::fs::write(
        dir.join("text.mp3"),
        b"this is not audio at all, just text\n".repeat(50),
    )
    .unwrap();
    v.push(("text.mp3".into(), "not an audio file"));
    // A valid header claiming 48000 frames, followed by 1000.
    let good = dir.join("tmp_full.wav");
    write_int_wav(&good, &[vec![0.1; 48000]], 48000, 16);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::remove_file(&good).unwrap();
    std::fs::write(dir.join("truncated.wav"), &bytes[..44 + 2000]).unwrap();
    v.push(("truncated.wav".into(), "truncated"));
    std::fs::write(dir.join("header_only.wav"), &bytes[..44]).unwrap();
    v.push(("header_only.wav".into(), "truncated"));
    let mut nan = vec![0.1f32; 48000];
    nan[777] = f32::NAN;
    write_float_wav(&dir.join("nan.wav"), &[nan], 48000);
    v.push(("nan.wav".into(), "NaN"));
    let mut inf = vec![0.1f32; 48000];
    inf[5] = f32::INFINITY;
    write_float_wav(&dir.join("inf.wav"), &[inf], 48000);
    v.push(("inf.wav".into(), "infinite"));
    write_float_wav(&dir.join("zero.wav"), &[vec![]], 48000);
    v.push(("zero.wav".into(), "no audio"));
    write_float_wav(&dir.join("short.wav"), &[vec![0.1; 1000]], 48000);
    v.push(("short.wav".into(), "shorter than one STFT frame"));
    // A WAV whose codec tag no decoder knows.
    let mut odd = bytes[..44].to_vec();
    odd[20..22].copy_from_slice(&0x1234u16.to_le_bytes());
    odd.extend_from_slice(&[0u8; 2000]);
    std::fs::write(dir.join("codec.wav"), &odd).unwrap();
    v.push(("codec.wav".into(), "unsupported"));
    v
}

#[test]
fn bad_inputs_fail_alone_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let bad = bad_inputs(&inputs);
    write_float_wav(
        &inputs.join("good.wav"),
        &render_all(Part::Mix, 48000, 2, 48000),
        48000,
    );
    let out = tmp.path().join("out");
    let mut args = vec![
        "separate".to_string(),
        "--stems".into(),
        "hpr".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
        "--quiet".into(),
    ];
    for (name, _) in &bad {
        args.push(inputs.join(name).to_str().unwrap().into());
    }
    args.push(inputs.join("good.wav").to_str().unwrap().into());
    let o = Command::new(env!("CARGO_BIN_EXE_stemkit"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    for (name, reason) in &bad {
        let line = stderr
            .lines()
            .find(|l| l.contains(name.as_str()))
            .unwrap_or_else(|| panic!("no error line for {name}: {stderr}"));
        assert!(
            line.to_lowercase().contains(&reason.to_lowercase()),
            "{name}: expected {reason:?} in {line:?}"
        );
        let stem = name.trim_end_matches(".wav").trim_end_matches(".mp3");
        assert!(
            !files_in(&out)
                .iter()
                .any(|f| f.starts_with(&format!("{stem}_"))),
            "outputs written for {name}: {:?}",
            files_in(&out)
        );
    }
    // (`--device auto` may add its one line saying it runs on the CPU; a Vulkan driver may
    // add its own lines, not prefixed `stemkit:`.)
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("stemkit:") && !l.contains("running on the CPU"))
            .count(),
        bad.len(),
        "one line per bad input: {stderr}"
    );
    // The good file was delivered; nothing temporary is left.
    let names = files_in(&out);
    assert!(
        names.contains(&"good_harmonic_48k24b.wav".to_string()),
        "{names:?}"
    );
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    let r = report(&out);
    assert_eq!(r["failed"], bad.len());
    assert_eq!(r["ok"], 1);
    let failed: Vec<_> = r["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "failed")
        .collect();
    assert!(failed
        .iter()
        .all(|t| !t["error"].as_str().unwrap().is_empty()));
}

#[test]
fn folders_recurse_and_content_decides() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir_all(inputs.join("sub/deeper")).unwrap();
    write_float_wav(
        &inputs.join("sub/deeper/one.wav"),
        &[vec![0.1; 8192]],
        48000,
    );
    write_int_wav(
        &inputs.join("two.wav"),
        &[vec![0.2; 8192], vec![0.1; 8192]],
        22050,
        24,
    );
    std::fs::write(inputs.join("notes.txt"), "not audio").unwrap();
    let out = tmp.path().join("out");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        inputs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The catalog's folders are mirrored under the output folder.
    let names = files_in(&out);
    assert!(
        names.contains(&"two_percussive_48k24b.wav".to_string()),
        "{names:?}"
    );
    let deeper = files_in(&out.join("sub/deeper"));
    assert!(
        deeper.contains(&"one_harmonic_48k24b.wav".to_string()),
        "{deeper:?}"
    );
    assert_eq!(report(&out)["ok"], 2);
}

#[test]
fn six_channels_keep_their_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("surround.wav");
    let mut rng = stemkit::rng::Rng::new(6);
    let x: Vec<Vec<f32>> = (0..6)
        .map(|c| {
            (0..24000)
                .map(|i| 0.2 * ((i * (c + 1)) as f32 * 0.01).sin() + 0.05 * rng.signed())
                .collect()
        })
        .collect();
    write_float_wav(&input, &x, 48000);
    let out = tmp.path().join("out");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (rate, h) = read_wav_planar(&out.join("surround_harmonic_48k24b.wav"));
    let (_, p) = read_wav_planar(&out.join("surround_percussive_48k24b.wav"));
    assert_eq!((rate, h.len(), h[0].len()), (48000, 6, 24000));
    // Channels are separated independently: each channel's stems sum to that channel.
    for c in 0..6 {
        let peak = (0..24000)
            .map(|i| (h[c][i] + p[c][i] - x[c][i]).abs())
            .fold(0.0f32, f32::max);
        assert!(peak < 1e-6, "channel {c}: residual {peak}");
    }
    assert!(
        report(&out)["tracks"][0]["null_peak_dbfs"]
            .as_f64()
            .unwrap()
            < -120.0
    );
}

#[test]
fn same_track_name_twice_in_a_batch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    write_float_wav(&a.join("song.wav"), &[vec![0.1; 8192]], 48000);
    write_float_wav(&b.join("song.wav"), &[vec![0.2; 8192]], 48000);
    let out = tmp.path().join("out");
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        a.join("song.wav").to_str().unwrap(),
        b.join("song.wav").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already writes this name"),
        "{}",
        text(&o)
    );
    // The first track's stems are the first track's.
    let (_, h) = read_wav_planar(&out.join("song_harmonic_48k24b.wav"));
    let (_, p) = read_wav_planar(&out.join("song_percussive_48k24b.wav"));
    assert!((h[0][4000] + p[0][4000] - 0.1).abs() < 1e-5);
}

#[test]
fn never_writes_over_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("x_harmonic.wav");
    write_float_wav(&input, &[vec![0.1; 8192]], 48000);
    let before = std::fs::read(&input).unwrap();
    // Template "{track}" with track "x" and stem "harmonic" would be x_harmonic.wav = the input.
    let o = stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        tmp.path().to_str().unwrap(),
        "--name-template",
        "x_{stem}",
        "--rate",
        "source",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("one of the inputs"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "input changed");
}

#[test]
fn clipping_stems_get_one_common_gain() {
    // A master that peaks above full scale in float: integer stems would clip, so every stem
    // gets the same gain, which the report records, and the null test holds with that gain.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("hot.wav");
    let mut x = render_all(Part::Mix, 48000, 2, 48000);
    x.iter_mut().flatten().for_each(|v| *v *= 4.0);
    write_float_wav(&input, &x, 48000);
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
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("common gain"),
        "{}",
        text(&o)
    );
    let t = &report(&out)["tracks"][0];
    let gain = t["gain"].as_f64().unwrap();
    assert!(gain < 0.6, "gain {gain}");
    assert!(t["warnings"][0].as_str().unwrap().contains("common gain"));
    for s in t["stems"].as_array().unwrap() {
        assert!(s["peak_dbfs"].as_f64().unwrap() <= 0.0, "{s}");
    }
    assert!(t["null_peak_dbfs"].as_f64().unwrap() < -120.0, "{t}");
    let h = out.join("hot_harmonic_48k24b.wav");
    let p = out.join("hot_percussive_48k24b.wav");
    let g = gain.to_string();
    let o = stemkit(&[
        "null-test",
        input.to_str().unwrap(),
        h.to_str().unwrap(),
        p.to_str().unwrap(),
        "--gain",
        &g,
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn null_test_fails_when_a_stem_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("m.wav");
    write_float_wav(&input, &render_all(Part::Mix, 48000, 2, 48000), 48000);
    let out = tmp.path().join("out");
    assert!(stemkit(&[
        "separate",
        "--stems",
        "hpr",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet"
    ])
    .status
    .success());
    let h = out.join("m_harmonic_48k24b.wav");
    let p = out.join("m_percussive_48k24b.wav");
    let o = stemkit(&[
        "null-test",
        input.to_str().unwrap(),
        h.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PASS"));
    let o = stemkit(&["null-test", input.to_str().unwrap(), h.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
    // Stems decode back to what the report says: 24-bit, the master's length.
    let (rate, planar) = read_wav_planar(&h);
    assert_eq!((rate, planar.len(), planar[0].len()), (48000, 2, 48000));
    // A NaN in a stem is an infinite residual, not one that max() skips.
    let mut bad = render_all(Part::Mix, 48000, 2, 48000);
    bad[1][777] = f32::NAN;
    let nan = tmp.path().join("nan.wav");
    write_float_wav(&nan, &bad, 48000);
    let o = stemkit(&["null-test", input.to_str().unwrap(), nan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn production_subsets_get_a_rest_stem_unless_no_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("spot.wav");
    write_float_wav(&input, &render_all(Part::Mix, 48000, 2, 48000), 48000);
    for (extra, want) in [
        (vec!["--stems", "drums,bass"], vec!["bass", "drums", "rest"]),
        (
            vec!["--stems", "bass,drums", "--no-rest"],
            vec!["bass", "drums"],
        ),
        (vec!["--stems", "drums,rest"], vec!["drums", "rest"]),
    ] {
        let out = tmp.path().join(extra.join("_").replace(',', "-"));
        let mut a = vec![
            "separate",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ];
        a.extend(extra.iter().copied());
        let o = stemkit(&a);
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
        let wavs: Vec<String> = files_in(&out)
            .into_iter()
            .filter(|n| n.ends_with(".wav"))
            .collect();
        let want: Vec<String> = want
            .iter()
            .map(|s| format!("spot_{s}_48k24b.wav"))
            .collect();
        assert_eq!(wavs, want, "{extra:?}");
        let r = report(&out);
        let null = r["tracks"][0]["null_peak_dbfs"].as_f64().unwrap();
        if extra.contains(&"--no-rest") {
            assert!(null > -60.0, "without rest the stems do not null: {null}");
        } else {
            assert!(null < -120.0, "{extra:?}: null {null} dBFS");
        }
    }
}

#[test]
fn bench_rounds_against_hpr_report_medians_and_the_ratio() {
    // Two rounds of a 2 s mix, five stems alternating with hpr: both lines carry a median of 2
    // runs and a range and a CPU time, the ratio line is the ratio of the two medians printed,
    // and the CPU-time ratio line that of the two CPU times.
    let dir = tempfile::tempdir().unwrap();
    let o = stemkit(&[
        "bench",
        "--seconds",
        "2",
        "--rounds",
        "2",
        "--against-hpr",
        "--dir",
        dir.path().to_str().unwrap(),
        "--",
        "--device",
        "cpu",
        "--no-loudness",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let number_after = |line: &str, key: &str| -> f64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("{key:?} in {line}"))
            + key.len();
        line[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let median = |line: &str| number_after(line, " in ");
    assert!(lines[0].contains("--device cpu --no-loudness:") && lines[0].contains("median of 2"));
    assert!(lines[1].contains("--stems hpr:") && lines[1].contains("median of 2"));
    let ratio: f64 = lines[2]
        .strip_prefix("ratio: ")
        .and_then(|r| r.split('x').next())
        .expect("a ratio line")
        .parse()
        .unwrap();
    // The medians are printed to the millisecond, the ratio from the unrounded ones: on a 2 s
    // bench (a few ms a run) the rounding alone moves the quotient by several percent.
    let (five, hpr) = (median(lines[0]), median(lines[1]));
    let (lo, hi) = (
        (five - 5e-4) / (hpr + 5e-4),
        (five + 5e-4) / (hpr - 5e-4).max(1e-9),
    );
    assert!(
        ratio >= lo - 0.01 && ratio <= hi + 0.01,
        "ratio {ratio} outside [{lo}, {hi}] from the printed medians: {stdout}"
    );
    let cpu_ratio: f64 = lines[3]
        .strip_prefix("CPU-time ratio: ")
        .and_then(|r| r.split('x').next())
        .expect("a CPU-time ratio line")
        .parse()
        .unwrap();
    let (five, hpr) = (
        number_after(lines[0], "CPU time "),
        number_after(lines[1], "CPU time "),
    );
    assert!(five > 0.0 && hpr > 0.0, "{stdout}");
    let (lo, hi) = (
        (five - 5e-4) / (hpr + 5e-4),
        (five + 5e-4) / (hpr - 5e-4).max(1e-9),
    );
    assert!(
        cpu_ratio >= lo - 0.01 && cpu_ratio <= hi + 0.01,
        "CPU-time ratio {cpu_ratio} outside [{lo}, {hi}] from the printed CPU times: {stdout}"
    );
    // A bad count is a usage error.
    let o = stemkit(&["bench", "--seconds", "2", "--rounds", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
