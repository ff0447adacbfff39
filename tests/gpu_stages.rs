//! Every GPU stage against its CPU twin (`stemkit::stages::*`) on fresh seeded random inputs, at
//! several sizes, with each stage's output buffer poisoned with NaN before the run.
//! Tolerances: FFTs relative L2 < 1e-6 (vs the CPU FFT and vs the naive f64 DFT); frames,
//! medians and hard masks identical given identical inputs. WGSL lets a device round a division
//! to 2.5 ULP and fuse a multiply-add, so: soft masks (power 1, 2) within 16 ULP (three divisions
//! and two squarings: ≤ 2·(2.5 + 2.5) + 2.5 + rounding), overlap-add within 4 ULP (one division);
//! lavapipe gives both bit-identical, an H100 differs by up to ~5 ULP in the masks. Other powers
//! relative L2 < 1e-6 (WGSL's pow is not libm's).
//! Without a GPU adapter every test prints SKIPPED and passes, unless STEMKIT_REQUIRE_GPU=1.

mod common;

use common::{assert_close, assert_identical, assert_ulps};
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;
use std::sync::Arc;
use stemkit::gpu::pipelines::choose_fft_path;
use stemkit::gpu::{shared_test_context, FftPath, GpuContext, StageRunner};
use stemkit::reference;
use stemkit::rng::Rng;
use stemkit::stages::fft::ForwardFft;
use stemkit::stages::frame::{frame_windowed, hann_periodic, SignalView};
use stemkit::stages::ifft::InverseFft;
use stemkit::stages::magnitude::magnitude;
use stemkit::stages::mask::{apply_mask, hpss_masks, steady_gate};
use stemkit::stages::median::{median_freq, median_time, median_time_tapped, MedianScratch};
use stemkit::stages::overlap_add::{overlap_add, WindowSumSquare};
use stemkit::HpssParams;

const ALL_N_FFT: [usize; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];

fn gpu() -> Option<Arc<GpuContext>> {
    shared_test_context()
}

/// The FFT paths the device can run at `n_fft`: the global one always, the workgroup one where
/// it fits.
fn paths(ctx: &GpuContext, n_fft: usize) -> Vec<FftPath> {
    let mut p = vec![FftPath::Global];
    if choose_fft_path(n_fft, &ctx.limits()) == FftPath::Workgroup {
        p.insert(0, FftPath::Workgroup);
    }
    p
}

/// Soft-mask tolerance in ULP (see the module comment).
const MASK_ULPS: f32 = 16.0;

fn flat(z: &[Complex32]) -> Vec<f32> {
    z.iter().flat_map(|c| [c.re, c.im]).collect()
}

#[test]
fn frame_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 1024, FftPath::Workgroup).unwrap();
    let window = hann_periodic(1024);
    let mut rng = Rng::new(1);
    // (signal length, offset of the held samples, first frame, frames, hop, channels)
    for &(len, offset, first, count, hop, channels) in &[
        (5000usize, 0i64, 0usize, 12usize, 256usize, 1usize),
        (333, 0, 0, 3, 100, 2),      // shorter than one frame
        (7777, 2000, 9, 17, 512, 6), // held from sample 2000, frames past the end
        (4097, 1500, 5, 4, 511, 2),  // odd hop and length
    ] {
        let data: Vec<Vec<f32>> = (0..channels).map(|_| rng.signal(len)).collect();
        let views: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let got = runner.frame(&views, offset, first, count, hop).unwrap();
        let mut want = Vec::new();
        for ch in &data {
            for t in first..first + count {
                let mut f = vec![0.0; 1024];
                frame_windowed(
                    SignalView {
                        samples: ch,
                        offset,
                    },
                    t,
                    hop,
                    &window,
                    &mut f,
                );
                want.extend(f);
            }
        }
        assert_identical(
            &format!("frame len {len} offset {offset} first {first} hop {hop} ch {channels}"),
            &got,
            &want,
        );
    }
}

#[test]
fn fft_matches_cpu_and_naive_dft_at_every_size() {
    let Some(ctx) = gpu() else { return };
    let mut planner = RealFftPlanner::new();
    for (i, &n) in ALL_N_FFT.iter().enumerate() {
        let rows = if n >= 8192 { 2 } else { 5 };
        let frames = Rng::new(100 + i as u64).signal(rows * n);
        let fft = ForwardFft::new(&mut planner, n);
        let bins = n / 2 + 1;
        let mut want = vec![Complex32::default(); rows * bins];
        let mut scratch = vec![Complex32::default(); fft.scratch_len()];
        for (f, s) in frames.chunks(n).zip(want.chunks_mut(bins)) {
            fft.process(&mut f.to_vec(), s, &mut scratch);
        }
        let naive: Vec<f32> = reference::dft_real(&frames[..n])
            .iter()
            .flat_map(|z| [z.re as f32, z.im as f32])
            .collect();
        for path in paths(&ctx, n) {
            let runner = StageRunner::new(ctx.clone(), n, path).unwrap();
            let got = runner.fft(&frames).unwrap();
            let what = format!("fft n={n} {path:?}");
            println!(
                "{what}: rel L2 {:.2e} vs realfft, {:.2e} vs naive DFT",
                common::rel_l2(&flat(&got), &flat(&want)),
                common::rel_l2(&flat(&got[..bins]), &naive)
            );
            assert_close(&what, &flat(&got), &flat(&want), 1e-6);
            assert_close(
                &format!("{what} vs naive DFT"),
                &flat(&got[..bins]),
                &naive,
                1e-6,
            );
        }
    }
}

#[test]
fn magnitude_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 512, FftPath::Workgroup).unwrap();
    let mut rng = Rng::new(3);
    let bins = 257;
    let rows = 40;
    let spectra: Vec<Complex32> = (0..rows * bins)
        .map(|i| {
            // Scales from 1e-6 to 1e3, exact zeros and pure reals/imaginaries.
            let s = 10f32.powi((i % 10) - 6);
            match i % 23 {
                0 => Complex32::new(0.0, 0.0),
                1 => Complex32::new(rng.signed() * s, 0.0),
                2 => Complex32::new(0.0, rng.signed() * s),
                _ => Complex32::new(rng.signed() * s, rng.signed() * s),
            }
        })
        .collect();
    let got = runner.magnitude(&spectra).unwrap();
    let mut want = vec![0.0; spectra.len()];
    magnitude(&spectra, &mut want);
    let off = got
        .iter()
        .zip(&want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count();
    let worst_ulps = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g.to_bits() as i64 - w.to_bits() as i64).abs())
        .max()
        .unwrap();
    println!(
        "magnitude: {off} of {} differ from the CPU, worst by {worst_ulps} ulps",
        want.len()
    );
    assert!(
        worst_ulps <= 1,
        "magnitude: {off} of {} differ, worst by {worst_ulps} ulps",
        want.len()
    );
    assert_close("magnitude", &got, &want, 1e-7);
}

/// Random magnitudes; with `ties`, quantised to a few levels so windows hold many equal values.
fn magnitudes(rng: &mut Rng, n: usize, ties: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = rng.uniform();
            if ties {
                (v * 4.0).floor() * 0.25
            } else {
                v * v * 3.0
            }
        })
        .collect()
}

#[test]
fn median_time_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 256, FftPath::Workgroup).unwrap();
    let bins = 129;
    let mut rng = Rng::new(4);
    let mut scratch = MedianScratch::default();
    // (frames held, held offset, signal frames, first output, outputs, kernel, tap)
    for &(held, held_offset, n_frames, first, n_out, k, tap) in &[
        (40usize, 0usize, 40usize, 0usize, 40usize, 31usize, 1usize), // whole signal, both ends
        (40, 0, 40, 0, 40, 4, 1),                                     // even kernel: upper median
        (60, 100, 1_000_000, 115, 30, 31, 1),                         // interior block
        (25, 0, 25, 3, 20, 64, 1),       // largest insertion-sort kernel
        (25, 0, 25, 0, 25, 65, 1),       // smallest radix-select kernel
        (7, 0, 7, 0, 7, 200, 1),         // window wider than the signal
        (30, 0, 30, 0, 30, 1025, 1),     // largest kernel
        (50, 950, 1000, 960, 40, 21, 1), // last block: end reflection
        (3, 0, 3, 0, 3, 1, 1),
        // Taps frames apart (the production stems' harmonic estimate: 23 taps 2 apart).
        (60, 0, 60, 0, 60, 23, 2), // whole signal, both ends, runs of 16 per phase
        (100, 100, 1_000_000, 146, 10, 23, 2), // interior block, no boundary
        (40, 0, 40, 3, 37, 7, 3),  // a first output off the phase grid
        (9, 0, 9, 0, 9, 4, 2),     // even kernel
        (25, 0, 25, 0, 25, 65, 2), // radix select, windows wider than the signal
        (50, 950, 1000, 960, 40, 5, 3), // last block: end reflection
    ] {
        for ties in [false, true] {
            let mag = magnitudes(&mut rng, held * bins, ties);
            let got = runner
                .median_time(&mag, held_offset, n_frames, first, n_out, k, tap)
                .unwrap();
            let mut want = vec![0.0; n_out * bins];
            median_time_tapped(
                &mag,
                bins,
                held_offset,
                n_frames,
                (first, tap),
                k,
                &mut want,
                0..bins,
                &mut scratch,
            );
            assert_identical(
                &format!("median_time held {held}+{held_offset} of {n_frames}, out {first}+{n_out}, k {k}, tap {tap}, ties {ties}"),
                &got,
                &want,
            );
        }
    }
}

#[test]
fn steady_estimate_matches_cpu() {
    // The steady estimate: the frequency median at the grid's points (every STEADY_STEP frames,
    // fixed to the signal), then the time median over those points, reflected at the ends.
    use stemkit::production::{SteadyGrid, STEADY_STEP};
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 256, FftPath::Workgroup).unwrap();
    let bins = 129;
    let mut rng = Rng::new(14);
    let mut scratch = MedianScratch::default();
    // (signal frames, output frames t0 .. end, steady kernel in points)
    for &(n_frames, t0, end, k) in &[
        (40usize, 0usize, 40usize, 13usize), // whole signal, both boundaries
        (1_000_000, 501, 545, 13),           // interior block, t0 off the grid
        (30, 3, 27, 41),                     // window wider than the grid
        (1000, 962, 1000, 13),               // last block: end reflection
        (3, 0, 3, 1),
    ] {
        let g = SteadyGrid::new(t0, end, n_frames, k);
        let (held_lo, held_hi) = (STEADY_STEP * g.lo, STEADY_STEP * (g.hi - 1) + 1);
        for ties in [false, true] {
            let mag = magnitudes(&mut rng, (held_hi - held_lo) * bins, ties);
            let (got_grid, got) = runner
                .steady(&mag, held_lo, n_frames, t0, end, 31, k)
                .unwrap();
            assert_eq!(got_grid, g);
            let mut points = vec![0.0; (g.hi - g.lo) * bins];
            for (i, out) in points.chunks_exact_mut(bins).enumerate() {
                let row = STEADY_STEP * (g.lo + i) - held_lo;
                median_freq(
                    &mag[row * bins..(row + 1) * bins],
                    bins,
                    31,
                    out,
                    &mut scratch,
                );
            }
            let mut want = vec![0.0; g.rows * bins];
            median_time(
                &points,
                bins,
                g.lo,
                g.n_points,
                g.first,
                k,
                &mut want,
                0..bins,
                &mut scratch,
            );
            assert_identical(
                &format!("steady estimate of frames {t0}..{end} of {n_frames}, k {k}, ties {ties}"),
                &got,
                &want,
            );
        }
    }
}

#[test]
fn median_freq_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(5);
    let mut scratch = MedianScratch::default();
    for &(n_fft, frames, k) in &[
        (256usize, 9usize, 31usize),
        (256, 9, 2),
        (256, 5, 64),
        (256, 5, 65),
        (256, 3, 300), // wider than the 129 bins: repeated reflection
        (2048, 3, 1025),
        (512, 7, 1),
    ] {
        let runner = StageRunner::new(ctx.clone(), n_fft, FftPath::Workgroup).unwrap();
        let bins = n_fft / 2 + 1;
        for ties in [false, true] {
            let mag = magnitudes(&mut rng, frames * bins, ties);
            let got = runner.median_freq(&mag, k).unwrap();
            let mut want = vec![0.0; mag.len()];
            median_freq(&mag, bins, k, &mut want, &mut scratch);
            assert_identical(
                &format!("median_freq n_fft {n_fft} k {k} ties {ties}"),
                &got,
                &want,
            );
        }
    }
}

#[test]
fn masks_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 512, FftPath::Workgroup).unwrap();
    let bins = 257;
    let rows = 16;
    let n = rows * bins;
    let mut rng = Rng::new(6);
    // Exact zeros, ties, subnormal-free tiny values and ordinary ones.
    let harm: Vec<f32> = (0..n)
        .map(|i| match i % 17 {
            0 => 0.0,
            1 => 1e-30,
            _ => rng.uniform() * 2.0,
        })
        .collect();
    let perc: Vec<f32> = (0..n)
        .map(|i| match i % 13 {
            0 => 0.0,
            1 => harm[i],
            2 => harm[i] * 0.5,
            _ => rng.uniform() * 2.0,
        })
        .collect();
    let spectra: Vec<Complex32> = (0..n)
        .map(|_| Complex32::new(rng.signed(), rng.signed()))
        .collect();
    let unit = vec![Complex32::new(1.0, 0.0); n];
    for &(power, mh, mp) in &[
        (2.0f32, 1.0f32, 1.0f32),
        (1.0, 1.0, 1.0),
        (f32::INFINITY, 1.0, 1.0),
        (2.0, 2.0, 3.0),
        (1.0, 3.0, 3.0),
        (f32::INFINITY, 2.0, 1.5),
        (1.5, 1.0, 1.0),
        (0.5, 2.0, 2.0),
        (4.0, 1.2, 1.1),
    ] {
        let hpss = HpssParams {
            power,
            margin_harmonic: mh,
            margin_percussive: mp,
            ..Default::default()
        };
        let (mut mask_h, mut mask_p) = (vec![0.0; n], vec![0.0; n]);
        hpss_masks(&harm, &perc, &hpss, &mut mask_h, &mut mask_p);
        // Against a unit spectrum the stem spectra are the masks themselves.
        let got = runner.mask(&unit, &harm, &perc, &hpss, true).unwrap();
        let got_h: Vec<f32> = got
            .iter()
            .step_by(1)
            .enumerate()
            .filter(|(i, _)| (i / bins) % 2 == 0)
            .map(|(_, z)| z.re)
            .collect();
        let got_p: Vec<f32> = got
            .iter()
            .enumerate()
            .filter(|(i, _)| (i / bins) % 2 == 1)
            .map(|(_, z)| z.re)
            .collect();
        let what = format!("masks power {power} margins {mh},{mp}");
        if power.is_infinite() {
            assert_identical(&format!("{what} harmonic"), &got_h, &mask_h);
            assert_identical(&format!("{what} percussive"), &got_p, &mask_p);
        } else if power == 1.0 || power == 2.0 {
            assert_ulps(&format!("{what} harmonic"), &got_h, &mask_h, MASK_ULPS, 0.0);
            assert_ulps(
                &format!("{what} percussive"),
                &got_p,
                &mask_p,
                MASK_ULPS,
                0.0,
            );
        } else {
            // WGSL pow is not libm's powf: close, not identical.
            assert_close(&format!("{what} harmonic"), &got_h, &mask_h, 1e-6);
            assert_close(&format!("{what} percussive"), &got_p, &mask_p, 1e-6);
        }
        // Applied to a spectrum: [row][stem][bin], one stem or two.
        for both in [false, true] {
            let got = runner.mask(&spectra, &harm, &perc, &hpss, both).unwrap();
            let stems = if both { 2 } else { 1 };
            let mut want = vec![Complex32::default(); n * stems];
            for r in 0..rows {
                let row = r * bins..(r + 1) * bins;
                let out = &mut want[r * stems * bins..(r + 1) * stems * bins];
                apply_mask(
                    &spectra[row.clone()],
                    &mask_h[row.clone()],
                    &mut out[..bins],
                );
                if both {
                    apply_mask(&spectra[row.clone()], &mask_p[row], &mut out[bins..]);
                }
            }
            if power.is_infinite() {
                assert_identical(
                    &format!("{what} applied, stems {stems}"),
                    &flat(&got),
                    &flat(&want),
                );
            } else if power == 1.0 || power == 2.0 {
                // The mask's error, plus one rounding of the product.
                assert_ulps(
                    &format!("{what} applied, stems {stems}"),
                    &flat(&got),
                    &flat(&want),
                    MASK_ULPS + 1.0,
                    0.0,
                );
            } else {
                assert_close(
                    &format!("{what} applied, stems {stems}"),
                    &flat(&got),
                    &flat(&want),
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn ifft_matches_cpu_at_every_size() {
    let Some(ctx) = gpu() else { return };
    let mut planner = RealFftPlanner::new();
    for (i, &n) in ALL_N_FFT.iter().enumerate() {
        let rows = if n >= 8192 { 2 } else { 4 };
        let bins = n / 2 + 1;
        let mut rng = Rng::new(200 + i as u64);
        let spectra: Vec<Complex32> = (0..rows * bins)
            .map(|_| Complex32::new(rng.signed(), rng.signed()))
            .collect();
        let window = hann_periodic(n);
        let ifft = InverseFft::new(&mut planner, n);
        let mut scratch = vec![Complex32::default(); ifft.scratch_len()];
        let mut want = vec![0.0f32; rows * n];
        for (s, out) in spectra.chunks(bins).zip(want.chunks_mut(n)) {
            ifft.process(&mut s.to_vec(), out, &window, &mut scratch);
        }
        // The naive inverse of the first row, windowed.
        let row0: Vec<realfft::num_complex::Complex64> = spectra[..bins]
            .iter()
            .enumerate()
            .map(|(k, z)| {
                let im = if k == 0 || k == bins - 1 {
                    0.0
                } else {
                    z.im as f64
                };
                realfft::num_complex::Complex64::new(z.re as f64, im)
            })
            .collect();
        let naive: Vec<f32> = reference::idft_real(&row0, n)
            .iter()
            .zip(&window)
            .map(|(v, w)| (v * *w as f64) as f32)
            .collect();
        for path in paths(&ctx, n) {
            let runner = StageRunner::new(ctx.clone(), n, path).unwrap();
            let got = runner.ifft(&spectra).unwrap();
            let what = format!("ifft n={n} {path:?}");
            println!(
                "{what}: rel L2 {:.2e} vs realfft, {:.2e} vs naive",
                common::rel_l2(&got, &want),
                common::rel_l2(&got[..n], &naive)
            );
            assert_close(&what, &got, &want, 1e-6);
            assert_close(&format!("{what} vs naive"), &got[..n], &naive, 1e-6);
        }
    }
}

#[test]
fn overlap_add_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(8);
    // (n_fft, hop, signal length, first held frame, held frames, first output, outputs, stems)
    for &(n_fft, hop, len, held_first, held, out_start, count, inverted) in &[
        (
            1024usize,
            256usize,
            20_000usize,
            0usize,
            30usize,
            0u64,
            6000usize,
            1usize,
        ), // start edge
        (1024, 256, 20_000, 10, 30, 10 * 256 + 768 - 512, 5000, 2), // interior
        (
            512,
            128,
            3000,
            15,
            9,
            15 * 128 + 384 - 256,
            3000 - (15 * 128 + 128),
            2,
        ), // end edge
        (256, 100, 150, 0, 2, 0, 150, 1),                           // one frame + edges
        (2048, 1024, 9000, 3, 6, 3 * 1024 + 1024 - 1024, 4000, 1),  // hop n/2
    ] {
        let n_frames = 1 + len / hop;
        let frames = rng.signal(held * inverted * n_fft);
        let x = rng.signal(len);
        let runner = StageRunner::new(ctx.clone(), n_fft, FftPath::Workgroup).unwrap();
        let got = runner
            .overlap_add(
                &frames, inverted, held_first, hop, n_frames, &x, out_start, count,
            )
            .unwrap();
        let window = hann_periodic(n_fft);
        let wss = WindowSumSquare::new(&window, hop);
        let mut rest: Vec<f32> = x[out_start as usize..out_start as usize + count].to_vec();
        for (s, got_s) in got.iter().enumerate().take(inverted) {
            let mut want = vec![0.0f32; count];
            overlap_add(
                &frames,
                inverted * n_fft,
                s * n_fft,
                held_first,
                n_fft,
                hop,
                n_frames,
                &wss,
                out_start,
                &mut want,
            );
            assert_ulps(
                &format!("overlap_add n_fft {n_fft} hop {hop} from {out_start} stem {s}"),
                got_s,
                &want,
                4.0,
                0.0,
            );
            rest.iter_mut().zip(&want).for_each(|(r, v)| *r -= v);
        }
        // The remainder x − Σ stems is judged on the size of its operands.
        let peak = x
            .iter()
            .chain(rest.iter())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert_ulps(
            &format!("overlap_add n_fft {n_fft} hop {hop} remainder"),
            &got[inverted],
            &rest,
            4.0,
            peak,
        );
    }
}

#[test]
fn line_input_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let runner = StageRunner::new(ctx, 512, FftPath::Workgroup).unwrap();
    let bins = 257;
    let rows = 9;
    let mut rng = Rng::new(11);
    for channels in [1usize, 2, 3] {
        let harm: Vec<Vec<f32>> = (0..channels)
            .map(|_| (0..rows * bins).map(|_| rng.uniform()).collect())
            .collect();
        let mag: Vec<Vec<f32>> = (0..channels)
            .map(|_| (0..rows * bins).map(|_| rng.uniform() * 3.0).collect())
            .collect();
        let line_bins = 70;
        let hr: Vec<&[f32]> = harm.iter().map(Vec::as_slice).collect();
        let mr: Vec<&[f32]> = mag.iter().map(Vec::as_slice).collect();
        let got = runner.line_input(&hr, &mr, line_bins).unwrap();
        let mut want = Vec::new();
        for t in 0..rows {
            let mut h = vec![0.0; line_bins];
            stemkit::production::line_input(hr.iter().map(|c| &c[t * bins..]), &mut h);
            let mut m = vec![0.0; bins];
            stemkit::production::line_input(mr.iter().map(|c| &c[t * bins..]), &mut m);
            want.extend(h);
            want.extend(m);
        }
        // The same additions in the same order: identical.
        assert_identical(&format!("line input, {channels} channels"), &got, &want);
    }
}

#[test]
fn production_masks_match_cpu() {
    use stemkit::production::{
        add_comb, drum_tail, drums_below_bins, hpss_masks_banded, low_register, production_masks,
        tonal_ratio, tonal_shift, tonal_weights, BassProfile, ProductionSpec, COMB_LOBE_BINS,
        MELODY_LOBE_BINS, MELODY_MIN_SIGMA_BINS, NO_PROFILE,
    };
    use stemkit::Stem;
    let Some(ctx) = gpu() else { return };
    let n_fft = 2048;
    let runner =
        StageRunner::new(ctx.clone(), n_fft, choose_fft_path(n_fft, &ctx.limits())).unwrap();
    let bins = n_fft / 2 + 1;
    let rows = 12;
    let n = rows * bins;
    let mut rng = Rng::new(12);
    let stft = stemkit::StftParams::default();
    let stems = [
        Stem::Drums,
        Stem::Bass,
        Stem::Melody,
        Stem::Harmony,
        Stem::Fx,
    ];
    for (rate, cents, comb_fade, steady_margin, tonal_threshold, tonal_ms) in [
        (48000u32, 50.0f32, 400.0f32, 1.5f32, 0.85f32, 170.0f32),
        (22050, 120.0, 1000.0, 0.0, 1.0, 170.0),
        (44100, 500.0, 8000.0, 3.0, 0.6, 40.0),
    ] {
        let pp = ProductionSpec {
            comb_cents: cents,
            bass_comb_fade_hz: comb_fade,
            steady_margin,
            tonal_threshold,
            tonal_ms,
            // The mid band's margin: the default (1 at 150–1000 Hz), none, another band.
            mid_margin: if rate == 44100 { 1.1 } else { 1.0 },
            mid_band_hz: match rate {
                48000 => (150.0, 1000.0),
                22050 => (0.0, 0.0),
                _ => (300.0, 2000.0),
            },
            ..Default::default()
        }
        .resolve(rate, &stft);
        assert_eq!(pp.mid_bins.0 < pp.mid_bins.1, rate != 22050);
        let bin_hz = rate as f32 / n_fft as f32;
        let low = low_register(&pp, bins, bin_hz);
        let harm: Vec<f32> = (0..n)
            .map(|i| if i % 19 == 0 { 0.0 } else { rng.uniform() })
            .collect();
        // Some bins with both estimates 0 (librosa's split_zeros, in the mid band and out).
        let perc: Vec<f32> = (0..n)
            .map(|i| if i % 38 == 0 { 0.0 } else { rng.uniform() })
            .collect();
        // Magnitudes near the harmonic estimate in even bins (stable: tonal weights spread over
        // the ramp), unrelated in odd ones.
        let mag: Vec<f32> = (0..n)
            .map(|i| {
                if i % bins % 2 == 0 {
                    harm[i] * (1.0 - 0.3 * rng.uniform())
                } else {
                    rng.uniform()
                }
            })
            .collect();
        let mut ratios = vec![0u32; n];
        for (r, o) in ratios.chunks_exact_mut(bins).enumerate() {
            tonal_ratio(
                &mag[r * bins..(r + 1) * bins],
                &harm[r * bins..(r + 1) * bins],
                o,
            );
        }
        let mut tonal = vec![0.0f32; n];
        tonal_weights(
            &ratios,
            0,
            bins,
            rows,
            0,
            pp.tonal_window,
            pp.tonal_threshold,
            &mut tonal,
            &mut Vec::new(),
        );
        if tonal_threshold < 1.0 {
            let ramp = tonal.iter().filter(|&&x| x > 0.0 && x < 1.0).count();
            assert!(ramp > n / 20, "only {ramp} tonal weights inside the ramp");
        }
        // The steady estimate on its grid: rows for frames t0 .. t0 + rows, t0 off the grid.
        let t0 = 4 * rate as usize % 7 + 1;
        let grid = stemkit::production::SteadyGrid::new(t0, t0 + rows, usize::MAX / 4, 13);
        let steady: Vec<f32> = (0..grid.rows * bins)
            .map(|i| if i % 23 == 0 { 0.0 } else { rng.uniform() })
            .collect();
        let spectra: Vec<Complex32> = (0..n)
            .map(|_| Complex32::new(rng.signed(), rng.signed()))
            .collect();
        // Voiced and unvoiced frames of both lines.
        let lines: Vec<(f32, f32)> = (0..rows)
            .map(|r| {
                let b = if r % 4 == 3 {
                    0.0
                } else {
                    35.0 + 200.0 * rng.uniform()
                };
                let m = if r % 3 == 2 {
                    0.0
                } else {
                    110.0 + 1800.0 * rng.uniform()
                };
                (b, m)
            })
            .collect();
        // Bass profiles: none in every fifth row, else ratios from 0 to 2 (some partials
        // without a cap), as `bass_profile` makes them (their own seeded stream).
        let mut prng = Rng::new(13 + rows as u64);
        let profiles: Vec<BassProfile> = (0..rows)
            .map(|r| {
                let mut p = NO_PROFILE;
                if r % 5 != 4 {
                    for c in p.iter_mut().skip(1) {
                        *c = if prng.uniform() < 0.1 {
                            -1.0
                        } else {
                            2.0 * prng.uniform()
                        };
                    }
                }
                p
            })
            .collect();
        for power in [2.0f32, 4.0, f32::INFINITY] {
            let hpss = HpssParams {
                power,
                margin_harmonic: 1.5,
                margin_percussive: 1.2,
                ..Default::default()
            };
            let got = runner
                .production(
                    &spectra, &mag, &harm, &perc, &steady, t0, &lines, &profiles, &low, &hpss, &pp,
                    &stems,
                )
                .unwrap();
            let mut want = vec![Complex32::default(); n * stems.len()];
            let (mut mh, mut mp) = (vec![0.0; bins], vec![0.0; bins]);
            let mut masks = vec![0.0; bins * stems.len()];
            for r in 0..rows {
                let row = r * bins..(r + 1) * bins;
                // The drum tail on the lowest bins: earlier frames from `perc` (the stage's
                // held rows are its output rows, so none before row 0).
                let mut q = perc[row.clone()].to_vec();
                let mut bass = vec![0.0; pp.tail_bins];
                add_comb(
                    &mut bass,
                    None,
                    lines[r].0,
                    pp.bass_partials,
                    pp.bass_comb_fade_hz,
                    pp.comb_cents,
                    COMB_LOBE_BINS,
                    0.0,
                    bin_hz,
                    None,
                );
                for (b, q) in q.iter_mut().enumerate().take(pp.tail_bins) {
                    let prev = (1..=pp.tail_frames)
                        .map(|back| (back <= r).then(|| perc[(r - back) * bins + b]));
                    *q = drum_tail(*q, mag[r * bins + b], prev, pp.tail_rho, bass[b]);
                }
                hpss_masks_banded(&harm[row.clone()], &q, &hpss, &pp, &mut mh, &mut mp);
                let sr = grid.row(t0 + r);
                steady_gate(
                    &q,
                    &steady[sr * bins..(sr + 1) * bins],
                    pp.steady_margin,
                    hpss.power,
                    &mut mp,
                );
                if tonal_threshold < 1.0 {
                    tonal_shift(&tonal[row.clone()], &mut mh, &mp);
                }
                // The comb alone, the bass weight max(low, comb), and the bins below the line
                // whose harmonic share the drums take.
                let mut comb = vec![0.0; bins];
                add_comb(
                    &mut comb,
                    Some(&harm[row.clone()]),
                    lines[r].0,
                    pp.bass_partials,
                    pp.bass_comb_fade_hz,
                    pp.comb_cents,
                    COMB_LOBE_BINS,
                    0.0,
                    bin_hz,
                    Some(&profiles[r]),
                );
                let mut mw = vec![0.0; bins];
                add_comb(
                    &mut mw,
                    None,
                    lines[r].1,
                    pp.melody_partials,
                    0.0,
                    pp.comb_cents,
                    MELODY_LOBE_BINS,
                    MELODY_MIN_SIGMA_BINS,
                    bin_hz,
                    None,
                );
                let bw: Vec<f32> = low.iter().zip(&comb).map(|(l, c)| l.max(*c)).collect();
                let below = drums_below_bins(lines[r].0, pp.drums_below_ratio, bin_hz);
                assert_eq!(
                    below > 0,
                    lines[r].0 > 0.0,
                    "row {r}: {below} bins below the line"
                );
                production_masks(&stems, &mh, &mp, &bw, &mw, (&comb, below), &mut masks);
                let out = &mut want[r * stems.len() * bins..(r + 1) * stems.len() * bins];
                for (m, o) in masks.chunks_exact(bins).zip(out.chunks_exact_mut(bins)) {
                    apply_mask(&spectra[row.clone()], m, o);
                }
            }
            // Masks in [0, 1] from a few roundings each (WGSL division is within 2.5 ULP and
            // may fuse multiply-adds): relative L2 error at float precision.
            assert_close(
                &format!("production masks at {rate} Hz, {cents} cents, steady margin {steady_margin}, tonal {tonal_threshold}, power {power}"),
                &flat(&got),
                &flat(&want),
                1e-6,
            );
        }
    }
}

/// Stage `hold` (without the spatial filter: the held masks applied to the spectrum) against
/// `stemkit::stages::hold`: the points (the unheld harmony mask times the magnitude at the grid
/// frames), each segment's floors (`segment_floors`, the carried segment's as uploaded) and
/// `apply_hold` on the line weights the masks were built from. Masks within a few roundings of
/// the CPU's (the shader recovers the shares from the masks): relative L2 < 1e-6.
#[test]
fn hold_matches_cpu() {
    use stemkit::production::drums_below_bins;
    use stemkit::stages::hold::{apply_hold, segment_floors};
    use stemkit::stems::{Stem, PRODUCTION};
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(44);
    // (n_fft, channels, frames, segment, phase, stride, radius, hold bins, inverted stems)
    for &(n_fft, channels, frames, segment, phase, stride, radius, hb, stems) in &[
        (
            256usize,
            1usize,
            40usize,
            16usize,
            0usize,
            4usize,
            2usize,
            60usize,
            &PRODUCTION[..],
        ),
        (
            512,
            2,
            70,
            32,
            29,
            4,
            3,
            100,
            &[Stem::Harmony, Stem::Bass, Stem::Melody][..],
        ),
        (
            256,
            2,
            30,
            12,
            9,
            1,
            5,
            129,
            &[
                Stem::Bass,
                Stem::Drums,
                Stem::Fx,
                Stem::Melody,
                Stem::Harmony,
            ][..],
        ),
    ] {
        let runner = StageRunner::new(ctx.clone(), n_fft, FftPath::Workgroup).unwrap();
        let bins = n_fft / 2 + 1;
        let bin_hz = 48000.0 / n_fft as f32;
        let n = PRODUCTION.len();
        let rows = channels * frames;
        let spectra: Vec<Complex32> = (0..rows * bins)
            .map(|_| Complex32::new(rng.signed(), rng.signed()))
            .collect();
        // Magnitudes with some silent bins; harmonic masks with some bins at 0.
        let mag: Vec<f32> = (0..rows * bins)
            .map(|i| {
                if i % 17 == 3 {
                    0.0
                } else {
                    rng.uniform() * 2.0
                }
            })
            .collect();
        let h: Vec<f32> = (0..rows * bins)
            .map(|i| {
                if i % 23 == 7 {
                    0.0
                } else {
                    rng.uniform() * 0.9
                }
            })
            .collect();
        let perc: Vec<f32> = h.iter().map(|&h| (1.0 - h) * rng.uniform()).collect();
        let bw: Vec<f32> = (0..rows * bins)
            .map(|i| if i % 11 == 0 { 1.0 } else { rng.uniform() })
            .collect();
        let mw: Vec<f32> = (0..rows * bins).map(|_| rng.uniform()).collect();
        // The production masks from those weights (`production_masks` above the drums' low bins).
        let masks_of = |i: usize, bw: f32, mw: f32| {
            let h = h[i];
            [
                perc[i],
                h * bw,
                h * (1.0 - bw) * mw,
                h * (1.0 - bw) * (1.0 - mw),
                (1.0 - h - perc[i]).max(0.0),
            ]
        };
        let mut masks = vec![0.0f32; rows * n * bins];
        for r in 0..rows {
            for b in 0..bins {
                let i = r * bins + b;
                for (k, m) in masks_of(i, bw[i], mw[i]).into_iter().enumerate() {
                    masks[(r * n + k) * bins + b] = m;
                }
            }
        }
        // A bass line, unvoiced in some frames.
        let f0: Vec<f32> = (0..frames)
            .map(|j| {
                if j % 5 == 2 {
                    0.0
                } else {
                    200.0 + 300.0 * rng.uniform()
                }
            })
            .collect();
        let ratio = 0.5;
        let lead = phase % stride;
        let points = (lead + frames - 1) / stride + 1;
        let carried_n = if phase == 0 {
            0
        } else {
            (segment - phase + lead) / stride
        };
        let carried: Vec<f32> = (0..carried_n * channels * hb)
            .map(|_| rng.uniform())
            .collect();
        let (got_floors, got) = runner
            .hold(
                channels,
                (&spectra, &mag, &masks),
                &f0,
                ratio,
                (segment, phase, stride, radius, hb),
                &carried,
                stems,
            )
            .unwrap();

        // The CPU twin: the points, then each computed segment's floors per channel.
        let mut want_floors = vec![0.0f32; points * channels * hb];
        want_floors[..carried.len()].copy_from_slice(&carried);
        for ch in 0..channels {
            let mut q0 = carried_n;
            while q0 < points {
                let s = (phase + q0 * stride - lead) / segment;
                let q1 = (((s + 1) * segment + lead - phase) / stride).min(points);
                let mut pts = vec![0.0f32; (q1 - q0) * hb];
                for q in q0..q1 {
                    let j = q * stride - lead;
                    for b in 0..hb {
                        let r = ch * frames + j;
                        pts[(q - q0) * hb + b] = masks[(r * n + 3) * bins + b] * mag[r * bins + b];
                    }
                }
                let mut fl = vec![0.0f32; pts.len()];
                segment_floors(&pts, hb, radius, 1.0, &mut fl);
                for q in q0..q1 {
                    want_floors[(q * channels + ch) * hb..][..hb]
                        .copy_from_slice(&fl[(q - q0) * hb..][..hb]);
                }
                q0 = q1;
            }
        }
        assert_close(
            &format!("hold floors, n_fft {n_fft}, {channels} ch, phase {phase}, stride {stride}"),
            &got_floors,
            &want_floors,
            1e-6,
        );
        let mut want = vec![Complex32::default(); rows * stems.len() * bins];
        for ch in 0..channels {
            for (j, &f0) in f0.iter().enumerate() {
                let r = ch * frames + j;
                let q = (lead + j) / stride;
                let floor = &want_floors[(q * channels + ch) * hb..][..hb];
                let (mut b2, mut m2) = (
                    bw[r * bins..][..bins].to_vec(),
                    mw[r * bins..][..bins].to_vec(),
                );
                let below = drums_below_bins(f0, ratio, bin_hz);
                apply_hold(
                    &mut b2,
                    &mut m2,
                    &h[r * bins..][..bins],
                    &mag[r * bins..][..bins],
                    floor,
                    below,
                );
                for (i, stem) in stems.iter().enumerate() {
                    let k = PRODUCTION.iter().position(|p| p == stem).unwrap();
                    for b in 0..bins {
                        let m = masks_of(r * bins + b, b2[b], m2[b])[k];
                        want[(r * stems.len() + i) * bins + b] = spectra[r * bins + b] * m;
                    }
                }
            }
        }
        let flat = |v: &[Complex32]| v.iter().flat_map(|c| [c.re, c.im]).collect::<Vec<f32>>();
        assert_close(
            &format!("held spectra, n_fft {n_fft}, {channels} ch, phase {phase}, stride {stride}"),
            &flat(&got),
            &flat(&want),
            1e-6,
        );
        // The hold moved something (else this tests nothing).
        let mut plain = Vec::with_capacity(want.len() * 2);
        for r in 0..rows {
            for stem in stems {
                let k = PRODUCTION.iter().position(|p| p == stem).unwrap();
                for b in 0..bins {
                    let (m, x) = (masks[(r * n + k) * bins + b], spectra[r * bins + b]);
                    plain.extend([x.re * m, x.im * m]);
                }
            }
        }
        assert!(
            common::rel_l2(&flat(&want), &plain) > 1e-3,
            "the hold left the masks as they were"
        );
    }
}

#[test]
fn spatial_matches_cpu() {
    use stemkit::stages::spatial::{self, SpatialScratch, COV_ROWS};
    use stemkit::stems::{Stem, PRODUCTION};
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(41);
    // (n_fft, frames, segment, phase, filtered bins (None: all), inverted stems)
    for &(n_fft, frames, segment, phase, band, stems) in &[
        (256usize, 40usize, 16usize, 0usize, None, &PRODUCTION[..4]),
        (512, 200, 128, 100, Some(70usize), &PRODUCTION[1..]),
        (256, 37, 16, 13, None, &[Stem::Drums, Stem::Fx][..]),
        (
            1024,
            12,
            8,
            5,
            Some(100),
            &[Stem::Harmony, Stem::Bass, Stem::Melody][..],
        ),
    ] {
        let runner = StageRunner::new(ctx.clone(), n_fft, FftPath::Workgroup).unwrap();
        let bins = n_fft / 2 + 1;
        let k = band.unwrap_or(bins);
        let n = PRODUCTION.len();
        // Spectra: random, with a silent stretch of bins (there C is singular and the masks stay).
        let silent = |b: usize| (10..20).contains(&b);
        let spectra: Vec<Complex32> = (0..2 * frames * bins)
            .map(|i| {
                let s = if silent(i % bins) { 0.0 } else { 1.0 };
                Complex32::new(s * rng.signed(), s * rng.signed())
            })
            .collect();
        // Masks partitioning unity per channel, with some stems absent from some bins.
        let mut masks = vec![0.0f32; 2 * frames * n * bins];
        for row in masks.chunks_exact_mut(n * bins) {
            for b in 0..bins {
                let w: Vec<f32> = (0..n)
                    .map(|k| if (b + k) % 7 == 0 { 0.0 } else { rng.uniform() })
                    .collect();
                let sum: f32 = w.iter().sum();
                for k in 0..n {
                    row[k * bins + b] = w[k] / sum;
                }
            }
        }
        // The carried segment: a normalised covariance of random sums.
        let mut carried: Vec<f32> = (0..n * COV_ROWS * k).map(|_| rng.uniform()).collect();
        if phase > 0 {
            spatial::normalise(&mut carried, k);
        } else {
            carried.clear();
        }
        let (cov, got) = runner
            .spatial(&spectra, &masks, segment, phase, k, &carried, stems)
            .unwrap();

        // The CPU twin: each segment's sums in frame order, normalised; then each frame.
        let x = |ch: usize, j: usize| &spectra[(ch * frames + j) * bins..][..bins];
        let m = |ch: usize, j: usize| &masks[(ch * frames + j) * n * bins..][..n * bins];
        let segments = (phase + frames - 1) / segment + 1;
        let seg_len = n * COV_ROWS * k;
        let mut want_cov = vec![0.0f32; segments * seg_len];
        let mut cross = vec![0.0f32; 4 * k];
        for s in 0..segments {
            let sums = &mut want_cov[s * seg_len..(s + 1) * seg_len];
            if s == 0 && phase > 0 {
                sums.copy_from_slice(&carried);
                continue;
            }
            // Chunk by chunk, every stride-th frame of each, as the separator sums them.
            let frames_of = (s * segment - phase)..((s + 1) * segment - phase).min(frames);
            let chunk = spatial::sum_chunk(segment);
            let stride = spatial::stats_stride(segment, n_fft, n_fft / 4);
            assert!(
                stride > 1 || segment % 4 != 0,
                "the cases take strided sums"
            );
            let mut part = vec![0.0f32; seg_len];
            for c0 in frames_of.clone().step_by(chunk) {
                part.fill(0.0);
                for j in (c0..(c0 + chunk).min(frames_of.end)).step_by(stride) {
                    spatial::cross_spectra(&x(0, j)[..k], &x(1, j)[..k], &mut cross);
                    spatial::accumulate(&cross, m(0, j), m(1, j), &mut part);
                }
                sums.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
            }
            spatial::normalise(sums, k);
        }
        assert_close(
            &format!("spatial covariances, n_fft {n_fft}, phase {phase}, {k} bins"),
            &cov,
            &want_cov,
            1e-6,
        );
        let rows: Vec<usize> = stems
            .iter()
            .map(|stem| PRODUCTION.iter().position(|p| p == stem).unwrap())
            .collect();
        let mut want = vec![Complex32::default(); 2 * frames * stems.len() * bins];
        let (half0, half1) = want.split_at_mut(frames * stems.len() * bins);
        let mut scratch = SpatialScratch::default();
        let per_frame = stems.len() * bins;
        for j in 0..frames {
            let s = (phase + j) / segment;
            spatial::apply(
                x(0, j),
                x(1, j),
                m(0, j),
                m(1, j),
                &want_cov[s * seg_len..(s + 1) * seg_len],
                &rows,
                [
                    &mut half0[j * per_frame..(j + 1) * per_frame],
                    &mut half1[j * per_frame..(j + 1) * per_frame],
                ],
                &mut scratch,
            );
        }
        assert_close(
            &format!("spatial stem spectra, n_fft {n_fft}, phase {phase}, {k} bins, {stems:?}"),
            &flat(&got),
            &flat(&want),
            1e-5,
        );
    }
}
