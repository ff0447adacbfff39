//! The fast CPU stages against slow references, on seeded random data with stated tolerances:
//! FFT vs a naive DFT, sliding median vs a sort-based median, mask partition of unity,
//! STFT → ISTFT reconstruction, and blocked/streamed processing vs whole-file processing.

mod common;

use common::{assert_close, assert_identical, mix};
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;
use stemkit::reference;
use stemkit::rng::Rng;
use stemkit::stages::fft::ForwardFft;
use stemkit::stages::ifft::InverseFft;
use stemkit::stages::mask::{hpss_masks, softmask};
use stemkit::stages::median::{median_freq, median_reflect, median_time_tapped, MedianScratch};
use stemkit::{HpssParams, SeparationParams, Separator, StemSet, StftParams};

#[test]
fn fft_matches_naive_dft() {
    let mut planner = RealFftPlanner::new();
    for (seed, n) in [(1u64, 256usize), (2, 1024), (3, 2048), (4, 4096)] {
        let x = Rng::new(seed).signal(n);
        let fft = ForwardFft::new(&mut planner, n);
        let mut frame = x.clone();
        let mut spec = vec![Complex32::default(); n / 2 + 1];
        let mut scratch = vec![Complex32::default(); fft.scratch_len()];
        fft.process(&mut frame, &mut spec, &mut scratch);
        let want = reference::dft_real(&x);
        let flat = |v: Vec<(f64, f64)>| -> Vec<f32> {
            v.into_iter()
                .flat_map(|(a, b)| [a as f32, b as f32])
                .collect()
        };
        let got = flat(spec.iter().map(|z| (z.re as f64, z.im as f64)).collect());
        let want_f = flat(want.iter().map(|z| (z.re, z.im)).collect());
        assert_close(&format!("fft n={n} seed={seed}"), &got, &want_f, 1e-6);

        // And the inverse (with a rectangular window) against the naive inverse.
        let ifft = InverseFft::new(&mut planner, n);
        let mut out = vec![0.0f32; n];
        let mut s2 = vec![Complex32::default(); ifft.scratch_len()];
        ifft.process(&mut spec, &mut out, &vec![1.0; n], &mut s2);
        let back: Vec<f32> = reference::idft_real(&want, n)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_close(&format!("ifft n={n}"), &out, &back, 1e-6);
        assert_close(&format!("fft round trip n={n}"), &out, &x, 1e-6);
    }
}

#[test]
fn paired_ifft_matches_naive_inverse() {
    // Two stems of one spectrum (two random masks) through one complex transform: each frame
    // against the naive inverse DFT of the masked spectrum, with a random window; the imaginary
    // parts of DC and Nyquist must be ignored (as irfft does), and a stem 60 dB below its partner
    // keeps its own precision relative to the larger. Then two unrelated spectra through
    // `process_pair`.
    let mut planner = RealFftPlanner::new();
    for (seed, n) in [(11u64, 256usize), (12, 2048), (13, 4096)] {
        let mut rng = Rng::new(seed);
        let bins = n / 2 + 1;
        let spectrum: Vec<Complex32> = (0..bins)
            .map(|_| Complex32::new(2.0 * rng.uniform() - 1.0, 2.0 * rng.uniform() - 1.0))
            .collect();
        let mask_a: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let mask_b: Vec<f32> = (0..bins).map(|_| 1e-3 * rng.uniform()).collect();
        let window: Vec<f32> = rng.signal(n);
        let ifft = InverseFft::new(&mut planner, n);
        let mut scratch = vec![Complex32::default(); ifft.scratch_len()];
        let (mut fa, mut fb) = (vec![0.0f32; n], vec![0.0f32; n]);
        ifft.process_masked_pair(
            &spectrum,
            (&mask_a, &mask_b),
            (&mut fa, &mut fb),
            &window,
            &mut scratch,
        );
        let masked = |mask: &[f32]| -> Vec<Complex32> {
            spectrum.iter().zip(mask).map(|(z, &m)| z * m).collect()
        };
        let naive = |z: &[Complex32]| -> Vec<f32> {
            let mut z: Vec<realfft::num_complex::Complex<f64>> = z
                .iter()
                .map(|c| realfft::num_complex::Complex::new(c.re as f64, c.im as f64))
                .collect();
            z[0].im = 0.0;
            z[bins - 1].im = 0.0;
            reference::idft_real(&z, n)
                .iter()
                .zip(&window)
                .map(|(&v, &w)| (v * w as f64) as f32)
                .collect()
        };
        assert_close(
            &format!("paired ifft a n={n}"),
            &fa,
            &naive(&masked(&mask_a)),
            1e-6,
        );
        // b is 1000 times smaller: its error is relative to a's level.
        let b = masked(&mask_b);
        assert_close(&format!("paired ifft b n={n}"), &fb, &naive(&b), 1e-3);
        // The single path on the same stem agrees to rounding.
        let mut single = vec![0.0f32; n];
        ifft.process(&mut b.clone(), &mut single, &window, &mut scratch);
        assert_close(
            &format!("paired vs single ifft b n={n}"),
            &fb,
            &single,
            1e-3,
        );
        // Two unrelated spectra (the spatial filter's stems) through `process_pair`.
        let other: Vec<Complex32> = (0..bins)
            .map(|_| Complex32::new(rng.signed(), rng.signed()))
            .collect();
        let a = masked(&mask_a);
        let (mut pa, mut pb) = (vec![0.0f32; n], vec![0.0f32; n]);
        ifft.process_pair((&a, &other), (&mut pa, &mut pb), &window, &mut scratch);
        assert_close(&format!("process_pair a n={n}"), &pa, &naive(&a), 1e-6);
        assert_close(&format!("process_pair b n={n}"), &pb, &naive(&other), 1e-6);
    }
}

#[test]
fn split_paired_ifft_is_the_stored_spectra_bit_for_bit() {
    // The spatial filter's stems: below bin k two spectra, from k on the mix times two masks.
    // `process_pair_split` must give exactly the frames of storing those spectra (the masked
    // part as `apply_mask` rounds it) and calling `process_pair`, at every kind of k: none of
    // the spectra (0), DC only (1), all but Nyquist, all of them, and past the end.
    let mut planner = RealFftPlanner::new();
    for (seed, n) in [(21u64, 256usize), (22, 2048)] {
        let mut rng = Rng::new(seed);
        let bins = n / 2 + 1;
        let cplx = |rng: &mut Rng| -> Vec<Complex32> {
            (0..bins)
                .map(|_| Complex32::new(rng.signed(), rng.signed()))
                .collect()
        };
        let (x, a, b) = (cplx(&mut rng), cplx(&mut rng), cplx(&mut rng));
        let mask_a: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let mask_b: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let window: Vec<f32> = rng.signal(n);
        let ifft = InverseFft::new(&mut planner, n);
        let mut scratch = vec![Complex32::default(); ifft.scratch_len()];
        for k in [0, 1, 2, 37, bins - 2, bins - 1, bins, bins + 5] {
            let stored = |low: &[Complex32], mask: &[f32]| -> Vec<Complex32> {
                let mut out = vec![Complex32::default(); bins];
                let k = k.min(bins);
                out[..k].copy_from_slice(&low[..k]);
                stemkit::stages::mask::apply_mask(&x[k..], &mask[k..], &mut out[k..]);
                out
            };
            let (sa, sb) = (stored(&a, &mask_a), stored(&b, &mask_b));
            let (mut wa, mut wb) = (vec![0.0f32; n], vec![0.0f32; n]);
            ifft.process_pair((&sa, &sb), (&mut wa, &mut wb), &window, &mut scratch);
            let (mut ga, mut gb) = (vec![0.0f32; n], vec![0.0f32; n]);
            ifft.process_pair_split(
                (&a, &b),
                (&x, &mask_a, &mask_b),
                k,
                (&mut ga, &mut gb),
                &window,
                &mut scratch,
            );
            for (what, got, want) in [("a", &ga, &wa), ("b", &gb, &wb)] {
                if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                    panic!(
                        "n={n} k={k} frame {what}: sample {i} is {} against {}",
                        got[i], want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn sliding_median_matches_sort_reference() {
    let mut rng = Rng::new(7);
    let mut scratch = MedianScratch::default();
    for &len in &[1usize, 2, 3, 5, 16, 31, 100, 1025] {
        for &k in &[1usize, 2, 3, 4, 15, 16, 31, 32, 63] {
            for quantised in [false, true] {
                // Quantised data has many ties, which exercise equal-value removal.
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        let v = rng.uniform();
                        if quantised {
                            (v * 4.0).floor()
                        } else {
                            v
                        }
                    })
                    .collect();
                let want = reference::median_filter(&x, k);
                let mut got = vec![0.0; len];
                median_freq(&x, len, k, &mut got, &mut scratch);
                assert_identical(
                    &format!("median len={len} k={k} ties={quantised}"),
                    &got,
                    &want,
                );
                // A window of outputs from the middle, from a partial held row.
                if len > 10 {
                    let (first, n_out) = (len / 3, len / 3);
                    let mut part = vec![0.0; n_out];
                    median_reflect(&x, 0, len, first, k, &mut part, &mut scratch);
                    assert_identical("median partial", &part, &want[first..first + n_out]);
                }
            }
        }
    }
}

#[test]
fn tapped_time_median_matches_sort_reference() {
    // Taps 1–3 frames apart over several bins at once (lanes), ties, both boundaries, windows
    // wider than the signal, and outputs from the middle of a partly held signal.
    let mut rng = Rng::new(23);
    let mut scratch = MedianScratch::default();
    let bins = 11;
    for &len in &[1usize, 2, 5, 16, 47, 100] {
        for &k in &[1usize, 2, 3, 4, 11, 23, 24] {
            for tap in 1..=3usize {
                for quantised in [false, true] {
                    let x: Vec<f32> = (0..len * bins)
                        .map(|_| {
                            let v = rng.uniform();
                            if quantised {
                                (v * 4.0).floor()
                            } else {
                                v
                            }
                        })
                        .collect();
                    // The reference per bin, along time.
                    let mut want = vec![0.0; len * bins];
                    for b in 0..bins {
                        let seq: Vec<f32> = (0..len).map(|t| x[t * bins + b]).collect();
                        for (t, v) in reference::median_filter_tapped(&seq, k, tap)
                            .into_iter()
                            .enumerate()
                        {
                            want[t * bins + b] = v;
                        }
                    }
                    let mut got = vec![0.0; len * bins];
                    median_time_tapped(
                        &x,
                        bins,
                        0,
                        len,
                        (0, tap),
                        k,
                        &mut got,
                        0..bins,
                        &mut scratch,
                    );
                    let what = format!("tapped median len={len} k={k} tap={tap} ties={quantised}");
                    assert_identical(&what, &got, &want);
                    // Outputs from the middle, from a held part that starts where the first
                    // window does.
                    let reach = tap * (k / 2);
                    if len > 2 * reach + 4 {
                        let (first, n_out) = (reach + 1, len - 2 * reach - 2);
                        let held = first - reach;
                        let mut part = vec![0.0; n_out * bins];
                        median_time_tapped(
                            &x[held * bins..],
                            bins,
                            held,
                            len,
                            (first, tap),
                            k,
                            &mut part,
                            0..bins,
                            &mut scratch,
                        );
                        assert_identical(
                            &format!("{what}, part"),
                            &part,
                            &want[first * bins..(first + n_out) * bins],
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn masks_partition_unity_with_margin_one() {
    let mut rng = Rng::new(11);
    let n = 4096;
    // Include exact zeros and ties, the cases softmask special-cases.
    let harm: Vec<f32> = (0..n)
        .map(|i| if i % 17 == 0 { 0.0 } else { rng.uniform() })
        .collect();
    let perc: Vec<f32> = (0..n)
        .map(|i| {
            if i % 13 == 0 {
                0.0
            } else if i % 29 == 0 {
                harm[i]
            } else {
                rng.uniform()
            }
        })
        .collect();
    for power in [1.0f32, 2.0, 0.5, 3.7, 4.0] {
        let p = HpssParams {
            power,
            ..Default::default()
        };
        let (mut mh, mut mp) = (vec![0.0; n], vec![0.0; n]);
        hpss_masks(&harm, &perc, &p, &mut mh, &mut mp);
        for i in 0..n {
            let sum = mh[i] + mp[i];
            assert!(
                (sum - 1.0).abs() <= 2.4e-7,
                "power {power} bin {i}: masks sum to {sum} (h={}, p={})",
                harm[i],
                perc[i]
            );
        }
    }
    // Margins > 1 leave a residual share in [0, 1].
    let p = HpssParams {
        margin_harmonic: 2.0,
        margin_percussive: 3.0,
        ..Default::default()
    };
    let (mut mh, mut mp) = (vec![0.0; n], vec![0.0; n]);
    hpss_masks(&harm, &perc, &p, &mut mh, &mut mp);
    assert!(mh
        .iter()
        .zip(&mp)
        .all(|(a, b)| *a >= 0.0 && *b >= 0.0 && a + b <= 1.0 + 1e-6));
    assert!(
        mh.iter().zip(&mp).any(|(a, b)| a + b < 0.9),
        "margin 2,3 should leave residual"
    );
    assert_eq!(softmask(0.0, 0.0, 2.0, false), 0.0);
}

fn params(n_fft: usize, hop: usize, margin: f32, power: f32, block: usize) -> SeparationParams {
    let hpss = HpssParams {
        margin_harmonic: margin,
        margin_percussive: margin,
        power,
        ..Default::default()
    };
    SeparationParams {
        stft: StftParams {
            n_fft,
            hop_length: hop,
        },
        hpss,
        stems: StemSet::Hpr {
            residual: hpss.has_residual(),
        },
        block_frames: block,
        production: Default::default(),
    }
}

#[test]
fn stems_sum_back_to_the_input() {
    // STFT → masks → ISTFT reconstruction for several layouts: Σ stems = x within 1e-6 relative.
    for (i, &(n_fft, hop, margin, power)) in [
        (2048usize, 512usize, 1.0f32, 2.0f32),
        (1024, 256, 1.0, 1.0),
        (4096, 1024, 3.0, 2.0),
        (512, 128, 2.0, f32::INFINITY),
        (2048, 1024, 1.0, 2.0),
        (256, 100, 1.0, 2.0),
    ]
    .iter()
    .enumerate()
    {
        let len = 22050 + 37 * i;
        let x = vec![
            mix(i as u64, len, 22050.0),
            mix(100 + i as u64, len, 22050.0),
        ];
        let sep = Separator::new(params(n_fft, hop, margin, power, 64)).unwrap();
        let stems = sep.separate(&x);
        for ch in 0..2 {
            let sum: Vec<f32> = (0..len)
                .map(|j| stems.iter().map(|s| s[ch][j]).sum())
                .collect();
            assert_close(
                &format!("n_fft {n_fft} hop {hop} margin {margin} power {power} ch{ch}"),
                &sum,
                &x[ch],
                1e-6,
            );
        }
    }
}

#[test]
fn blocked_and_streamed_equal_whole_file() {
    let len = 48000 + 123;
    let x = vec![mix(5, len, 48000.0)];
    let whole = Separator::new(params(2048, 512, 2.0, 2.0, 100_000))
        .unwrap()
        .separate(&x);
    for block in [1usize, 2, 7, 31, 64] {
        let sep = Separator::new(params(2048, 512, 2.0, 2.0, block)).unwrap();
        // Push in odd-sized pieces, as a decoder would.
        let mut out = sep.empty_output(1);
        let mut stream = sep.stream(1);
        let mut at = 0;
        let mut rng = Rng::new(block as u64);
        while at < len {
            let n = (1 + rng.below(9000)).min(len - at);
            stream.push(&[x[0][at..at + n].to_vec()], &mut out).unwrap();
            at += n;
        }
        stream.finish(&mut out).unwrap();
        for s in 0..whole.len() {
            assert_identical(&format!("block {block} stem {s}"), &out[s][0], &whole[s][0]);
        }
    }
}

#[test]
fn short_and_tiny_signals() {
    // Shorter than one frame, one sample, and empty: lengths are kept and the sum still nulls.
    let sep = Separator::new(params(2048, 512, 1.0, 2.0, 8)).unwrap();
    for len in [0usize, 1, 100, 2047, 2048, 2049] {
        let x = vec![Rng::new(len as u64).signal(len)];
        let stems = sep.separate(&x);
        for s in &stems {
            assert_eq!(s[0].len(), len);
        }
        if len > 0 {
            let sum: Vec<f32> = (0..len)
                .map(|j| stems.iter().map(|s| s[0][j]).sum())
                .collect();
            assert_close(&format!("len {len}"), &sum, &x[0], 1e-6);
        }
    }
}

/// Random stereo spectra and masks that partition unity per channel: `(x0, x1, m0, m1)` with
/// spectra `[frame][bin]` and masks `[frame][stem][bin]`; a few bins silent in one channel.
fn spatial_case(
    seed: u64,
    frames: usize,
    bins: usize,
    stems: usize,
) -> (Vec<Complex32>, Vec<Complex32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let mut spectra = || -> Vec<Complex32> {
        (0..frames * bins)
            .map(|i| {
                if i % 17 == 3 {
                    Complex32::default()
                } else {
                    Complex32::new(rng.signed(), rng.signed())
                }
            })
            .collect()
    };
    let (x0, x1) = (spectra(), spectra());
    let mut masks = || -> Vec<f32> {
        let mut m = vec![0.0f32; frames * stems * bins];
        for t in 0..frames {
            for b in 0..bins {
                let w: Vec<f32> = (0..stems).map(|_| rng.uniform().powi(3)).collect();
                let sum: f32 = w.iter().sum::<f32>().max(1e-6);
                for (j, w) in w.iter().enumerate() {
                    m[(t * stems + j) * bins + b] = w / sum;
                }
            }
        }
        m
    };
    let (m0, m1) = (masks(), masks());
    (x0, x1, m0, m1)
}

/// The spatial stage over one segment: sums (every frame), normalise, apply for both channels,
/// `[channel][frame][stem][bin]`.
fn spatial_run(
    x: [&[Complex32]; 2],
    m: [&[f32]; 2],
    bins: usize,
    stems: usize,
) -> [Vec<Complex32>; 2] {
    spatial_run_band(x, m, bins, stems, bins, 1)
}

/// [`spatial_run`] with the filter on bins `0 .. k` only and sums over every `stride`-th frame.
fn spatial_run_band(
    x: [&[Complex32]; 2],
    m: [&[f32]; 2],
    bins: usize,
    stems: usize,
    k: usize,
    stride: usize,
) -> [Vec<Complex32>; 2] {
    use stemkit::stages::spatial::{
        accumulate, apply, cross_spectra, normalise, SpatialScratch, COV_ROWS,
    };
    let frames = x[0].len() / bins;
    let (row, mrow) = (
        |t: usize| t * bins..(t + 1) * bins,
        |t: usize| t * stems * bins..(t + 1) * stems * bins,
    );
    let mut cov = vec![0.0f32; stems * COV_ROWS * k];
    let mut scratch = SpatialScratch::default();
    let mut cross = vec![0.0f32; 4 * k];
    for t in (0..frames).step_by(stride) {
        let band = t * bins..t * bins + k;
        cross_spectra(&x[0][band.clone()], &x[1][band], &mut cross);
        accumulate(&cross, &m[0][mrow(t)], &m[1][mrow(t)], &mut cov);
    }
    normalise(&mut cov, k);
    let mut out = [
        vec![Complex32::default(); frames * stems * bins],
        vec![Complex32::default(); frames * stems * bins],
    ];
    let all: Vec<usize> = (0..stems).collect();
    let [o0, o1] = &mut out;
    for t in 0..frames {
        apply(
            &x[0][row(t)],
            &x[1][row(t)],
            &m[0][mrow(t)],
            &m[1][mrow(t)],
            &cov,
            &all,
            [&mut o0[mrow(t)], &mut o1[mrow(t)]],
            &mut scratch,
        );
    }
    out
}

fn flat_c(v: &[Complex32]) -> Vec<f32> {
    v.iter().flat_map(|z| [z.re, z.im]).collect()
}

#[test]
fn spatial_filter_matches_the_naive_reference() {
    use realfft::num_complex::Complex64;
    use stemkit::stages::spatial::{SPATIAL_REG, SPATIAL_SHRINK};
    for (seed, frames, bins, stems, stride) in [
        (31u64, 24usize, 33usize, 5usize, 1usize),
        (32, 7, 65, 5, 1),
        (33, 40, 9, 2, 1),
        (34, 30, 33, 5, 4),
        (35, 9, 17, 5, 4),
    ] {
        let (x0, x1, m0, m1) = spatial_case(seed, frames, bins, stems);
        let got = spatial_run_band([&x0, &x1], [&m0, &m1], bins, stems, bins, stride);
        let c64 = |v: &[Complex32]| -> Vec<Complex64> {
            v.iter()
                .map(|z| Complex64::new(z.re as f64, z.im as f64))
                .collect()
        };
        let f64s = |v: &[f32]| -> Vec<f64> { v.iter().map(|&m| m as f64).collect() };
        let (x0d, x1d, m0d, m1d) = (c64(&x0), c64(&x1), f64s(&m0), f64s(&m1));
        let want = reference::spatial_filter(
            [&x0d, &x1d],
            [&m0d, &m1d],
            bins,
            stems,
            (SPATIAL_REG as f64, SPATIAL_SHRINK as f64),
            stride,
        );
        for ch in 0..2 {
            let w: Vec<f32> = want[ch]
                .iter()
                .flat_map(|z| [z.re as f32, z.im as f32])
                .collect();
            assert_close(
                &format!(
                    "spatial seed={seed} frames={frames} bins={bins} stems={stems} stride={stride} channel {ch}"
                ),
                &flat_c(&got[ch]),
                &w,
                2e-5,
            );
        }
    }
}

/// With the filter on bins `0 .. k` only, those bins are exactly the filter's on the first `k`
/// bins alone, and the bins above keep their masks (`m·X`, bit for bit).
#[test]
fn spatial_filter_band_keeps_the_masks_above_it() {
    let (frames, bins, stems, k) = (12, 65, 5, 20);
    let (x0, x1, m0, m1) = spatial_case(36, frames, bins, stems);
    let got = spatial_run_band([&x0, &x1], [&m0, &m1], bins, stems, k, 1);
    // The same frames cut to their first k bins.
    let cut_x = |x: &[Complex32]| -> Vec<Complex32> {
        x.chunks_exact(bins).flat_map(|r| r[..k].to_vec()).collect()
    };
    let cut_m =
        |m: &[f32]| -> Vec<f32> { m.chunks_exact(bins).flat_map(|r| r[..k].to_vec()).collect() };
    let (c0, c1, n0, n1) = (cut_x(&x0), cut_x(&x1), cut_m(&m0), cut_m(&m1));
    let low = spatial_run([&c0, &c1], [&n0, &n1], k, stems);
    for (ch, (x, m)) in [(&x0, &m0), (&x1, &m1)].into_iter().enumerate() {
        let (mut below, mut above, mut want_above) = (Vec::new(), Vec::new(), Vec::new());
        for (r, row) in got[ch].chunks_exact(bins).enumerate() {
            let t = r / stems;
            below.extend_from_slice(&row[..k]);
            above.extend_from_slice(&row[k..]);
            want_above.extend((k..bins).map(|b| x[t * bins + b] * m[r * bins + b]));
        }
        assert_identical(
            &format!("channel {ch}, bins below {k}"),
            &flat_c(&below),
            &flat_c(&low[ch]),
        );
        assert_identical(
            &format!("channel {ch}, bins from {k}"),
            &flat_c(&above),
            &flat_c(&want_above),
        );
    }
}

#[test]
fn spatial_stems_sum_to_the_mix() {
    let (frames, bins, stems) = (30, 129, 5);
    let (x0, x1, m0, m1) = spatial_case(34, frames, bins, stems);
    let out = spatial_run([&x0, &x1], [&m0, &m1], bins, stems);
    for (ch, x) in [&x0, &x1].into_iter().enumerate() {
        let sum: Vec<Complex32> = (0..frames * bins)
            .map(|i| {
                let (t, b) = (i / bins, i % bins);
                (0..stems)
                    .map(|j| out[ch][(t * stems + j) * bins + b])
                    .sum()
            })
            .collect();
        assert_close(
            &format!("Σ stems, channel {ch}"),
            &flat_c(&sum),
            &flat_c(x),
            1e-5,
        );
    }
}

#[test]
fn spatial_filter_splits_two_sources_by_where_they_sit() {
    // Source A sits left (gains 0.9, 0.3), source B right (0.3, 0.9). The masks know only
    // roughly which is louder at a bin (their ideal ratio, pulled 60 % of the way to one half);
    // the filter adds where each sits, learnt from those masks, and gets each source closer.
    let (frames, bins, stems) = (64, 65, 2);
    let mut rng = Rng::new(35);
    let mut src = || -> Vec<Complex32> {
        (0..frames * bins)
            .map(|_| Complex32::new(rng.signed(), rng.signed()) * rng.uniform().powi(2))
            .collect()
    };
    let (a, b) = (src(), src());
    let x0: Vec<Complex32> = a.iter().zip(&b).map(|(a, b)| a * 0.9 + b * 0.3).collect();
    let x1: Vec<Complex32> = a.iter().zip(&b).map(|(a, b)| a * 0.3 + b * 0.9).collect();
    let mut m = vec![0.0f32; frames * stems * bins];
    for i in 0..frames * bins {
        let (t, k) = (i / bins, i % bins);
        let (pa, pb) = (a[i].norm_sqr(), b[i].norm_sqr());
        let ideal = if pa + pb > 0.0 { pa / (pa + pb) } else { 0.5 };
        let ma = 0.5 + 0.4 * (ideal - 0.5);
        m[t * stems * bins + k] = ma;
        m[(t * stems + 1) * bins + k] = 1.0 - ma;
    }
    let out = spatial_run([&x0, &x1], [&m, &m], bins, stems);
    // Stem 0 of channel 0 against source A's left image, 0.9·A.
    let want: Vec<Complex32> = a.iter().map(|a| a * 0.9).collect();
    let got: Vec<Complex32> = (0..frames * bins)
        .map(|i| out[0][((i / bins) * stems) * bins + i % bins])
        .collect();
    let masked: Vec<Complex32> = (0..frames * bins)
        .map(|i| x0[i] * m[((i / bins) * stems) * bins + i % bins])
        .collect();
    let err = common::rel_l2(&flat_c(&got), &flat_c(&want));
    let err_masks = common::rel_l2(&flat_c(&masked), &flat_c(&want));
    assert!(
        err < 0.6 * err_masks,
        "source A's left image: filter error {err:.3}, masks' error {err_masks:.3}"
    );
}

#[test]
fn spatial_filter_keeps_silence_silent() {
    let (frames, bins, stems) = (8, 17, 5);
    let x = vec![Complex32::default(); frames * bins];
    let m = vec![0.2f32; frames * stems * bins];
    let out = spatial_run([&x, &x], [&m, &m], bins, stems);
    for (ch, o) in out.iter().enumerate() {
        assert!(
            o.iter().all(|z| z.re == 0.0 && z.im == 0.0),
            "channel {ch} not silent"
        );
    }
}

#[test]
fn spatial_filter_is_scale_free_and_finite_on_quiet_input() {
    // The filter depends on ratios only: a mix 240 dB down gives the same stems 240 dB down
    // (it once gave NaN where det C underflowed), and one 400 dB down stays finite.
    let (frames, bins, stems) = (12, 65, 5);
    let (x0, x1, m0, m1) = spatial_case(36, frames, bins, stems);
    let loud = spatial_run([&x0, &x1], [&m0, &m1], bins, stems);
    for scale in [1e-12f32, 1e-20] {
        let q = |x: &[Complex32]| -> Vec<Complex32> { x.iter().map(|z| z * scale).collect() };
        let (q0, q1) = (q(&x0), q(&x1));
        let quiet = spatial_run([&q0, &q1], [&m0, &m1], bins, stems);
        for ch in 0..2 {
            let got = flat_c(&quiet[ch]);
            assert!(
                got.iter().all(|v| v.is_finite()),
                "scale {scale}: not finite"
            );
            if scale == 1e-12 {
                let want: Vec<f32> = flat_c(&loud[ch]).iter().map(|v| v * scale).collect();
                assert_close(&format!("scale {scale} channel {ch}"), &got, &want, 1e-4);
            }
        }
    }
}
