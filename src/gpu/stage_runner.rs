//! Each GPU stage on its own, with the CPU twin's calling convention: for tests that compare a
//! shader with `crate::stages::<stage>` on the same inputs, and for benchmarks. It uses the
//! engine's own buffers, bind groups and dispatches ([`Resources`]); before every run the
//! stage's output buffer is filled with NaN so an element the shader fails to write shows up.
//! One queue submission per call; inputs are copied in and outputs copied out each time.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::params::{mask_mode, GpuParams};
use crate::gpu::pipelines::FftPath;
use crate::gpu::resources::{Buf, Resources, Step};
use crate::params::HpssParams;
use crate::stages::overlap_add::WindowSumSquare;
use realfft::num_complex::Complex32;
use std::sync::{Arc, Mutex};

/// Runs single stages for one FFT size on one FFT path.
pub struct StageRunner {
    ctx: Arc<GpuContext>,
    n_fft: usize,
    resources: Mutex<Resources>,
}

impl StageRunner {
    /// Builds (or reuses) the pipelines for `n_fft` on `path`.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the pipelines cannot be built (e.g. the workgroup FFT at a size the
    /// device's workgroup memory cannot hold).
    pub fn new(ctx: Arc<GpuContext>, n_fft: usize, path: FftPath) -> Result<Self> {
        crate::params::StftParams {
            n_fft,
            hop_length: n_fft / 4,
        }
        .validate()?;
        let pipelines = ctx.pipelines(n_fft, path)?;
        let resources = Resources::new(ctx.clone(), pipelines, false);
        Ok(StageRunner {
            ctx,
            n_fft,
            resources: Mutex::new(resources),
        })
    }

    /// The FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    fn base_params(&self) -> GpuParams {
        GpuParams {
            n_fft: self.n_fft as u32,
            hop_length: (self.n_fft / 4) as u32,
            bins: (self.n_fft / 2 + 1) as u32,
            channels: 1,
            n_stems: 2,
            inverted_stems: 1,
            harmonic_kernel: 1,
            percussive_kernel: 1,
            ..Default::default()
        }
    }

    /// Parameters of the mask stages for `rows` frames (held = output = harmonic frames) and
    /// `inverted` inverted stems, plus the remainder.
    fn mask_params(&self, rows: usize, hpss: &HpssParams, inverted: u32) -> GpuParams {
        GpuParams {
            held_frames: rows as u32,
            out_frames: rows as u32,
            harm_frames: rows as u32,
            power: hpss.power,
            margin_harmonic: hpss.margin_harmonic,
            margin_percussive: hpss.margin_percussive,
            mask_mode: mask_mode::for_power(hpss.power),
            split_zeros: hpss.split_zeros() as u32,
            inverted_stems: inverted,
            n_stems: inverted + 1,
            ..self.base_params()
        }
    }

    /// Parameters of a production block of `frames` frames (held = output = harmonic frames) of
    /// `channels` channels from the five masks, inverting `stems` (plus the remainder).
    fn stems_params(
        &self,
        channels: usize,
        frames: usize,
        stems: &[crate::stems::Stem],
    ) -> GpuParams {
        GpuParams {
            channels: channels as u32,
            held_frames: frames as u32,
            out_frames: frames as u32,
            harm_frames: frames as u32,
            inverted_stems: stems.len() as u32,
            n_stems: stems.len() as u32 + 1,
            stem_kinds: crate::gpu::params::stem_kind::pack(stems),
            ..self.base_params()
        }
    }

    /// Runs `step` with `params`: `output` is poisoned, `inputs` are written, then `out_len`
    /// f32 values of `output` are read back.
    fn run(
        &self,
        step: Step,
        params: GpuParams,
        inputs: &[(Buf, &[u8])],
        output: Buf,
        out_len: usize,
        wss_edge_len: usize,
    ) -> Result<Vec<f32>> {
        self.run_regions(step, params, inputs, &[(output, out_len)], wss_edge_len)
    }

    /// [`StageRunner::run`] with several outputs (each poisoned before the inputs are
    /// written, so an input may also be an output), read back one after the other.
    fn run_regions(
        &self,
        step: Step,
        params: GpuParams,
        inputs: &[(Buf, &[u8])],
        outputs: &[(Buf, usize)],
        wss_edge_len: usize,
    ) -> Result<Vec<f32>> {
        let mut r = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        let out_len: usize = outputs.iter().map(|&(_, n)| n).sum();
        let bytes = (out_len * 4) as u64;
        r.ensure(&params, wss_edge_len, bytes)?;
        r.write(Buf::Params, bytemuck::bytes_of(&params));
        for &(buf, _) in outputs {
            r.poison(buf);
        }
        for (buf, data) in inputs {
            r.write(*buf, data);
        }
        let mut encoder =
            self.ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(step.name()),
                });
        r.record(&mut encoder, &params, &[step]);
        let regions: Vec<(Buf, u64, u64)> = outputs
            .iter()
            .map(|&(buf, n)| (buf, 0, (n * 4) as u64))
            .collect();
        r.record_readback(&mut encoder, &regions, &[step]);
        self.ctx.queue().submit([encoder.finish()]);
        let mut out = vec![0.0f32; out_len];
        r.read_staging(bytes, step.name(), &[step], |b| {
            out.copy_from_slice(bytemuck::cast_slice(b))
        })?;
        Ok(out)
    }

    /// Stage `frame`: frames `first .. first + count` of each channel (all the same length,
    /// holding the signal from global sample `offset` on), like `frame_windowed` with the periodic
    /// Hann window. Returns `[channel][frame][n_fft]`.
    pub fn frame(
        &self,
        channels: &[&[f32]],
        offset: i64,
        first: usize,
        count: usize,
        hop_length: usize,
    ) -> Result<Vec<f32>> {
        let len = channels.first().map_or(0, |c| c.len());
        if channels.iter().any(|c| c.len() != len) {
            return Err(Error::param("channels", "expected equal lengths"));
        }
        let pcm: Vec<f32> = channels.iter().flat_map(|c| c.iter().copied()).collect();
        let p = GpuParams {
            hop_length: hop_length as u32,
            channels: channels.len() as u32,
            held_frames: count as u32,
            pcm_len: len as u32,
            frame0_sample: ((first * hop_length) as i64 - (self.n_fft / 2) as i64 - offset) as i32,
            ..self.base_params()
        };
        self.run(
            Step::Frame,
            p,
            &[(Buf::Pcm, bytemuck::cast_slice(&pcm))],
            Buf::Frames,
            channels.len() * count * self.n_fft,
            0,
        )
    }

    /// Stage `fft`: the real FFT of each n_fft-long row of `frames`; `[row][bins]`.
    pub fn fft(&self, frames: &[f32]) -> Result<Vec<Complex32>> {
        let rows = frames.len() / self.n_fft;
        let p = GpuParams {
            held_frames: rows as u32,
            ..self.base_params()
        };
        let bins = p.bins as usize;
        let out = self.run(
            Step::Fft,
            p,
            &[(Buf::Frames, bytemuck::cast_slice(frames))],
            Buf::Spectra,
            rows * bins * 2,
            0,
        )?;
        Ok(to_complex(&out))
    }

    /// Stage `magnitude`: |z| of every value (rows of n_fft/2 + 1 bins).
    pub fn magnitude(&self, spectra: &[Complex32]) -> Result<Vec<f32>> {
        let base = self.base_params();
        let rows = spectra.len() / base.bins as usize;
        let p = GpuParams {
            held_frames: rows as u32,
            ..base
        };
        self.run(
            Step::Magnitude,
            p,
            &[(Buf::Spectra, bytemuck::cast_slice(&from_complex(spectra)))],
            Buf::Mag,
            spectra.len(),
            0,
        )
    }

    /// Stage `median` along time, as `crate::stages::median::median_time_tapped` over all
    /// bins: `mag` holds frames `held_offset ..` (rows of n_fft/2 + 1 bins) of an
    /// `n_frames`-frame signal; returns frames `first .. first + n_out` of the median of `k`
    /// taps `tap` frames apart.
    #[allow(clippy::too_many_arguments)]
    pub fn median_time(
        &self,
        mag: &[f32],
        held_offset: usize,
        n_frames: usize,
        first: usize,
        n_out: usize,
        k: usize,
        tap: usize,
    ) -> Result<Vec<f32>> {
        let base = self.base_params();
        let bins = base.bins as usize;
        let p = GpuParams {
            held_frames: (mag.len() / bins) as u32,
            out_frames: n_out as u32,
            out_offset: (first - held_offset) as u32,
            harm_frames: n_out as u32,
            harm_held: (first - held_offset) as u32,
            n_frames_rel: (n_frames - held_offset).min(1 << 29) as u32,
            harmonic_kernel: k as u32,
            harmonic_tap: tap as u32,
            ..base
        };
        self.run(
            Step::MedianTime,
            p,
            &[(Buf::Mag, bytemuck::cast_slice(mag))],
            Buf::Harm,
            n_out * bins,
            0,
        )
    }

    /// Stage `median` along frequency, as `crate::stages::median::median_freq`.
    pub fn median_freq(&self, mag: &[f32], k: usize) -> Result<Vec<f32>> {
        let base = self.base_params();
        let rows = mag.len() / base.bins as usize;
        let p = GpuParams {
            held_frames: rows as u32,
            out_frames: rows as u32,
            percussive_kernel: k as u32,
            ..base
        };
        self.run(
            Step::MedianFreq,
            p,
            &[(Buf::Mag, bytemuck::cast_slice(mag))],
            Buf::Perc,
            mag.len(),
            0,
        )
    }

    /// The steady estimate (`median_freq_points` then `median_steady`), as the CPU separator
    /// takes it: `mag` holds frames `held_offset ..` (rows of n_fft/2 + 1 bins) of an
    /// `n_frames`-frame signal; returns the grid of output frames `t0 .. end` and its rows
    /// (`[row][bins]`), for a percussive kernel `k_perc` and a steady kernel of `k` points.
    #[allow(clippy::too_many_arguments)]
    pub fn steady(
        &self,
        mag: &[f32],
        held_offset: usize,
        n_frames: usize,
        t0: usize,
        end: usize,
        k_perc: usize,
        k: usize,
    ) -> Result<(crate::production::SteadyGrid, Vec<f32>)> {
        use crate::production::{SteadyGrid, STEADY_STEP};
        let base = self.base_params();
        let bins = base.bins as usize;
        let g = SteadyGrid::new(t0, end, n_frames, k);
        let centre = t0 + STEADY_STEP / 2;
        let p = GpuParams {
            held_frames: (mag.len() / bins) as u32,
            percussive_kernel: k_perc as u32,
            points_frames: (g.hi - g.lo) as u32,
            points_held: (STEADY_STEP * g.lo - held_offset) as u32,
            steady_rows: g.rows as u32,
            steady_offset: (g.first - g.lo) as u32,
            n_points_rel: (g.n_points - g.lo).min(1 << 29) as u32,
            steady_phase: (centre % STEADY_STEP) as u32,
            steady_base: (centre / STEADY_STEP - g.first) as u32,
            steady_kernel: k as u32,
            ..base
        };
        let rows = self.run(
            Step::MedianSteady,
            p,
            &[(Buf::Mag, bytemuck::cast_slice(mag))],
            Buf::Steady,
            g.rows * bins,
            0,
        )?;
        Ok((g, rows))
    }

    /// Stage `mask`: masks from `harm` and `perc` applied to `spectra` (all rows of n_fft/2 + 1
    /// bins): `[row][stem][bins]` for the harmonic stem and, with `both`, the percussive one.
    pub fn mask(
        &self,
        spectra: &[Complex32],
        harm: &[f32],
        perc: &[f32],
        hpss: &HpssParams,
        both: bool,
    ) -> Result<Vec<Complex32>> {
        let base = self.base_params();
        let rows = spectra.len() / base.bins as usize;
        let inverted = if both { 2 } else { 1 };
        let p = self.mask_params(rows, hpss, inverted);
        let out = self.run(
            Step::Mask,
            p,
            &[
                (Buf::Spectra, bytemuck::cast_slice(&from_complex(spectra))),
                (Buf::Harm, bytemuck::cast_slice(harm)),
                (Buf::Perc, bytemuck::cast_slice(perc)),
            ],
            Buf::StemSpectra,
            spectra.len() * inverted as usize * 2,
            0,
        )?;
        Ok(to_complex(&out))
    }

    /// Stage `line_input`, as `crate::production::line_input`: `harm[ch]` and `mag[ch]` hold the
    /// same frames (rows of n_fft/2 + 1 bins) of each channel. Returns per frame the channel sum
    /// of the harmonic rows' first `line_bins` bins, then of the magnitude rows.
    pub fn line_input(
        &self,
        harm: &[&[f32]],
        mag: &[&[f32]],
        line_bins: usize,
    ) -> Result<Vec<f32>> {
        let base = self.base_params();
        let bins = base.bins as usize;
        let rows = harm.first().map_or(0, |h| h.len() / bins);
        if harm.len() != mag.len()
            || harm.iter().chain(mag).any(|c| c.len() != rows * bins)
            || line_bins > bins
        {
            return Err(Error::param("line_input", "expected equal shapes"));
        }
        let flat = |v: &[&[f32]]| {
            v.iter()
                .flat_map(|c| c.iter().copied())
                .collect::<Vec<f32>>()
        };
        let p = GpuParams {
            channels: harm.len() as u32,
            held_frames: rows as u32,
            out_frames: rows as u32,
            harm_frames: rows as u32,
            line_bins: line_bins as u32,
            ..base
        };
        self.run(
            Step::LineInput,
            p,
            &[
                (Buf::Harm, bytemuck::cast_slice(&flat(harm))),
                (Buf::Mag, bytemuck::cast_slice(&flat(mag))),
            ],
            Buf::LineIn,
            rows * (line_bins + bins),
            0,
        )
    }

    /// Stage `production`, as `crate::production::production_masks` with `add_comb` then
    /// `apply_mask` per stem, for one channel: `spectra`, `harm`, `perc` hold the same frames
    /// (rows of n_fft/2 + 1 bins; the first is frame `t0` of its signal), `lines` the (bass,
    /// melody) f0 of each frame, `low` the low-register weight per bin; the percussive mask takes
    /// the steady gate of `production.steady_margin` (`crate::stages::mask::steady_gate`), frame
    /// `t0 + j` reading row `SteadyGrid::row` of `steady` (the grid's rows from frame `t0`'s
    /// point); with the tonal shift on (`production.tonal_threshold` < 1) the harmonic mask
    /// takes it, the tonal ratios read from `mag` and `harm` (the rows are the whole signal).
    /// Returns `[row][stem][bins]` for `stems`.
    #[allow(clippy::too_many_arguments)]
    pub fn production(
        &self,
        spectra: &[Complex32],
        mag: &[f32],
        harm: &[f32],
        perc: &[f32],
        steady: &[f32],
        t0: usize,
        lines: &[(f32, f32)],
        profiles: &[crate::production::BassProfile],
        low: &[f32],
        hpss: &HpssParams,
        production: &crate::production::ProductionParams,
        stems: &[crate::stems::Stem],
    ) -> Result<Vec<Complex32>> {
        let base = self.base_params();
        let rows = spectra.len() / base.bins as usize;
        let inverted = stems.len() as u32;
        let p = GpuParams {
            bin_hz: production.sample_rate as f32 / self.n_fft as f32,
            comb_ratio: crate::production::comb_ratio(production.comb_cents),
            bass_partials: production.bass_partials as u32,
            melody_partials: production.melody_partials as u32,
            comb_lobe_hz: crate::production::COMB_LOBE_BINS * production.sample_rate as f32
                / self.n_fft as f32,
            bass_comb_fade_hz: production.bass_comb_fade_hz,
            drums_below: production.drums_below_ratio,
            mid_margin: production.mid_margin,
            mid_lo: production.mid_bins.0 as u32,
            mid_hi: production.mid_bins.1 as u32,
            melody_lobe_hz: crate::production::MELODY_LOBE_BINS * production.sample_rate as f32
                / self.n_fft as f32,
            melody_min_sigma_hz: crate::production::MELODY_MIN_SIGMA_BINS
                * production.sample_rate as f32
                / self.n_fft as f32,
            comb_growth: crate::production::BASS_ENVELOPE_GROWTH,
            comb_plaw: crate::production::BASS_POWER_LAW_GROWTH,
            tonal_window: production.tonal_reach() as u32,
            tonal_threshold: production.tonal_threshold,
            tail_bins: production.tail_bins as u32,
            tail_frames: production.tail_frames as u32,
            tail_rho: production.tail_rho,
            stem_kinds: crate::gpu::params::stem_kind::pack(stems),
            steady_kernel: 1,
            steady_margin: production.steady_margin,
            steady_rows: (steady.len() / self.base_params().bins as usize) as u32,
            steady_phase: ((t0 + crate::production::STEADY_STEP / 2)
                % crate::production::STEADY_STEP) as u32,
            steady_base: 0,
            ..self.mask_params(rows, hpss, inverted)
        };
        let lines = crate::gpu::engine::lines_buffer(lines, profiles);
        let out = self.run(
            Step::Production,
            p,
            &[
                (Buf::Spectra, bytemuck::cast_slice(&from_complex(spectra))),
                (Buf::Mag, bytemuck::cast_slice(mag)),
                (Buf::Harm, bytemuck::cast_slice(harm)),
                (Buf::Perc, bytemuck::cast_slice(perc)),
                (Buf::Lines, bytemuck::cast_slice(&lines)),
                (Buf::Low, bytemuck::cast_slice(low)),
                (Buf::Steady, bytemuck::cast_slice(steady)),
            ],
            Buf::StemSpectra,
            spectra.len() * inverted as usize * 2,
            0,
        )?;
        Ok(to_complex(&out))
    }

    /// Stage `spatial` for a stereo block of `frames` frames: `spectra` `[channel][frame][bins]`,
    /// `masks` `[channel][frame][5][bins]` (the production masks in `PRODUCTION` order), frame 0
    /// at position `phase` of a segment of `segment` frames, the filter acting on bins `0 .. k`;
    /// when `phase` > 0 segment 0 is `carried` (`[5][4][k]`, as
    /// `crate::stages::spatial::normalise` leaves it). Returns the block's covariances
    /// `[segment][5][4][k]` (the carried one as given) and the spectra of
    /// `stems` (`[channel][frame][stem][bins]`), as `crate::stages::spatial::apply`.
    #[allow(clippy::too_many_arguments)]
    pub fn spatial(
        &self,
        spectra: &[Complex32],
        masks: &[f32],
        segment: usize,
        phase: usize,
        k: usize,
        carried: &[f32],
        stems: &[crate::stems::Stem],
    ) -> Result<(Vec<f32>, Vec<Complex32>)> {
        let base = self.base_params();
        let bins = base.bins as usize;
        let frames = spectra.len() / (2 * bins);
        let p = GpuParams {
            spatial_segment: segment as u32,
            spatial_phase: phase as u32,
            spatial_bins: k as u32,
            spatial_stride: crate::stages::spatial::stats_stride(
                segment,
                base.n_fft as usize,
                base.hop_length as usize,
            ) as u32,
            ..self.stems_params(2, frames, stems)
        };
        let cov_len = crate::gpu::pipelines::spatial_segments(&p) as usize * 20 * k;
        let spectra_len = frames * 2 * stems.len() * bins * 2;
        let mut out = self.run_regions(
            Step::Spatial,
            p,
            &[
                (Buf::Spectra, bytemuck::cast_slice(&from_complex(spectra))),
                (Buf::StemMasks, bytemuck::cast_slice(masks)),
                (Buf::SpatialCov, bytemuck::cast_slice(carried)),
            ],
            &[(Buf::SpatialCov, cov_len), (Buf::StemSpectra, spectra_len)],
            0,
        )?;
        let stem_spectra = to_complex(&out[cov_len..]);
        out.truncate(cov_len);
        Ok((out, stem_spectra))
    }

    /// Stage `hold` for a block of `frames` frames of `channels` channels without the spatial
    /// filter: `spectra` and `mag` `[channel][frame][bins]`, `masks` `[channel][frame][5][bins]`
    /// (the unheld production masks, `PRODUCTION` order), `bass_f0` the bass line per frame (the
    /// hold acts from `drums_below_bins(f0, drums_below)` up, to `hold_bins`). Frame 0 lies at
    /// position `phase` of a segment of `segment` frames, the grid points every `stride` frames
    /// of the signal, floors over ±`radius` points; when `phase` > 0, `carried` holds the floors
    /// of the points before the first segment boundary (`[point][channel][hold_bins]`). Returns
    /// the block's floors (`[point][channel][hold_bins]`, the carried ones as given) and the
    /// spectra of `stems` (`[channel][frame][stem][bins]`) from the held masks.
    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        &self,
        channels: usize,
        (spectra, mag, masks): (&[Complex32], &[f32], &[f32]),
        bass_f0: &[f32],
        drums_below: f32,
        (segment, phase, stride, radius, hold_bins): (usize, usize, usize, usize, usize),
        carried: &[f32],
        stems: &[crate::stems::Stem],
    ) -> Result<(Vec<f32>, Vec<Complex32>)> {
        let base = self.base_params();
        let bins = base.bins as usize;
        let frames = bass_f0.len();
        let p = GpuParams {
            bin_hz: 48000.0 / self.n_fft as f32,
            drums_below,
            hold_segment: segment as u32,
            hold_phase: phase as u32,
            hold_stride: stride as u32,
            hold_radius: radius as u32,
            hold_bins: hold_bins as u32,
            ..self.stems_params(channels, frames, stems)
        };
        let lines: Vec<f32> = bass_f0.iter().flat_map(|&f| [f, 0.0]).collect();
        let floors_len =
            crate::gpu::pipelines::hold_point_count(&p) as usize * channels * hold_bins;
        let spectra_len = channels * frames * stems.len() * bins * 2;
        let mut out = self.run_regions(
            Step::Hold,
            p,
            &[
                (Buf::Spectra, bytemuck::cast_slice(&from_complex(spectra))),
                (Buf::Mag, bytemuck::cast_slice(mag)),
                (Buf::StemMasks, bytemuck::cast_slice(masks)),
                (Buf::Lines, bytemuck::cast_slice(&lines)),
                (Buf::HoldFloors, bytemuck::cast_slice(carried)),
            ],
            &[
                (Buf::HoldFloors, floors_len),
                (Buf::StemSpectra, spectra_len),
            ],
            0,
        )?;
        let stem_spectra = to_complex(&out[floors_len..]);
        out.truncate(floors_len);
        Ok((out, stem_spectra))
    }

    /// Stage `ifft`: the inverse of each spectrum row, scaled by 1/n_fft and windowed with the
    /// periodic Hann window, as `crate::stages::ifft::InverseFft::process`; `[row][n_fft]`.
    pub fn ifft(&self, spectra: &[Complex32]) -> Result<Vec<f32>> {
        let base = self.base_params();
        let rows = spectra.len() / base.bins as usize;
        let p = GpuParams {
            out_frames: rows as u32,
            inverted_stems: 1,
            ..base
        };
        self.run(
            Step::Ifft,
            p,
            &[(
                Buf::StemSpectra,
                bytemuck::cast_slice(&from_complex(spectra)),
            )],
            Buf::StemFrames,
            rows * self.n_fft,
            0,
        )
    }

    /// Stage `overlap_add` with the remainder stem: `frames` holds inverse frames
    /// `held_first ..` laid out `[frame][stem][n_fft]` for `inverted` stems; `x` holds the
    /// signal from sample 0 (for the remainder). Returns `[stem][sample]` for samples
    /// `out_start .. out_start + count`, the last stem being x − Σ the others.
    #[allow(clippy::too_many_arguments)]
    pub fn overlap_add(
        &self,
        frames: &[f32],
        inverted: usize,
        held_first: usize,
        hop_length: usize,
        n_frames: usize,
        x: &[f32],
        out_start: u64,
        count: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let n_fft = self.n_fft;
        let held = frames.len() / (inverted * n_fft);
        let window = crate::stages::frame::hann_periodic(n_fft);
        let wss = WindowSumSquare::new(&window, hop_length);
        let plan = NormPlan::new(&wss, n_fft, hop_length, n_frames, out_start, count);
        let pos0 = out_start + (n_fft / 2) as u64;
        let p = GpuParams {
            hop_length: hop_length as u32,
            out_frames: held as u32,
            inverted_stems: inverted as u32,
            n_stems: inverted as u32 + 1,
            pcm_len: x.len() as u32,
            emit_count: count as u32,
            emit_pos0: (pos0 - (held_first * hop_length) as u64) as u32,
            emit_sample: out_start as i32,
            oa_frames: (n_frames - held_first).min(held) as u32,
            interior_lo: plan.interior.start,
            interior_hi: plan.interior.end,
            wss_phase0: (pos0 % hop_length as u64) as u32,
            ..self.base_params()
        };
        let out = self.run(
            Step::OverlapAdd,
            p,
            &[
                (Buf::StemFrames, bytemuck::cast_slice(frames)),
                (Buf::Pcm, bytemuck::cast_slice(x)),
                (
                    Buf::WssPeriodic,
                    bytemuck::cast_slice(&periodic_wss(&wss, n_fft, hop_length)),
                ),
                (Buf::WssEdge, bytemuck::cast_slice(&plan.edge)),
            ],
            Buf::Out,
            (inverted + 1) * count,
            plan.edge.len(),
        )?;
        Ok(out.chunks(count.max(1)).map(<[f32]>::to_vec).collect())
    }
}

fn from_complex(v: &[Complex32]) -> Vec<f32> {
    v.iter().flat_map(|z| [z.re, z.im]).collect()
}

fn to_complex(v: &[f32]) -> Vec<Complex32> {
    v.chunks_exact(2)
        .map(|c| Complex32::new(c[0], c[1]))
        .collect()
}

/// The periodic window sum-square table: entry r is the sum at interior samples whose padded
/// position is r modulo hop (read through `WindowSumSquare::at`, so the values are the CPU's).
pub fn periodic_wss(wss: &WindowSumSquare, n_fft: usize, hop_length: usize) -> Vec<f32> {
    let mut table = vec![0.0f32; hop_length];
    for s in (n_fft / 2) as u64..(n_fft / 2 + hop_length) as u64 {
        let pos = s + (n_fft / 2) as u64;
        table[(pos % hop_length as u64) as usize] = wss.at(s, usize::MAX / 4);
    }
    table
}

/// How emitted samples `out_start .. out_start + count` are normalised: the interior range
/// (relative indices) uses the periodic table, the samples before and after it take their
/// sum-square from `edge` (as `WindowSumSquare::normalise` splits them).
pub struct NormPlan {
    /// Relative indices that use the periodic table.
    pub interior: std::ops::Range<u32>,
    /// Sum-square of the samples before, then after, the interior.
    pub edge: Vec<f32>,
}

impl NormPlan {
    /// The split for one run of emitted samples.
    pub fn new(
        wss: &WindowSumSquare,
        n_fft: usize,
        hop_length: usize,
        n_frames: usize,
        out_start: u64,
        count: usize,
    ) -> Self {
        let n = n_fft as u64;
        let end = out_start + count as u64;
        let interior_lo = (n / 2).saturating_sub(1);
        let interior_hi = (n_frames as u64)
            .saturating_mul(hop_length as u64)
            .saturating_sub(n / 2);
        let lo = interior_lo.clamp(out_start, end);
        let hi = interior_hi.clamp(lo, end);
        let edge = (out_start..lo)
            .chain(hi..end)
            .map(|s| wss.at(s, n_frames))
            .collect();
        NormPlan {
            interior: (lo - out_start) as u32..(hi - out_start) as u32,
            edge,
        }
    }
}
