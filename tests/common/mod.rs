//! Helpers shared by the integration tests: seeded signals, WAV reading, error metrics that
//! report the first difference.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use stemkit::rng::Rng;

/// Reads a float or integer WAV as planar f32 with hound (independent of stemkit's decoder).
pub fn read_wav_planar(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let ch = spec.channels as usize;
    let inter: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 * scale)
                .collect()
        }
    };
    let mut planar = vec![Vec::with_capacity(inter.len() / ch); ch];
    for (i, v) in inter.into_iter().enumerate() {
        planar[i % ch].push(v);
    }
    (spec.sample_rate, planar)
}

/// Relative L2 error ‖got − want‖ / ‖want‖ (f64 accumulation).
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "length: got {}, want {}",
        got.len(),
        want.len()
    );
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (g as f64 - w as f64).powi(2);
        den += (w as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// Index and values of the largest absolute difference.
pub fn worst(got: &[f32], want: &[f32]) -> (usize, f32, f32) {
    let mut best = (0, 0.0f32, 0.0f32);
    let mut err = -1.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > err {
            err = (g - w).abs();
            best = (i, g, w);
        }
    }
    best
}

/// Asserts the relative L2 error is below `tol`, printing the worst element on failure.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_l2(got, want);
    if e.is_nan() || e >= tol {
        let (i, g, w) = worst(got, want);
        panic!(
            "{what}: relative L2 {e:.3e} >= {tol:.0e} (len {}); worst at {i}: got {g}, want {w}",
            want.len()
        );
    }
}

/// Asserts exact equality, printing the first difference.
pub fn assert_identical(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits())
    {
        panic!(
            "{what}: first difference at {i} of {}: got {}, want {}",
            want.len(),
            got[i],
            want[i]
        );
    }
}

/// Size of one unit in the last place of an f32 of magnitude `x`.
pub fn ulp(x: f32) -> f32 {
    let x = x.abs();
    if x.is_finite() {
        f32::from_bits(x.to_bits() + 1) - x
    } else {
        f32::INFINITY
    }
}

/// Asserts `|got − want| ≤ ulps · ulp(max(|want|, scale))` element by element, printing the first
/// difference beyond it. `scale` is the magnitude of the operands a value was computed from (a
/// difference of two large numbers is judged on their size, not on the small result).
pub fn assert_ulps(what: &str, got: &[f32], want: &[f32], ulps: f32, scale: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let allowed = ulps * ulp(w.abs().max(scale));
        let within = (g - w).abs() <= allowed; // false for NaN
        if !within {
            panic!(
                "{what}: first difference beyond {ulps} ULP at {i} of {}: got {g}, want {w} (allowed {allowed:e})",
                want.len()
            );
        }
    }
}

/// A seeded test "mix": tones plus decaying noise bursts, in [-1, 1].
pub fn mix(seed: u64, len: usize, rate: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let freqs: Vec<f32> = (0..3).map(|_| 100.0 + 800.0 * rng.uniform()).collect();
    let mut y: Vec<f32> = (0..len)
        .map(|i| {
            let t = i as f32 / rate;
            freqs
                .iter()
                .map(|f| 0.15 * (std::f32::consts::TAU * f * t).sin())
                .sum::<f32>()
                + 0.02 * rng.signed()
        })
        .collect();
    for _ in 0..(len / 8000).max(1) {
        let at = rng.below(len);
        for j in 0..(len - at).min(1500) {
            y[at + j] += 0.4 * rng.signed() * (-(j as f32) / 250.0).exp();
        }
    }
    y
}

/// Runs the `stemkit` binary built with the tests.
pub fn stemkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stemkit"))
        .args(args)
        .output()
        .expect("run stemkit")
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A mix with a bass line, a melody and a few clicks at 48 kHz: lines the trackers lock onto.
pub fn production_signal(channels: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let rate = 48000.0;
    let tau = std::f32::consts::TAU;
    let notes: Vec<(f32, f32)> = (0..8)
        .map(|_| (55.0 * (1.0 + rng.uniform()), 330.0 * (1.0 + rng.uniform())))
        .collect();
    let base: Vec<f32> = (0..len)
        .map(|i| {
            let t = i as f32 / rate;
            let (fb, fm) = notes[(t * 2.0) as usize % notes.len()];
            let bass: f32 = (1..4)
                .map(|h| 0.2 / h as f32 * (tau * fb * h as f32 * t).sin())
                .sum();
            let vib = fm * (1.0 + 0.01 * (tau * 5.0 * t).sin());
            let lead: f32 = (1..6)
                .map(|h| 0.1 / h as f32 * (tau * vib * h as f32 * t).sin())
                .sum();
            let click = if i % 12000 < 40 {
                0.5 * rng.signed()
            } else {
                0.0
            };
            bass + lead + click + 0.003 * rng.signed()
        })
        .collect();
    (0..channels)
        .map(|c| {
            base.iter()
                .map(|v| v * (1.0 - 0.2 * c as f32) + 0.002 * rng.signed())
                .collect()
        })
        .collect()
}

/// SNR in dB of `got` against `want` (relative to `want`'s energy, floored at 1e-12 of the
/// input's so that near-silent stems are judged against the signal).
pub fn snr_db(got: &[f32], want: &[f32], input_energy: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        sig += (w as f64).powi(2);
        err += (g as f64 - w as f64).powi(2);
    }
    let sig = sig.max(input_energy * 1e-12).max(1e-30);
    if err == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sig / err).log10()
    }
}

/// Asserts every stem of every channel (`[stem][channel]`) of `got` is within `min_db` of
/// `want`'s; prints the worst.
pub fn assert_stems_match(
    what: &str,
    got: &[Vec<Vec<f32>>],
    want: &[Vec<Vec<f32>>],
    x: &[Vec<f32>],
    min_db: f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: stem count");
    let mut lowest = f64::INFINITY;
    for (s, (gs, ws)) in got.iter().zip(want).enumerate() {
        for (ch, (g, w)) in gs.iter().zip(ws).enumerate() {
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{what}: stem {s} ch {ch} has NaN"
            );
            let e: f64 = x[ch].iter().map(|v| (*v as f64).powi(2)).sum();
            let db = snr_db(g, w, e);
            if db < min_db {
                let (i, gv, wv) = worst(g, w);
                panic!("{what}: stem {s} ch {ch}: SNR {db:.1} dB < {min_db} dB; worst at {i}: got {gv}, want {wv}");
            }
            lowest = lowest.min(db);
        }
    }
    println!("{what}: worst stem SNR {lowest:.1} dB");
}

/// The five production stems at 48 kHz through the spatial filter with segments of `segment`
/// frames (short ones, so a few seconds cross several), the filter up to `band` Hz (infinite:
/// every bin), blocks of `block` frames (rounded up to whole segments).
pub fn spatial_params(segment: usize, band: f32, block: usize) -> stemkit::SeparationParams {
    let mut p = stemkit::SeparationSpec {
        stems: "drums,bass,melody,harmony,fx".into(),
        block_frames: block,
        production: stemkit::production::ProductionSpec {
            spatial_max_hz: band,
            ..Default::default()
        },
        ..Default::default()
    }
    .resolve(48000)
    .unwrap();
    p.production.spatial_frames = segment;
    // The bass profile, the melody floor and the harmony hold on the same grid, so blocks of a
    // few segments stay small.
    p.production.profile_frames = segment;
    p.production.melody_floor_frames = segment;
    p.production.hold_frames = segment;
    p
}
