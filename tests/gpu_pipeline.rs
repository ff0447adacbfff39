//! The GPU engine end to end against the CPU `Separator`: stems SNR ≥ 100 dB for mono, stereo
//! and 6 channels, odd lengths, signals shorter than a frame, every allowed n_fft, soft and hard
//! masks; chunked processing identical to whole-file processing; blocks split to fit a device
//! with small limits; and the engine's counters (one submission per block, dispatches
//! independent of the block length, traffic within 1.1 × the PCM in and out).
//! Without a GPU adapter every test prints SKIPPED and passes, unless STEMKIT_REQUIRE_GPU=1.

mod common;

use common::{assert_identical, assert_stems_match, mix};
use std::sync::Arc;
use stemkit::gpu::{shared_test_context, FftPath, GpuContext, GpuOptions, GpuSeparator};
use stemkit::rng::Rng;
use stemkit::stream::separate_all;
use stemkit::{HpssParams, SeparationParams, Separator, StemSet, StftParams};

fn gpu() -> Option<Arc<GpuContext>> {
    shared_test_context()
}

fn params(
    n_fft: usize,
    hop: usize,
    kernels: (usize, usize),
    margin: (f32, f32),
    power: f32,
    block: usize,
) -> SeparationParams {
    let hpss = HpssParams {
        harmonic_kernel: kernels.0,
        harmonic_tap: 1,
        percussive_kernel: kernels.1,
        margin_harmonic: margin.0,
        margin_percussive: margin.1,
        power,
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

fn poisoned(ctx: &Arc<GpuContext>, p: SeparationParams) -> GpuSeparator {
    GpuSeparator::with_options(
        ctx.clone(),
        p,
        GpuOptions {
            poison: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn signal(seed: u64, channels: usize, len: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| mix(seed * 10 + c as u64, len, 22050.0))
        .collect()
}

#[test]
fn stems_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    // (n_fft, hop, kernels, margins, power, channels, length)
    for (i, &(n_fft, hop, k, m, power, channels, len)) in [
        (
            2048usize,
            512usize,
            (31usize, 31usize),
            (1.0f32, 1.0f32),
            2.0f32,
            2usize,
            30_011usize,
        ),
        (1024, 256, (17, 31), (2.0, 3.0), 2.0, 1, 12_345),
        (512, 128, (31, 31), (1.0, 1.0), 1.0, 6, 4_001),
        (1024, 256, (16, 20), (3.0, 3.0), 1.5, 2, 9_000),
        (2048, 512, (31, 31), (1.0, 1.0), 2.0, 2, 1_500), // shorter than one frame
        (256, 100, (200, 65), (1.0, 1.0), 2.0, 1, 3_333), // radix-select kernels, odd hop
        (512, 256, (5, 300), (2.0, 2.0), 1.0, 1, 5_000),  // hop n_fft/2, kernel > bins
    ]
    .iter()
    .enumerate()
    {
        let p = params(n_fft, hop, k, m, power, 16);
        let x = signal(i as u64, channels, len);
        let want = Separator::new(p.clone()).unwrap().separate(&x);
        let gpu = poisoned(&ctx, p);
        let got = gpu.separate(&x).unwrap();
        assert_stems_match(
            &format!("n_fft {n_fft} hop {hop} k {k:?} margin {m:?} power {power} ch {channels} len {len}"),
            &got,
            &want,
            &x,
            100.0,
        );
    }
}

#[test]
fn hard_masks_match_the_cpu_separator() {
    // Hard masks switch a bin wholly between stems when harm ≈ perc, so the FFTs' last-bit
    // differences can flip a rare near-tie bin from one stem to another (the masks themselves
    // are identical on identical inputs: see gpu_stages). A flip moves a bin of the mix, so the
    // error is judged against the mix: ≥ 100 dB below the input's energy in every stem.
    let Some(ctx) = gpu() else { return };
    for (i, &(n_fft, hop, m, channels, len)) in [
        (1024usize, 256usize, (1.0f32, 1.0f32), 2usize, 20_000usize),
        (512, 128, (2.0, 1.5), 1, 7_777),
    ]
    .iter()
    .enumerate()
    {
        let p = params(n_fft, hop, (31, 31), m, f32::INFINITY, 32);
        let x = signal(50 + i as u64, channels, len);
        let want = Separator::new(p.clone()).unwrap().separate(&x);
        let got = poisoned(&ctx, p).separate(&x).unwrap();
        let what = format!("hard masks n_fft {n_fft} margin {m:?}");
        for (s, (gs, ws)) in got.iter().zip(&want).enumerate() {
            for (ch, (g, w)) in gs.iter().zip(ws).enumerate() {
                let e: f64 = x[ch].iter().map(|v| (*v as f64).powi(2)).sum();
                let err: f64 = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum();
                let db = if err == 0.0 {
                    f64::INFINITY
                } else {
                    10.0 * (e / err).log10()
                };
                if db < 100.0 {
                    let (i, gv, wv) = common::worst(g, w);
                    panic!("{what}: stem {s} ch {ch}: error {db:.1} dB below the mix < 100 dB; worst at {i}: got {gv}, want {wv}");
                }
            }
        }
    }
}

#[test]
fn every_n_fft_on_both_fft_paths() {
    let Some(ctx) = gpu() else { return };
    for (i, &n_fft) in [256usize, 512, 1024, 2048, 4096, 8192, 16384]
        .iter()
        .enumerate()
    {
        let hop = n_fft / 4;
        let len = 3 * n_fft + 17 * i + 1;
        let p = params(n_fft, hop, (9, 31), (1.0, 1.0), 2.0, 4);
        let x = signal(70 + i as u64, 2, len);
        let want = Separator::new(p.clone()).unwrap().separate(&x);
        let mut paths = vec![FftPath::Global];
        if stemkit::gpu::pipelines::choose_fft_path(n_fft, &ctx.limits()) == FftPath::Workgroup {
            paths.push(FftPath::Workgroup);
        }
        for path in paths {
            let gpu = GpuSeparator::with_options(
                ctx.clone(),
                p.clone(),
                GpuOptions {
                    fft_path: Some(path),
                    poison: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let got = gpu.separate(&x).unwrap();
            assert_stems_match(&format!("n_fft {n_fft} {path:?}"), &got, &want, &x, 100.0);
        }
    }
}

#[test]
fn chunked_equals_whole_file() {
    let Some(ctx) = gpu() else { return };
    let len = 22050 * 2 + 123;
    let x = signal(90, 2, len);
    let whole = GpuSeparator::new(
        ctx.clone(),
        params(1024, 256, (31, 31), (2.0, 2.0), 2.0, 100_000),
    )
    .unwrap()
    .separate(&x)
    .unwrap();
    for block in [1usize, 7, 64] {
        let gpu = poisoned(&ctx, params(1024, 256, (31, 31), (2.0, 2.0), 2.0, block));
        // Pushed in odd-sized pieces, as a decoder would.
        let mut out = vec![vec![Vec::new(); 2]; whole.len()];
        let mut stream = gpu.stream(2);
        let mut rng = Rng::new(block as u64);
        let mut at = 0;
        while at < len {
            let n = (1 + rng.below(7000)).min(len - at);
            let piece: Vec<Vec<f32>> = x.iter().map(|c| c[at..at + n].to_vec()).collect();
            stream.push(&piece, &mut out).unwrap();
            at += n;
        }
        stream.finish(&mut out).unwrap();
        for s in 0..whole.len() {
            for ch in 0..2 {
                assert_identical(
                    &format!("block {block} stem {s} ch {ch}"),
                    &out[s][ch],
                    &whole[s][ch],
                );
            }
        }
    }
}

#[test]
fn blocks_split_to_fit_a_small_device() {
    // A device of our own with a 1 MiB binding limit: a 500-frame block does not fit and is
    // split inside the engine; the stems do not change.
    let Some(shared) = gpu() else { return };
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 20,
        ..adapter.limits()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("small"),
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let small = Arc::new(GpuContext::from_device(device, queue, adapter.get_info()));
    let p = params(1024, 256, (31, 31), (1.0, 1.0), 2.0, 500);
    let gpu = GpuSeparator::new(small, p.clone()).unwrap();
    let cap = gpu.max_block_frames(2);
    assert!(cap > 0 && cap < 500, "max_block_frames {cap}");
    let x = signal(95, 2, 256 * 600);
    let got = gpu.separate(&x).unwrap();
    let reference = GpuSeparator::new(shared, p).unwrap().separate(&x).unwrap();
    for s in 0..got.len() {
        for ch in 0..2 {
            assert_identical(
                &format!("split stem {s} ch {ch}"),
                &got[s][ch],
                &reference[s][ch],
            );
        }
    }
    let st = gpu.stats();
    assert!(st.submissions > 2, "{st:?}");
}

#[test]
fn workgroup_fft_beyond_the_device_limit_is_an_error() {
    let Some(_) = gpu() else { return };
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let limits = wgpu::Limits {
        max_compute_workgroup_storage_size: 16 * 1024,
        ..adapter.limits()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let ctx = Arc::new(GpuContext::from_device(device, queue, adapter.get_info()));
    let p = params(8192, 2048, (31, 31), (1.0, 1.0), 2.0, 16);
    let forced = GpuSeparator::with_options(
        ctx.clone(),
        p.clone(),
        GpuOptions {
            fft_path: Some(FftPath::Workgroup),
            ..Default::default()
        },
    );
    let e = forced.unwrap_err();
    assert!(e.to_string().contains("workgroup memory"), "{e}");
    // Left to choose, the engine takes the global FFT there.
    assert_eq!(
        GpuSeparator::new(ctx, p).unwrap().fft_path(),
        FftPath::Global
    );
}

#[test]
fn stats_count_one_submission_per_block_and_bounded_traffic() {
    let Some(ctx) = gpu() else { return };
    let channels = 2;
    let len = 22050 * 12 + 77;
    let x = signal(99, channels, len);
    let mut per_block = Vec::new();
    for block in [256usize, 100] {
        let p = params(2048, 512, (31, 31), (2.0, 2.0), 2.0, block);
        let gpu = GpuSeparator::new(ctx.clone(), p).unwrap();
        let before = gpu.stats();
        let stems = separate_all(&gpu, &x).unwrap();
        let st = gpu.stats().since(&before);
        println!("block {block}: {st:?}");
        assert!(st.blocks >= 2, "a multi-block run: {st:?}");
        assert_eq!(st.submissions, st.blocks, "one submission per block");
        assert_eq!(st.dispatches % st.blocks, 0);
        per_block.push(st.dispatches / st.blocks);
        let pcm_in = (len * channels * 4) as u64;
        let pcm_out = (len * channels * stems.len() * 4) as u64;
        let traffic = st.bytes_uploaded + st.bytes_read_back;
        let ratio = traffic as f64 / (pcm_in + pcm_out) as f64;
        println!("block {block}: traffic {traffic} bytes = {ratio:.3} × PCM in + out");
        if block == 256 {
            assert!(ratio <= 1.1, "traffic {ratio:.3} × the PCM in and out");
        }
        for (name, t) in st.stage_times() {
            println!("  {name}: {t:?}");
        }
    }
    assert_eq!(
        per_block[0], per_block[1],
        "dispatches per block depend on its length"
    );
}

/// Production-stem parameters at `rate`: the defaults, `stems` (e.g. "drums,bass,melody,harmony,fx").
fn production_params(stems: &str, no_rest: bool, rate: u32, block: usize) -> SeparationParams {
    stemkit::SeparationSpec {
        stems: stems.into(),
        no_rest,
        block_frames: block,
        ..Default::default()
    }
    .resolve(rate)
    .unwrap()
}

#[test]
fn production_stems_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    // (stems, no_rest, channels, length, GPU block frames)
    for &(stems, no_rest, channels, len, block) in &[
        (
            "drums,bass,melody,harmony,fx",
            false,
            2usize,
            48_000 * 5 + 17,
            64usize,
        ),
        ("drums,bass,melody,harmony,fx", false, 1, 48_000 * 3, 1000),
        ("bass,melody", false, 2, 48_000 * 3 + 5, 80),
        ("drums,fx", true, 1, 30_000, 50),
        ("harmony,rest", false, 2, 1_500, 16), // shorter than one frame
    ] {
        let x = common::production_signal(channels, len, len as u64);
        let cpu = production_params(stems, no_rest, 48000, 1024);
        let want = Separator::new(cpu).unwrap().separate(&x);
        let gpu = poisoned(&ctx, production_params(stems, no_rest, 48000, block));
        let before = gpu.stats();
        let got = gpu.separate(&x).unwrap();
        let st = gpu.stats().since(&before);
        let lines = gpu.params().stems.needs_lines();
        assert_eq!(
            st.submissions,
            st.blocks * if lines { 2 } else { 1 },
            "{stems}: submissions per block"
        );
        assert_stems_match(
            &format!("{stems} no_rest {no_rest} ch {channels} len {len} block {block}"),
            &got,
            &want,
            &x,
            100.0,
        );
    }
}

/// The GPU's stems against the CPU separator's on a 3 s production signal of `channels`
/// (`seed`), `params(block, on)` giving the settings of a feature with short segments (on) or
/// without it: the feature must change the stems (else this tests nothing), and GPU blocks of
/// `block` frames split into parts of at most `cap` must match the CPU's whole-file stems.
fn segments_match(
    ctx: &Arc<GpuContext>,
    what: &str,
    (channels, block, cap, seed): (usize, usize, Option<usize>, u64),
    params: impl Fn(usize, bool) -> SeparationParams,
) {
    let x = common::production_signal(channels, 48_000 * 3 + 71, seed);
    let want = Separator::new(params(1000, true)).unwrap().separate(&x);
    let plain = Separator::new(params(1000, false)).unwrap().separate(&x);
    assert_ne!(want, plain, "{what} leaves the stems as they were");
    let gpu = GpuSeparator::with_options(
        ctx.clone(),
        params(block, true),
        GpuOptions {
            poison: true,
            max_part_frames: cap,
            ..Default::default()
        },
    )
    .unwrap();
    let got = gpu.separate(&x).unwrap();
    assert_stems_match(
        &format!("{what}, {channels} ch, GPU block {block}, parts of at most {cap:?}"),
        &got,
        &want,
        &x,
        100.0,
    );
}

/// The bass profile on short segments (32 frames), so that GPU blocks hold several and their
/// rebuilt first frames lie in the previous block's last one; stereo without the spatial filter
/// and mono; blocks split into parts (a device cap of 45 frames: parts of one segment).
#[test]
fn bass_profile_segments_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    for (channels, block, cap) in [(2usize, 100usize, None), (1, 70, None), (2, 100, Some(45))] {
        let params = |block: usize, profile: bool| {
            let mut p = stemkit::SeparationSpec {
                stems: "drums,bass,melody,harmony,fx".into(),
                block_frames: block,
                production: stemkit::production::ProductionSpec {
                    spatial: false,
                    bass_profile: profile,
                    ..Default::default()
                },
                ..Default::default()
            }
            .resolve(48000)
            .unwrap();
            if profile {
                p.production.profile_frames = 32;
            }
            // The melody floor and the harmony hold (on by default) on the same grid.
            p.production.melody_floor_frames = 32;
            p.production.hold_frames = 32;
            p
        };
        segments_match(&ctx, "bass profile", (channels, block, cap, 77), params);
    }
}

/// The melody floor on short segments (32 frames; a floor 2 semitones under the median, so that
/// it unvoices many frames of the test signal), alone and beside the bass profile on segments of
/// 48 (the blocks and parts then hold whole segments of both, 96 frames); stereo without the
/// spatial filter and mono; parts of one segment or one grid.
#[test]
fn melody_floor_segments_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    for (channels, block, cap, profile) in [
        (2usize, 100usize, None, None),
        (1, 70, Some(45), None),
        (2, 100, Some(100), Some(48usize)),
    ] {
        let params = |block: usize, floor: bool| {
            let mut p = stemkit::SeparationSpec {
                stems: "drums,bass,melody,harmony,fx".into(),
                block_frames: block,
                production: stemkit::production::ProductionSpec {
                    spatial: false,
                    bass_profile: profile.is_some(),
                    melody_floor_st: if floor { 2.0 } else { 0.0 },
                    ..Default::default()
                },
                ..Default::default()
            }
            .resolve(48000)
            .unwrap();
            if floor {
                p.production.melody_floor_frames = 32;
            }
            if let Some(seg) = profile {
                p.production.profile_frames = seg;
            }
            // The harmony hold (on by default) on segments of 32.
            p.production.hold_frames = 32;
            p
        };
        let what = format!("melody floor (profile segments {profile:?})");
        segments_match(&ctx, &what, (channels, block, cap, 78), params);
    }
}

/// The harmony hold on short segments (32 frames, floors over ±2 points), so that GPU blocks
/// hold several and their rebuilt first frames read the previous block's last floors: stereo
/// with the spatial filter (on the same segments; the filter's sums take the unheld masks, its
/// synthesis the held ones), stereo without it, mono; points every 4th frame, and every frame
/// (three carried points a block); blocks split into parts.
#[test]
fn harmony_hold_segments_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    for (channels, spatial, stride, block, cap) in [
        (2usize, true, 4usize, 64usize, Some(40usize)),
        (2, false, 4, 100, None),
        (1, false, 1, 70, Some(45)),
        (2, false, 1, 64, None),
    ] {
        let params = |block: usize, hold: bool| {
            let mut p = stemkit::SeparationSpec {
                stems: "drums,bass,melody,harmony,fx".into(),
                block_frames: block,
                production: stemkit::production::ProductionSpec {
                    spatial,
                    harmony_hold_ms: if hold { 900.0 } else { 0.0 },
                    ..Default::default()
                },
                ..Default::default()
            }
            .resolve(48000)
            .unwrap();
            let pp = &mut p.production;
            if spatial {
                pp.spatial_frames = 32;
            }
            pp.profile_frames = 32;
            pp.melody_floor_frames = 32;
            if hold {
                pp.hold_frames = 32;
                pp.hold_stride = stride;
                pp.hold_radius = 2;
            }
            p
        };
        let what = format!("harmony hold (spatial {spatial}, points every {stride} frames)");
        segments_match(&ctx, &what, (channels, block, cap, 79), params);
    }
}

#[test]
fn spatial_stems_match_the_cpu_separator() {
    let Some(ctx) = gpu() else { return };
    // Short segments, so a few seconds cross several segments and blocks. (segment, GPU block
    // frames, device cap on a part's frames): blocks of 2 segments, parts of 1; blocks of 5,
    // parts of 3 and 2; blocks of 2, parts of 1.
    // Segments of 128 frames are summed in two chunks of 64. The last case filters the bins up
    // to 4 kHz only (171 of 1025).
    for &(segment, block, cap, band) in &[
        (40usize, 64usize, 45usize, f32::INFINITY),
        (24, 100, 80, f32::INFINITY),
        (128, 200, 130, 4000.0),
    ] {
        let spatial = |block: usize| common::spatial_params(segment, band, block);
        let x = common::production_signal(2, 48_000 * 3 + 333, segment as u64);
        let want = Separator::new(spatial(1000)).unwrap().separate(&x);
        let gpu = GpuSeparator::with_options(
            ctx.clone(),
            spatial(block),
            stemkit::gpu::GpuOptions {
                poison: true,
                max_part_frames: Some(cap),
                ..Default::default()
            },
        )
        .unwrap();
        let got = gpu.separate(&x).unwrap();
        assert_stems_match(
            &format!(
                "spatial segment {segment}, block {block}, parts of at most {cap}, up to {band} Hz"
            ),
            &got,
            &want,
            &x,
            100.0,
        );
        // Mono passes unchanged: the same stems as without the filter.
        let mono = [x[0].clone()];
        let mut plain = production_params("drums,bass,melody,harmony,fx", false, 48000, block);
        plain.production.profile_frames = segment;
        plain.production.melody_floor_frames = segment;
        plain.production.hold_frames = segment;
        let a = gpu.separate(&mono).unwrap();
        let b = GpuSeparator::new(ctx.clone(), plain)
            .unwrap()
            .separate(&mono)
            .unwrap();
        assert_eq!(a, b, "mono with the spatial filter on");
    }
}

#[test]
fn production_traffic_stays_near_the_pcm() {
    let Some(ctx) = gpu() else { return };
    let (channels, len) = (2, 48_000 * 8);
    let x = common::production_signal(channels, len, 5);
    let gpu = GpuSeparator::new(
        ctx.clone(),
        production_params("drums,bass,melody,harmony,fx", false, 48000, 512),
    )
    .unwrap();
    let before = gpu.stats();
    let stems = separate_all(&gpu, &x).unwrap();
    let st = gpu.stats().since(&before);
    let pcm = (len * channels * (1 + stems.len()) * 4) as u64;
    let ratio = (st.bytes_uploaded + st.bytes_read_back) as f64 / pcm as f64;
    println!("five stems: {st:?}\ntraffic {ratio:.3} × PCM in + out");
    // The lines' input read back: per frame one summed magnitude row and the bass's reach of the
    // summed harmonic row, against 6 × 2 × hop samples of PCM.
    assert!(ratio <= 1.3, "traffic {ratio:.3} × the PCM in and out");
}

#[test]
fn concurrent_tracks_share_submissions_and_match_alone() {
    let Some(ctx) = gpu() else { return };
    for (stems, phases) in [("hpr", 1), ("drums,bass,melody,harmony,fx", 2)] {
        let gpu =
            GpuSeparator::new(ctx.clone(), production_params(stems, false, 48000, 2048)).unwrap();
        // Short tracks: one block each.
        let tracks: Vec<Vec<Vec<f32>>> = (0..6)
            .map(|i| common::production_signal(2, 40_000 + 3_001 * i, i as u64))
            .collect();
        let alone: Vec<_> = tracks.iter().map(|x| gpu.separate(x).unwrap()).collect();
        let before = gpu.stats();
        let together: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = tracks
                .iter()
                .map(|x| s.spawn(|| gpu.separate(x).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let st = gpu.stats().since(&before);
        println!(
            "{stems}: {} blocks in {} submissions",
            st.blocks, st.submissions
        );
        // The same kernels on the same inputs, whichever slot a block had: identical.
        for (i, (t, a)) in together.iter().zip(&alone).enumerate() {
            assert!(
                t == a,
                "{stems}: track {i} differs when it shares a submission"
            );
        }
        assert_eq!(st.blocks, tracks.len() as u64);
        assert!(
            st.submissions < st.blocks * phases,
            "{stems}: no block shared a submission ({st:?})"
        );
    }
}
