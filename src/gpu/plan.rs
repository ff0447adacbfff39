//! Block geometry for the GPU engine, on the CPU: which frames a block computes, which input
//! samples it uploads, and the [`GpuParams`] that tell the shaders.
//!
//! The GPU engine keeps no state between blocks. To emit the same samples as the CPU engine
//! (which carries its last inverse frames over), a block also rebuilds the `tail_frames`
//! frames before its start; their masks need their own time-median context, so the block holds
//! the frames the time median reaches from `start − tail` to `end` (after reflection). The
//! stream driver keeps the input samples for that (see `crate::stream`).

use crate::error::{Error, Result};
use crate::gpu::params::{mask_mode, stem_kind, GpuParams};
use crate::gpu::stage_runner::NormPlan;
use crate::production::{SteadyGrid, STEADY_STEP};
use crate::separator::SeparationParams;
use crate::stages::overlap_add::WindowSumSquare;
use crate::stream::tail_frames;

/// Reflection boundaries beyond this many frames are never reached within a block, so the
/// shaders get this instead (keeps `2n` within i32).
pub const MAX_FRAMES_REL: usize = 1 << 29;

/// One GPU block: frames `start .. end` (outputs) of a signal of `n_frames` frames, emitting
/// samples `emit_from .. emit_to`.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockPlan {
    /// First frame the block produces (its own; the frames from `t0` are rebuilt).
    pub start: usize,
    /// First frame whose inverse is computed: `start − tail_frames` (or 0).
    pub t0: usize,
    /// One past the last frame produced.
    pub end: usize,
    /// First frame whose spectrum is computed.
    pub lo: usize,
    /// One past the last frame whose spectrum is computed.
    pub hi: usize,
    /// First input sample uploaded (global index).
    pub pcm_start: u64,
    /// Samples uploaded per channel.
    pub pcm_len: usize,
    /// First sample emitted.
    pub emit_from: u64,
    /// One past the last sample emitted.
    pub emit_to: u64,
    /// The shaders' view of all this.
    pub params: GpuParams,
    /// Window sum-square of the emitted samples outside the periodic interior.
    pub wss_edge: Vec<f32>,
}

/// Frames (held range) the time median of frames `t0 .. end` reaches, reflected in `n_frames`.
pub use crate::stream::reach as held_range;

/// Plans frames `start .. end` emitting `emit_from .. emit_to`, with input held up to sample
/// `input_end` (exclusive; later samples read as zero, as `SignalView::at` gives).
///
/// # Errors
/// [`Error::Gpu`] when the emitted samples need frames outside the block (a driver bug).
#[allow(clippy::too_many_arguments)]
pub fn plan_block(
    sep: &SeparationParams,
    wss: &WindowSumSquare,
    channels: usize,
    start: usize,
    end: usize,
    n_frames: usize,
    emit_from: u64,
    emit_to: u64,
    input_end: u64,
) -> Result<BlockPlan> {
    let n_fft = sep.stft.n_fft;
    let hop = sep.stft.hop_length;
    let half = (n_fft / 2) as i64;
    let t0 = start.saturating_sub(tail_frames(&sep.stft));
    // The harmonic estimate covers the output frames and, for the pitch lines, their context.
    let ctx = sep.context_frames();
    let (h0, h1) = (t0.saturating_sub(ctx), (end + ctx).min(n_frames).max(end));
    let (lo, hi) = crate::stream::reach_halo(h0, h1, n_frames, sep.hpss.harmonic_halo());
    // With the steady gate the block also holds the frames of the grid points its median reads.
    let steady = sep.steady();
    let grid = steady.map(|(k, _)| SteadyGrid::new(t0, end, n_frames, k));
    let (lo, hi) = match grid {
        Some(g) => (
            lo.min(STEADY_STEP * g.lo),
            hi.max(STEADY_STEP * (g.hi - 1) + 1),
        ),
        None => (lo, hi),
    };

    // Input: every sample of the held frames, and the emitted samples (for the remainder stem).
    let first_frame_sample = (lo * hop) as i64 - half;
    let last_frame_sample = ((hi - 1) * hop) as i64 + half;
    let pcm_start = first_frame_sample.min(emit_from as i64).max(0) as u64;
    let pcm_end = (last_frame_sample.max(emit_to as i64) as u64).min(input_end);
    let pcm_len = pcm_end.saturating_sub(pcm_start) as usize;

    let count = emit_to.saturating_sub(emit_from);
    let pos0 = emit_from + half as u64;
    let frame0_pos = (t0 * hop) as u64;
    // The emitted samples' covering frames must lie in t0 .. end.
    let first_cover = (pos0 + 1).saturating_sub(n_fft as u64).div_ceil(hop as u64);
    let last_cover = ((pos0 + count).saturating_sub(1) / hop as u64).min(n_frames as u64 - 1);
    if count > 0 && (pos0 < frame0_pos || first_cover < t0 as u64 || last_cover >= end as u64) {
        return Err(Error::Gpu(format!(
            "block {start}..{end} cannot emit samples {emit_from}..{emit_to}: they need frames \
             {first_cover}..={last_cover}, the block rebuilds {t0}..{end}"
        )));
    }

    let norm = NormPlan::new(wss, n_fft, hop, n_frames, emit_from, count as usize);
    // The spatial filter acts on stereo blocks only.
    let spatial = sep.spatial().filter(|_| channels == 2);
    let hpss = &sep.hpss;
    let stems = sep.stems.len() as u32;
    let params = GpuParams {
        n_fft: n_fft as u32,
        hop_length: hop as u32,
        bins: sep.stft.n_bins() as u32,
        channels: channels as u32,
        held_frames: (hi - lo) as u32,
        out_frames: (end - t0) as u32,
        out_offset: (t0 - lo) as u32,
        n_frames_rel: (n_frames - lo).min(MAX_FRAMES_REL) as u32,
        pcm_len: pcm_len as u32,
        frame0_sample: (first_frame_sample - pcm_start as i64) as i32,
        harmonic_kernel: hpss.harmonic_kernel as u32,
        harmonic_tap: hpss.harmonic_tap as u32,
        percussive_kernel: hpss.percussive_kernel as u32,
        power: hpss.power,
        margin_harmonic: hpss.margin_harmonic,
        margin_percussive: hpss.margin_percussive,
        mask_mode: mask_mode::for_power(hpss.power),
        split_zeros: hpss.split_zeros() as u32,
        inverted_stems: sep.stems.inverted() as u32,
        n_stems: stems,
        emit_count: count as u32,
        emit_pos0: pos0.saturating_sub(frame0_pos) as u32,
        emit_sample: (emit_from as i64 - pcm_start as i64) as i32,
        oa_frames: (n_frames - t0).min(end - t0) as u32,
        interior_lo: norm.interior.start,
        interior_hi: norm.interior.end,
        wss_phase0: (pos0 % hop as u64) as u32,
        harm_frames: (h1 - h0) as u32,
        harm_held: (h0 - lo) as u32,
        harm_offset: (t0 - h0) as u32,
        steady_margin: steady.map_or(0.0, |(_, m)| m),
        spatial_segment: spatial.map_or(0, |l| l as u32),
        spatial_phase: spatial.map_or(0, |l| (t0 % l) as u32),
        spatial_bins: spatial.map_or(0, |_| spatial_bins(sep)),
        spatial_stride: spatial.map_or(1, |l| spatial_stride(sep, l)),
        hold_phase: sep.hold().map_or(0, |l| (t0 % l) as u32),
        ..steady_fields(production_fields(sep), steady.map(|(k, _)| k), grid, t0, lo)
    };
    Ok(BlockPlan {
        start,
        t0,
        end,
        lo,
        hi,
        pcm_start,
        pcm_len,
        emit_from,
        emit_to,
        params,
        wss_edge: norm.edge,
    })
}

/// `base` with the steady gate's fields for output frames from `t0` read from `grid`, the block
/// holding frames from `lo` (unchanged without the gate).
fn steady_fields(
    base: GpuParams,
    kernel: Option<usize>,
    grid: Option<SteadyGrid>,
    t0: usize,
    lo: usize,
) -> GpuParams {
    let (Some(k), Some(g)) = (kernel, grid) else {
        return base;
    };
    let centre = t0 + STEADY_STEP / 2;
    GpuParams {
        points_frames: (g.hi - g.lo) as u32,
        points_held: (STEADY_STEP * g.lo - lo) as u32,
        steady_rows: g.rows as u32,
        steady_offset: (g.first - g.lo) as u32,
        n_points_rel: (g.n_points - g.lo).min(MAX_FRAMES_REL) as u32,
        steady_phase: (centre % STEADY_STEP) as u32,
        steady_base: (centre / STEADY_STEP - g.first) as u32,
        steady_kernel: k as u32,
        ..base
    }
}

/// The production stems' fields of [`GpuParams`] (zero for `hpr`).
/// The spatial filter's bins (at most all of them).
fn spatial_bins(sep: &SeparationParams) -> u32 {
    sep.production.spatial_bins.min(sep.stft.n_bins()) as u32
}

fn spatial_stride(sep: &SeparationParams, segment: usize) -> u32 {
    crate::stages::spatial::stats_stride(segment, sep.stft.n_fft, sep.stft.hop_length) as u32
}

pub fn production_fields(sep: &SeparationParams) -> GpuParams {
    let crate::stems::StemSet::Production { stems } = &sep.stems else {
        return GpuParams::default();
    };
    let p = &sep.production;
    let bins = sep.stft.n_bins();
    let bin_hz = p.sample_rate as f32 / sep.stft.n_fft as f32;
    GpuParams {
        bin_hz,
        comb_ratio: crate::production::comb_ratio(p.comb_cents),
        bass_partials: p.bass_partials as u32,
        melody_partials: p.melody_partials as u32,
        comb_lobe_hz: crate::production::COMB_LOBE_BINS * bin_hz,
        bass_comb_fade_hz: p.bass_comb_fade_hz,
        drums_below: p.drums_below_ratio,
        mid_margin: p.mid_margin,
        mid_lo: p.mid_bins.0 as u32,
        mid_hi: p.mid_bins.1 as u32,
        sustain_ratio: sep.sustain().map_or(0.0, |(r, _)| r),
        sustain_from: sep.sustain().map_or(0, |(_, (from, _))| from as u32),
        sustain_to: sep.sustain().map_or(0, |(_, (_, to))| to as u32),
        sustain_lo: p.sustain_bins.0 as u32,
        sustain_hi: p.sustain_bins.1 as u32,
        melody_lobe_hz: crate::production::MELODY_LOBE_BINS * bin_hz,
        melody_min_sigma_hz: crate::production::MELODY_MIN_SIGMA_BINS * bin_hz,
        comb_growth: crate::production::BASS_ENVELOPE_GROWTH,
        comb_plaw: crate::production::BASS_POWER_LAW_GROWTH,
        tonal_window: sep.tonal().map_or(0, |(w, _)| w as u32),
        tonal_threshold: sep.tonal().map_or(1.0, |(_, t)| t),
        tail_bins: p.tail_bins as u32,
        tail_frames: p.tail_frames as u32,
        tail_rho: p.tail_rho,
        stem_kinds: stem_kind::pack(&stems[..sep.stems.inverted()]),
        hold_segment: sep.hold().map_or(0, |l| l as u32),
        hold_stride: p.hold_stride.max(1) as u32,
        hold_radius: p.hold_radius as u32,
        hold_bins: sep.hold().map_or(0, |_| p.hold_bins.min(bins) as u32),
        line_bins: if sep.stems.needs_lines() {
            p.bass.bins_read(bins, bin_hz) as u32
        } else {
            0
        },
        ..Default::default()
    }
}

/// The largest shapes a block of `frames` output frames can take (for sizing buffers against
/// the device limits before any block runs).
pub fn worst_case_params(sep: &SeparationParams, channels: usize, frames: usize) -> GpuParams {
    let n_fft = sep.stft.n_fft;
    let hop = sep.stft.hop_length;
    let out = frames + tail_frames(&sep.stft);
    let harm = out + 2 * sep.context_frames();
    let steady = sep.steady();
    // The steady grid: rows for the output frames, points for their medians' reach.
    let (rows, points, reach) = steady.map_or((0, 0, 0), |(k, _)| {
        let (before, after) = SteadyGrid::halo(k);
        let rows = out.div_ceil(STEADY_STEP) + 1;
        (rows, rows + k - 1, out + before + after)
    });
    let (before, after) = sep.hpss.harmonic_halo();
    let held = (harm + before + after).max(reach);
    let stems = sep.stems.len() as u32;
    let spatial = sep.spatial().filter(|_| channels == 2);
    GpuParams {
        n_fft: n_fft as u32,
        hop_length: hop as u32,
        bins: sep.stft.n_bins() as u32,
        channels: channels as u32,
        held_frames: held as u32,
        out_frames: out as u32,
        pcm_len: ((held - 1) * hop + n_fft) as u32,
        inverted_stems: sep.stems.inverted() as u32,
        n_stems: stems,
        emit_count: (frames * hop + n_fft) as u32,
        harm_frames: harm as u32,
        points_frames: points as u32,
        steady_rows: rows as u32,
        steady_kernel: steady.map_or(0, |(k, _)| k as u32),
        steady_margin: steady.map_or(0.0, |(_, m)| m),
        // Sizing: the most segments `out` frames can touch.
        spatial_segment: spatial.map_or(0, |l| l as u32),
        spatial_phase: spatial.map_or(0, |l| l as u32 - 1),
        spatial_bins: spatial.map_or(0, |_| spatial_bins(sep)),
        spatial_stride: spatial.map_or(1, |l| spatial_stride(sep, l)),
        // Sizing: the most points `out` frames can touch.
        hold_phase: sep.hold().map_or(0, |l| l as u32 - 1),
        line_bins: if sep.stems.needs_lines() {
            sep.stft.n_bins() as u32
        } else {
            0
        },
        ..production_fields(sep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{HpssParams, StftParams};
    use crate::stems::StemSet;
    use crate::stream::Block;

    fn sep(n_fft: usize, hop: usize, k: usize) -> SeparationParams {
        SeparationParams {
            stft: StftParams {
                n_fft,
                hop_length: hop,
            },
            hpss: HpssParams {
                harmonic_kernel: k,
                ..Default::default()
            },
            stems: StemSet::Hpr { residual: false },
            block_frames: 16,
            production: Default::default(),
        }
    }

    #[test]
    fn held_range_covers_the_tail_and_reflects() {
        // Interior: t0 − k/2 .. end + k/2.
        assert_eq!(held_range(100, 120, usize::MAX / 4, 31), (85, 135));
        // At the start the reflection stays inside 0 .. end + after.
        assert_eq!(held_range(0, 10, usize::MAX / 4, 31), (0, 25));
        // Windows wider than the signal reach all of it.
        assert_eq!(held_range(0, 3, 3, 101), (0, 3));
    }

    #[test]
    fn plans_follow_the_stream_blocks() {
        let s = sep(2048, 512, 31);
        let wss = WindowSumSquare::new(&crate::stages::frame::hann_periodic(2048), 512);
        // Second block of a long stream: frames 16..32, emitting 16·512 − 1024 .. 32·512 − 1024.
        let b = Block {
            start: 16,
            end: 32,
            held_lo: 1,
            held_hi: 47,
            n_frames: usize::MAX / 4,
            emit_to: 32 * 512 - 1024,
        };
        let p = plan_block(
            &s,
            &wss,
            2,
            b.start,
            b.end,
            b.n_frames,
            16 * 512 - 1024,
            b.emit_to,
            1 << 20,
        )
        .unwrap();
        assert_eq!((p.t0, p.lo, p.hi), (13, 0, 47));
        assert_eq!(p.params.out_frames, 19);
        assert_eq!(p.params.emit_count, 16 * 512);
        assert_eq!(p.params.emit_pos0, 3 * 512);
        assert!(p.wss_edge.is_empty());
        // Emitting samples whose frames the block does not rebuild is refused.
        assert!(plan_block(&s, &wss, 2, 16, 32, b.n_frames, 0, b.emit_to, 1 << 20).is_err());
    }
}
