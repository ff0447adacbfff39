//! Criterion benchmarks of the GPU engine against the CPU one: the whole separator on 10 s of
//! stereo 48 kHz (real-time factor = 10 s / time shown), and each GPU stage on its own through
//! the stage runner (those times include the stage's upload and readback; the per-stage GPU
//! time from timestamp queries is printed with the engine's counters before the benches).
//! On lavapipe (software Vulkan) these are CPU timings of a GPU emulator, not GPU timings.
//! Run: `cargo bench --bench gpu`. Without an adapter it prints SKIPPED (fails with
//! STEMKIT_REQUIRE_GPU=1).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use realfft::num_complex::Complex32;
use std::hint::black_box;
use std::time::Instant;
use stemkit::demo::{render_all, Part};
use stemkit::engine::GPU_BLOCK_FRAMES;
use stemkit::gpu::{shared_test_context, FftPath, GpuSeparator, StageRunner};
use stemkit::rng::Rng;
use stemkit::{HpssParams, SeparationParams, Separator};

const SECONDS: f64 = 10.0;
const FRAMES: usize = 256;
const N_FFT: usize = 2048;
const HOP: usize = 512;

fn params(block_frames: usize) -> SeparationParams {
    SeparationParams {
        block_frames,
        ..Default::default()
    }
}

fn pipeline(c: &mut Criterion) {
    let Some(ctx) = shared_test_context() else {
        return;
    };
    let frames = (SECONDS * 48000.0) as usize;
    let mix = render_all(Part::Mix, 48000, 2, frames);
    let gpu = GpuSeparator::new(ctx.clone(), params(GPU_BLOCK_FRAMES)).unwrap();
    let cpu = Separator::new(params(stemkit::separator::DEFAULT_BLOCK_FRAMES)).unwrap();

    // One measured run with the engine's counters, so the figures have their traffic beside them.
    let before = gpu.stats();
    let t = Instant::now();
    gpu.separate(&mix).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let st = gpu.stats().since(&before);
    let pcm_in = (frames * 2 * 4) as f64;
    let pcm_out = pcm_in * gpu.stems().len() as f64;
    eprintln!(
        "gpu pipeline on {} ({:?}): {SECONDS} s stereo 48 kHz in {wall:.3} s = {:.0}x real time; \
         {} chunks, {} submissions, {} dispatches; {:.2} MB up, {:.2} MB back = {:.3} x (PCM in + stems out)",
        ctx.adapter_info().name,
        ctx.adapter_info().backend,
        SECONDS / wall,
        st.blocks,
        st.submissions,
        st.dispatches,
        st.bytes_uploaded as f64 / 1e6,
        st.bytes_read_back as f64 / 1e6,
        (st.bytes_uploaded + st.bytes_read_back) as f64 / (pcm_in + pcm_out),
    );
    if st.timestamps {
        let parts: Vec<String> = st
            .stage_times()
            .map(|(n, d)| format!("{n} {:.3} ms", d.as_secs_f64() * 1e3))
            .collect();
        eprintln!(
            "gpu time per stage (timestamps): {} = {:.3} ms",
            parts.join(", "),
            st.gpu_time().as_secs_f64() * 1e3
        );
    }

    let mut g = c.benchmark_group("pipeline_10s_stereo");
    g.sample_size(10);
    g.throughput(Throughput::Elements(frames as u64));
    g.bench_function("gpu", |b| b.iter(|| black_box(gpu.separate(&mix).unwrap())));
    g.bench_function("cpu", |b| b.iter(|| black_box(cpu.separate(&mix))));
    g.finish();
}

fn stages(c: &mut Criterion) {
    let Some(ctx) = shared_test_context() else {
        return;
    };
    let path = stemkit::gpu::pipelines::choose_fft_path(N_FFT, &ctx.limits());
    let runner = StageRunner::new(ctx.clone(), N_FFT, path).unwrap();
    let mut rng = Rng::new(1);
    let signal = rng.signal(FRAMES * HOP + N_FFT);
    let hpss = HpssParams::default();
    let mut g = c.benchmark_group("gpu_stage_with_transfers");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FRAMES as u64));
    let frames = runner.frame(&[&signal], 0, 0, FRAMES, HOP).unwrap();
    g.bench_function("frame", |b| {
        b.iter(|| black_box(runner.frame(&[&signal], 0, 0, FRAMES, HOP).unwrap()))
    });
    let spectra: Vec<Complex32> = runner.fft(&frames).unwrap();
    g.bench_function(format!("fft_{path:?}"), |b| {
        b.iter(|| black_box(runner.fft(&frames).unwrap()))
    });
    if path == FftPath::Workgroup {
        let global = StageRunner::new(ctx.clone(), N_FFT, FftPath::Global).unwrap();
        g.bench_function("fft_Global", |b| {
            b.iter(|| black_box(global.fft(&frames).unwrap()))
        });
    }
    let mag = runner.magnitude(&spectra).unwrap();
    g.bench_function("magnitude", |b| {
        b.iter(|| black_box(runner.magnitude(&spectra).unwrap()))
    });
    g.bench_function("median_time", |b| {
        b.iter(|| {
            black_box(
                runner
                    .median_time(&mag, 0, FRAMES, 0, FRAMES, 31, 1)
                    .unwrap(),
            )
        })
    });
    let harm = runner
        .median_time(&mag, 0, FRAMES, 0, FRAMES, 31, 1)
        .unwrap();
    g.bench_function("median_freq", |b| {
        b.iter(|| black_box(runner.median_freq(&mag, 31).unwrap()))
    });
    let perc = runner.median_freq(&mag, 31).unwrap();
    g.bench_function("mask", |b| {
        b.iter(|| black_box(runner.mask(&spectra, &harm, &perc, &hpss, true).unwrap()))
    });
    g.bench_function("ifft", |b| {
        b.iter(|| black_box(runner.ifft(&spectra).unwrap()))
    });
    let time_frames = runner.ifft(&spectra).unwrap();
    let count = (FRAMES - 8) * HOP;
    g.bench_function("overlap_add", |b| {
        b.iter(|| {
            black_box(
                runner
                    .overlap_add(
                        &time_frames,
                        1,
                        0,
                        HOP,
                        FRAMES,
                        &signal,
                        N_FFT as u64,
                        count,
                    )
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, stages);
criterion_main!(benches);
