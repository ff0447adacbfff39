//! Criterion benchmarks: each CPU stage on one block of frames, and the whole separator on
//! 10 s of stereo 48 kHz (its real-time factor is 10 s divided by the time shown).
//! Run: `cargo bench --bench stages`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;
use std::hint::black_box;
use stemkit::demo::{render_all, Part};
use stemkit::rng::Rng;
use stemkit::stages::{fft, frame, ifft, magnitude, mask, median, overlap_add, spatial};
use stemkit::{HpssParams, SeparationParams, Separator};

const FRAMES: usize = 256;
const N_FFT: usize = 2048;
const HOP: usize = 512;
const BINS: usize = N_FFT / 2 + 1;

fn stages(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let signal = rng.signal(FRAMES * HOP + N_FFT);
    let window = frame::hann_periodic(N_FFT);
    let mut planner = RealFftPlanner::new();
    let fwd = fft::ForwardFft::new(&mut planner, N_FFT);
    let inv = ifft::InverseFft::new(&mut planner, N_FFT);
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(FRAMES as u64));

    let mut frames = vec![0.0f32; FRAMES * N_FFT];
    g.bench_function("frame", |b| {
        b.iter(|| {
            for (t, f) in frames.chunks_exact_mut(N_FFT).enumerate() {
                frame::frame_windowed(
                    frame::SignalView {
                        samples: &signal,
                        offset: 0,
                    },
                    t,
                    HOP,
                    &window,
                    f,
                );
            }
        })
    });
    let mut spectra = vec![Complex32::default(); FRAMES * BINS];
    let mut scratch = vec![Complex32::default(); fwd.scratch_len().max(inv.scratch_len())];
    let mut work = frames.clone();
    g.bench_function("fft", |b| {
        b.iter(|| {
            work.copy_from_slice(&frames);
            for (f, s) in work
                .chunks_exact_mut(N_FFT)
                .zip(spectra.chunks_exact_mut(BINS))
            {
                fwd.process(f, s, &mut scratch);
            }
        })
    });
    let mut mag = vec![0.0f32; FRAMES * BINS];
    g.bench_function("magnitude", |b| {
        b.iter(|| magnitude::magnitude(black_box(&spectra), &mut mag))
    });
    let mut harm = vec![0.0f32; FRAMES * BINS];
    let mut perc = vec![0.0f32; FRAMES * BINS];
    let mut ms = median::MedianScratch::default();
    g.bench_function("median_time", |b| {
        b.iter(|| median::median_time(&mag, BINS, 0, FRAMES, 0, 31, &mut harm, 0..BINS, &mut ms))
    });
    // The production stems' harmonic estimate: 0.5 s at 48 kHz, every frame (47) and every 2nd
    // frame (23 taps over 45 frames, the default since the nineteenth session).
    g.bench_function("median_time_47", |b| {
        b.iter(|| median::median_time(&mag, BINS, 0, FRAMES, 0, 47, &mut harm, 0..BINS, &mut ms))
    });
    g.bench_function("median_time_23_tap2", |b| {
        b.iter(|| {
            median::median_time_tapped(
                &mag,
                BINS,
                0,
                FRAMES,
                (0, 2),
                23,
                &mut harm,
                0..BINS,
                &mut ms,
            )
        })
    });
    g.bench_function("median_freq", |b| {
        b.iter(|| median::median_freq(&mag, BINS, 31, &mut perc, &mut ms))
    });
    let (mut mh, mut mp) = (vec![0.0f32; FRAMES * BINS], vec![0.0f32; FRAMES * BINS]);
    let params = HpssParams::default();
    g.bench_function("mask", |b| {
        b.iter(|| mask::hpss_masks(&harm, &perc, &params, &mut mh, &mut mp))
    });
    let mut stem = vec![Complex32::default(); BINS];
    g.bench_function("ifft", |b| {
        b.iter(|| {
            for (s, f) in spectra.chunks_exact(BINS).zip(work.chunks_exact_mut(N_FFT)) {
                stem.copy_from_slice(s);
                inv.process(&mut stem, f, &window, &mut scratch);
            }
        })
    });
    let wss = overlap_add::WindowSumSquare::new(&window, HOP);
    let mut out = vec![0.0f32; (FRAMES - N_FFT / HOP) * HOP];
    g.bench_function("overlap_add", |b| {
        b.iter(|| {
            overlap_add::overlap_add(
                &work,
                N_FFT,
                0,
                0,
                N_FFT,
                HOP,
                FRAMES + 4,
                &wss,
                0,
                &mut out,
            )
        })
    });
    // The spatial filter on stereo frames: five stems' masks that partition unity, one
    // segment's covariances, the four inverted stems of both channels.
    let stems = 5;
    let spectra1: Vec<Complex32> = spectra
        .iter()
        .map(|z| Complex32::new(z.im, -z.re))
        .collect();
    let masks: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            let mut m: Vec<f32> = (0..FRAMES * stems * BINS).map(|_| rng.uniform()).collect();
            for frame in m.chunks_exact_mut(stems * BINS) {
                for b in 0..BINS {
                    let sum: f32 = (0..stems).map(|j| frame[j * BINS + b]).sum();
                    (0..stems).for_each(|j| frame[j * BINS + b] /= sum);
                }
            }
            m
        })
        .collect();
    let mut sums = vec![0.0f32; stems * spatial::COV_ROWS * BINS];
    let mut cross = vec![0.0f32; 4 * BINS];
    g.bench_function("spatial_accumulate", |b| {
        b.iter(|| {
            sums.fill(0.0);
            for t in 0..FRAMES {
                let x = t * BINS..(t + 1) * BINS;
                let m = t * stems * BINS..(t + 1) * stems * BINS;
                spatial::cross_spectra(&spectra[x.clone()], &spectra1[x], &mut cross);
                spatial::accumulate(&cross, &masks[0][m.clone()], &masks[1][m], &mut sums);
            }
        })
    });
    let mut cov = sums.clone();
    spatial::normalise(&mut cov, BINS);
    let inverted = [0usize, 1, 2, 3];
    let (mut out0, mut out1) = (
        vec![Complex32::default(); inverted.len() * BINS],
        vec![Complex32::default(); inverted.len() * BINS],
    );
    let mut ss = spatial::SpatialScratch::default();
    g.bench_function("spatial_apply", |b| {
        b.iter(|| {
            for t in 0..FRAMES {
                let x = t * BINS..(t + 1) * BINS;
                let m = t * stems * BINS..(t + 1) * stems * BINS;
                spatial::apply(
                    &spectra[x.clone()],
                    &spectra1[x],
                    &masks[0][m.clone()],
                    &masks[1][m],
                    &cov,
                    &inverted,
                    [&mut out0, &mut out1],
                    &mut ss,
                );
            }
            black_box(&out0);
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let x = render_all(Part::Mix, 48000, 2, 10 * 48000);
    let sep = Separator::new(SeparationParams::default()).unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10 * 48000));
    g.bench_function("separate_hpr_10s_stereo_48k", |b| {
        b.iter(|| sep.separate(black_box(&x)))
    });
    g.finish();
}

criterion_group!(benches, stages, pipeline);
criterion_main!(benches);
