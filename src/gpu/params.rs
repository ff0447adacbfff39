//! The uniforms every stage shader reads, as `#[repr(C)]` + `bytemuck::Pod` structs. Twin of the
//! `Params` and `PassParams` structs in `shaders/common.wgsl`: same fields, same order, all 4-byte
//! scalars so the WGSL layout is the C layout (a test parses the WGSL with naga and compares).
//!
//! All frame indices here are relative to the first frame the block holds (`held_lo` after the
//! engine widened it), and all sample indices relative to the first uploaded PCM sample, so they
//! fit in 32 bits however long the track is.

use bytemuck::{Pod, Zeroable};

/// `mask_mode` values: which power the soft mask uses (numpy's fast paths for 1 and 2).
pub mod mask_mode {
    /// `x.powf(power)` (WGSL `pow`).
    pub const GENERAL: u32 = 0;
    /// power == 1: `x`.
    pub const LINEAR: u32 = 1;
    /// power == 2: `x * x`.
    pub const SQUARE: u32 = 2;
    /// power == inf: hard masks, strict comparison (ties go to neither).
    pub const HARD: u32 = 3;
    /// power == 4: `(x * x) * (x * x)` (the production stems' default; `powf` costs ~10×).
    pub const FOURTH: u32 = 4;

    /// The mode for a mask power, exactly as `crate::stages::mask::hpss_masks` picks its loop.
    pub fn for_power(power: f32) -> u32 {
        if power.is_infinite() {
            HARD
        } else if power == 2.0 {
            SQUARE
        } else if power == 1.0 {
            LINEAR
        } else if power == 4.0 {
            FOURTH
        } else {
            GENERAL
        }
    }
}

/// `stem_kinds` values: which mask a production stem takes (`STEM_*` in `shaders/common.wgsl`).
pub mod stem_kind {
    use crate::stems::Stem;
    /// The percussive mask.
    pub const DRUMS: u32 = 0;
    /// Harmonic × bass weight.
    pub const BASS: u32 = 1;
    /// Harmonic × (1 − bass) × melody comb.
    pub const MELODY: u32 = 2;
    /// Harmonic × (1 − bass) × (1 − melody comb).
    pub const HARMONY: u32 = 3;
    /// 1 − harmonic − percussive.
    pub const FX: u32 = 4;
    /// No mask (a stem the set does not invert).
    pub const NONE: u32 = 15;

    /// The kind of `stem`.
    pub fn of(stem: Stem) -> u32 {
        match stem {
            Stem::Drums => DRUMS,
            Stem::Bass => BASS,
            Stem::Melody => MELODY,
            Stem::Harmony => HARMONY,
            Stem::Fx => FX,
            _ => NONE,
        }
    }

    /// `stems` packed 4 bits each, first lowest (at most 8).
    pub fn pack(stems: &[Stem]) -> u32 {
        stems
            .iter()
            .take(8)
            .enumerate()
            .fold(0, |acc, (i, &s)| acc | (of(s) << (4 * i)))
    }
}

/// Per-block parameters of every stage (WGSL `Params`, binding 0 of every stage).
///
/// Buffers are channel-major: `frames[ch][held_frames][n_fft]`, `spectra`/`mag`
/// `[ch][held_frames][bins]`, `harm`/`perc` `[ch][out_frames][bins]`, stem spectra
/// `[ch][out_frames][inverted_stems][bins]`, stem frames `[ch][out_frames][inverted_stems][n_fft]`,
/// output `[stem][ch][emit_count]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GpuParams {
    /// FFT size (a power of two).
    pub n_fft: u32,
    /// Frame advance in samples.
    pub hop_length: u32,
    /// n_fft / 2 + 1.
    pub bins: u32,
    /// Channels in this block.
    pub channels: u32,
    /// Frames whose spectra are computed (frame, fft, magnitude).
    pub held_frames: u32,
    /// Frames whose medians, masks and inverse frames are computed.
    pub out_frames: u32,
    /// Held index of output frame 0.
    pub out_offset: u32,
    /// Signal frames counted from held frame 0 (the time median's reflection boundary),
    /// clamped to 2^29.
    pub n_frames_rel: u32,
    /// Samples per channel in the PCM buffer.
    pub pcm_len: u32,
    /// PCM index of held frame 0's first sample (negative before the signal start).
    pub frame0_sample: i32,
    /// Time-median length in frames.
    pub harmonic_kernel: u32,
    /// Frequency-median length in bins.
    pub percussive_kernel: u32,
    /// Soft-mask power (unused for the fast modes).
    pub power: f32,
    /// Harmonic margin.
    pub margin_harmonic: f32,
    /// Percussive margin.
    pub margin_percussive: f32,
    /// One of [`mask_mode`].
    pub mask_mode: u32,
    /// librosa's `split_zeros` (1 or 0).
    pub split_zeros: u32,
    /// Stems that are inverse-transformed (all but the last, which is the time-domain remainder).
    pub inverted_stems: u32,
    /// Stems delivered.
    pub n_stems: u32,
    /// Samples emitted per channel.
    pub emit_count: u32,
    /// Padded position of the first emitted sample, relative to output frame 0's first sample.
    pub emit_pos0: u32,
    /// PCM index of the first emitted sample.
    pub emit_sample: i32,
    /// Output frames that exist in the signal (overlap-add clips covering frames to these).
    pub oa_frames: u32,
    /// First emitted index that uses the periodic window sum-square.
    pub interior_lo: u32,
    /// One past the last emitted index that uses the periodic window sum-square.
    pub interior_hi: u32,
    /// `(first emitted sample + n_fft/2) % hop`: the periodic table's phase at index 0.
    pub wss_phase0: u32,
    /// Frames of the time-median (harmonic) buffer: the output frames, and for the production
    /// stems the pitch lines' context each side.
    pub harm_frames: u32,
    /// Held index of harmonic frame 0.
    pub harm_held: u32,
    /// Harmonic index of output frame 0.
    pub harm_offset: u32,
    /// Hz per bin (production stems).
    pub bin_hz: f32,
    /// `2^(comb cents / 1200) − 1`: a comb bump's σ relative to its partial's frequency.
    pub comb_ratio: f32,
    /// Partials of the bass line given to the bass stem.
    pub bass_partials: u32,
    /// Partials of the melody given to the melody stem.
    pub melody_partials: u32,
    /// The inverted stems' kinds, 4 bits each, first stem lowest ([`stem_kind`]).
    pub stem_kinds: u32,
    /// Bins of the channel-summed harmonic rows in the line input (the bass line's reach).
    pub line_bins: u32,
    /// The window spread of a comb bump, Hz (`COMB_LOBE_BINS · bin_hz`).
    pub comb_lobe_hz: f32,
    /// Where the bass comb's partials fade out, Hz (`production::comb_fade`).
    pub bass_comb_fade_hz: f32,
    /// Steady gate (`production::SteadyGrid`): rows of the percussive estimate at grid points
    /// (`lo .. hi`).
    pub points_frames: u32,
    /// Held index of the frame of grid point `lo`.
    pub points_held: u32,
    /// Rows of the steady estimate (grid points `first ..`).
    pub steady_rows: u32,
    /// `first − lo`: the point row of steady row 0.
    pub steady_offset: u32,
    /// `n_points − lo` (at most `MAX_FRAMES_REL`): the grid's end, for the reflection.
    pub n_points_rel: u32,
    /// `(t0 + STEADY_STEP/2) mod STEADY_STEP` for output frame 0's absolute frame `t0`.
    pub steady_phase: u32,
    /// `(t0 + STEADY_STEP/2) div STEADY_STEP − first`: output frame j reads steady row
    /// `min((steady_phase + j) div STEADY_STEP + steady_base, steady_rows − 1)`.
    pub steady_base: u32,
    /// Length of the steady estimate in grid points; 0: no steady gate.
    pub steady_kernel: u32,
    /// The steady gate's margin (`stages::mask::steady_gate`); 0: no gate.
    pub steady_margin: f32,
    /// The bass envelope model's growth per partial (`production::BASS_ENVELOPE_GROWTH`).
    pub comb_growth: f32,
    /// The bass envelope model's power-law bound (`production::BASS_POWER_LAW_GROWTH`).
    pub comb_plaw: f32,
    /// Frames each side of a frame in its tonal stability; 0: no tonal shift.
    pub tonal_window: u32,
    /// The tonal shift's threshold θ (`production::tonal_weight`).
    pub tonal_threshold: f32,
    /// Bins whose percussive estimate follows a drum's decay (`production::drum_tail`); 0: off.
    pub tail_bins: u32,
    /// Frames back the drum tail reads.
    pub tail_frames: u32,
    /// The drum tail's decay factor per frame.
    pub tail_rho: f32,
    /// Frames per segment of the spatial filter (`crate::stages::spatial`); 0: off (also for
    /// anything but two channels).
    pub spatial_segment: u32,
    /// Output frame 0's signal frame modulo `spatial_segment`: output frame j lies in the
    /// block's segment `(spatial_phase + j) / spatial_segment`; segment 0 is carried over from
    /// the previous block (uploaded) when the phase is not 0.
    pub spatial_phase: u32,
    /// Bins the spatial filter acts on (from bin 0); the covariances' row length.
    pub spatial_bins: u32,
    /// Frames apart of the frames a segment's sums take (`stages::spatial::stats_stride`).
    pub spatial_stride: u32,
    /// The drums take the harmonic share below `drums_below · f0` of the bass line's f0 where the
    /// comb does not hold it (`production::drums_below_bins`); 0: off.
    pub drums_below: f32,
    /// The window spread of the melody comb's bumps, Hz (`MELODY_LOBE_BINS · bin_hz`).
    pub melody_lobe_hz: f32,
    /// The melody comb's least σ, Hz (`MELODY_MIN_SIGMA_BINS · bin_hz`).
    pub melody_min_sigma_hz: f32,
    /// Frames between the time median's taps (`HpssParams::harmonic_tap`; 0 reads as 1).
    pub harmonic_tap: u32,
    /// The harmonic margin on the bins `mid_lo .. mid_hi` (`ProductionParams::mid_margin`).
    pub mid_margin: f32,
    /// First bin of the mid-band margin.
    pub mid_lo: u32,
    /// End (exclusive) of the mid-band margin's bins; `mid_lo == mid_hi`: none.
    pub mid_hi: u32,
    /// The note sustain's ratio (`production::sustain_weight`).
    pub sustain_ratio: f32,
    /// First frame ahead the note sustain reads.
    pub sustain_from: u32,
    /// Last frame ahead the note sustain reads; 0: no note sustain.
    pub sustain_to: u32,
    /// First bin of the note sustain.
    pub sustain_lo: u32,
    /// End (exclusive) of the note sustain's bins.
    pub sustain_hi: u32,
    /// Frames per segment of the harmony hold (`crate::stages::hold`); 0: off. Its grid points
    /// are the signal frames that are multiples of `hold_stride`.
    pub hold_segment: u32,
    /// Output frame 0's signal frame modulo `hold_segment`: output frame j lies in the block's
    /// segment `(hold_phase + j) / hold_segment`; when the phase is not 0 the floors of segment
    /// 0's points (those the rebuilt frames read) are carried over from the previous block.
    pub hold_phase: u32,
    /// Frames between the hold's grid points.
    pub hold_stride: u32,
    /// Grid points each side of a point in its floor's mean.
    pub hold_radius: u32,
    /// Bins the hold acts on (from bin 0); the points' and floors' row length.
    pub hold_bins: u32,
    /// Padding to a multiple of 16 bytes (a uniform's size).
    pub _pad0: [u32; 2],
}

/// One pass of the global-memory Stockham FFT (WGSL `PassParams`). Passes are stored
/// [`PASS_STRIDE`] bytes apart in one uniform buffer and bound at their offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PassParams {
    /// Length of the sub-transforms this pass combines (1, 2, 8, ... or 1, 4, 16, ...).
    pub span: u32,
    /// 2 or 4.
    pub radix: u32,
    /// 1 for the inverse transform (conjugate twiddles).
    pub inverse: u32,
    /// 0: rows are the held frames (forward); 1: rows are out_frames × inverted_stems (inverse).
    pub rows_mode: u32,
}

/// Byte distance between passes in the pass uniform buffer: a multiple of every device's
/// `min_uniform_buffer_offset_alignment` (at most 256 by the WebGPU spec).
pub const PASS_STRIDE: u64 = 256;

/// The Stockham passes of an `m`-point complex FFT: one radix-2 pass first when log2 m is odd,
/// then radix-4 passes.
pub fn stockham_passes(m: usize, inverse: bool) -> Vec<PassParams> {
    assert!(m.is_power_of_two() && m >= 2, "FFT size {m}");
    let mut passes = Vec::new();
    let mut span = 1usize;
    let rows_mode = inverse as u32;
    if m.trailing_zeros() % 2 == 1 {
        passes.push(PassParams {
            span: 1,
            radix: 2,
            inverse: inverse as u32,
            rows_mode,
        });
        span = 2;
    }
    while span < m {
        passes.push(PassParams {
            span: span as u32,
            radix: 4,
            inverse: inverse as u32,
            rows_mode,
        });
        span *= 4;
    }
    passes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};
    use wgpu::naga;

    /// Offsets and size of a WGSL struct, as naga lays it out.
    fn wgsl_layout(source: &str, name: &str) -> (Vec<(String, u32)>, u32) {
        let module = naga::front::wgsl::parse_str(source).expect("common.wgsl parses");
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        for (handle, ty) in module.types.iter() {
            if ty.name.as_deref() == Some(name) {
                if let naga::TypeInner::Struct { members, span } = &ty.inner {
                    assert_eq!(*span, layouter[handle].size);
                    let fields = members
                        .iter()
                        .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                        .collect();
                    return (fields, *span);
                }
            }
        }
        panic!("struct {name} not found in common.wgsl");
    }

    #[test]
    fn params_match_the_wgsl_layout() {
        let source = crate::gpu::pipelines::shader_prelude(2048) + crate::gpu::pipelines::COMMON;
        let (fields, size) = wgsl_layout(&source, "Params");
        assert_eq!(size as usize, size_of::<GpuParams>(), "Params size");
        assert_eq!(size % 16, 0, "uniform size is a multiple of 16");
        let rust: Vec<(&str, usize)> = vec![
            ("n_fft", offset_of!(GpuParams, n_fft)),
            ("hop_length", offset_of!(GpuParams, hop_length)),
            ("bins", offset_of!(GpuParams, bins)),
            ("channels", offset_of!(GpuParams, channels)),
            ("held_frames", offset_of!(GpuParams, held_frames)),
            ("out_frames", offset_of!(GpuParams, out_frames)),
            ("out_offset", offset_of!(GpuParams, out_offset)),
            ("n_frames_rel", offset_of!(GpuParams, n_frames_rel)),
            ("pcm_len", offset_of!(GpuParams, pcm_len)),
            ("frame0_sample", offset_of!(GpuParams, frame0_sample)),
            ("harmonic_kernel", offset_of!(GpuParams, harmonic_kernel)),
            (
                "percussive_kernel",
                offset_of!(GpuParams, percussive_kernel),
            ),
            ("power", offset_of!(GpuParams, power)),
            ("margin_harmonic", offset_of!(GpuParams, margin_harmonic)),
            (
                "margin_percussive",
                offset_of!(GpuParams, margin_percussive),
            ),
            ("mask_mode", offset_of!(GpuParams, mask_mode)),
            ("split_zeros", offset_of!(GpuParams, split_zeros)),
            ("inverted_stems", offset_of!(GpuParams, inverted_stems)),
            ("n_stems", offset_of!(GpuParams, n_stems)),
            ("emit_count", offset_of!(GpuParams, emit_count)),
            ("emit_pos0", offset_of!(GpuParams, emit_pos0)),
            ("emit_sample", offset_of!(GpuParams, emit_sample)),
            ("oa_frames", offset_of!(GpuParams, oa_frames)),
            ("interior_lo", offset_of!(GpuParams, interior_lo)),
            ("interior_hi", offset_of!(GpuParams, interior_hi)),
            ("wss_phase0", offset_of!(GpuParams, wss_phase0)),
            ("harm_frames", offset_of!(GpuParams, harm_frames)),
            ("harm_held", offset_of!(GpuParams, harm_held)),
            ("harm_offset", offset_of!(GpuParams, harm_offset)),
            ("bin_hz", offset_of!(GpuParams, bin_hz)),
            ("comb_ratio", offset_of!(GpuParams, comb_ratio)),
            ("bass_partials", offset_of!(GpuParams, bass_partials)),
            ("melody_partials", offset_of!(GpuParams, melody_partials)),
            ("comb_lobe_hz", offset_of!(GpuParams, comb_lobe_hz)),
            (
                "bass_comb_fade_hz",
                offset_of!(GpuParams, bass_comb_fade_hz),
            ),
            ("stem_kinds", offset_of!(GpuParams, stem_kinds)),
            ("line_bins", offset_of!(GpuParams, line_bins)),
            ("points_frames", offset_of!(GpuParams, points_frames)),
            ("points_held", offset_of!(GpuParams, points_held)),
            ("steady_rows", offset_of!(GpuParams, steady_rows)),
            ("steady_offset", offset_of!(GpuParams, steady_offset)),
            ("n_points_rel", offset_of!(GpuParams, n_points_rel)),
            ("steady_phase", offset_of!(GpuParams, steady_phase)),
            ("steady_base", offset_of!(GpuParams, steady_base)),
            ("steady_kernel", offset_of!(GpuParams, steady_kernel)),
            ("steady_margin", offset_of!(GpuParams, steady_margin)),
            ("comb_growth", offset_of!(GpuParams, comb_growth)),
            ("comb_plaw", offset_of!(GpuParams, comb_plaw)),
            ("tonal_window", offset_of!(GpuParams, tonal_window)),
            ("tonal_threshold", offset_of!(GpuParams, tonal_threshold)),
            ("tail_bins", offset_of!(GpuParams, tail_bins)),
            ("tail_frames", offset_of!(GpuParams, tail_frames)),
            ("tail_rho", offset_of!(GpuParams, tail_rho)),
            ("spatial_segment", offset_of!(GpuParams, spatial_segment)),
            ("spatial_phase", offset_of!(GpuParams, spatial_phase)),
            ("spatial_bins", offset_of!(GpuParams, spatial_bins)),
            ("spatial_stride", offset_of!(GpuParams, spatial_stride)),
            ("drums_below", offset_of!(GpuParams, drums_below)),
            ("melody_lobe_hz", offset_of!(GpuParams, melody_lobe_hz)),
            (
                "melody_min_sigma_hz",
                offset_of!(GpuParams, melody_min_sigma_hz),
            ),
            ("harmonic_tap", offset_of!(GpuParams, harmonic_tap)),
            ("mid_margin", offset_of!(GpuParams, mid_margin)),
            ("mid_lo", offset_of!(GpuParams, mid_lo)),
            ("mid_hi", offset_of!(GpuParams, mid_hi)),
            ("sustain_ratio", offset_of!(GpuParams, sustain_ratio)),
            ("sustain_from", offset_of!(GpuParams, sustain_from)),
            ("sustain_to", offset_of!(GpuParams, sustain_to)),
            ("sustain_lo", offset_of!(GpuParams, sustain_lo)),
            ("sustain_hi", offset_of!(GpuParams, sustain_hi)),
            ("hold_segment", offset_of!(GpuParams, hold_segment)),
            ("hold_phase", offset_of!(GpuParams, hold_phase)),
            ("hold_stride", offset_of!(GpuParams, hold_stride)),
            ("hold_radius", offset_of!(GpuParams, hold_radius)),
            ("hold_bins", offset_of!(GpuParams, hold_bins)),
        ];
        // The WGSL struct ends with padding members `_pad0..`; every named field must agree.
        for (name, offset) in &rust {
            let wgsl = fields
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("field {name} missing from WGSL Params"));
            assert_eq!(wgsl.1 as usize, *offset, "offset of {name}");
        }
        let named_wgsl = fields.iter().filter(|(n, _)| !n.starts_with('_')).count();
        assert_eq!(named_wgsl, rust.len(), "WGSL Params has fields Rust lacks");

        let (fields, size) = wgsl_layout(&source, "PassParams");
        assert_eq!(size as usize, size_of::<PassParams>());
        let rust = [
            ("span", offset_of!(PassParams, span)),
            ("radix", offset_of!(PassParams, radix)),
            ("inverse", offset_of!(PassParams, inverse)),
            ("rows_mode", offset_of!(PassParams, rows_mode)),
        ];
        assert_eq!(fields.len(), rust.len());
        for ((wn, wo), (rn, ro)) in fields.iter().zip(rust) {
            assert_eq!((wn.as_str(), *wo as usize), (rn, ro));
        }
        assert!(size as u64 <= PASS_STRIDE);
    }

    #[test]
    fn stockham_pass_plan() {
        let spans = |m| {
            stockham_passes(m, false)
                .iter()
                .map(|p| (p.span, p.radix))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(128), vec![(1, 2), (2, 4), (8, 4), (32, 4)]);
        assert_eq!(spans(256), vec![(1, 4), (4, 4), (16, 4), (64, 4)]);
        assert!(stockham_passes(8, true).iter().all(|p| p.inverse == 1));
    }

    #[test]
    fn mask_modes_follow_the_cpu_fast_paths() {
        assert_eq!(mask_mode::for_power(2.0), mask_mode::SQUARE);
        assert_eq!(mask_mode::for_power(1.0), mask_mode::LINEAR);
        assert_eq!(mask_mode::for_power(f32::INFINITY), mask_mode::HARD);
        assert_eq!(mask_mode::for_power(4.0), mask_mode::FOURTH);
        assert_eq!(mask_mode::for_power(1.5), mask_mode::GENERAL);
    }
}
