//! The CPU separation engine: runs the stages of `crate::stages` over one block of STFT frames
//! (see `crate::stream` for how blocks are scheduled), in parallel with rayon. It carries each
//! channel's last inverse frames from block to block for overlap-add, so every output sample
//! equals whole-file processing bit for bit.
//!
//! Data flows one way, with the stage names of `crate::stages` (and of the shaders):
//! frame → fft → magnitude → median (time, frequency) → mask → ifft → overlap_add.

use crate::error::{Error, Result};
use crate::params::{HpssParams, Kernel, StftParams};
use crate::production::{
    add_comb, apply_melody_floors, bass_profile, drum_tail, drums_below_bins, freq_median_at,
    hpss_masks_banded_range, line_candidates, line_input, low_register, min_into, production_masks,
    sustain_shift, tonal_ratio, tonal_shift, tonal_weights, BassProfile, ProductionParams,
    ProductionSpec, SteadyGrid, COMB_LOBE_BINS, MELODY_LOBE_BINS, MELODY_MIN_SIGMA_BINS,
    STEADY_STEP,
};
use crate::stages::fft::ForwardFft;
use crate::stages::frame::{frame_windowed, hann_periodic, SignalView};
use crate::stages::hold;
use crate::stages::ifft::InverseFft;
use crate::stages::magnitude::magnitude;
use crate::stages::mask::{apply_mask, hpss_masks, steady_gate};
use crate::stages::median::{median_freq, median_time, median_time_tapped, MedianScratch};
use crate::stages::overlap_add::{overlap_add, WindowSumSquare};
use crate::stages::pitch::{FrameCandidates, LineTracker};
use crate::stages::spatial::{self, SpatialScratch, COV_ROWS};
use crate::stems::{Stem, StemSet, PRODUCTION};
use crate::stream::{Block, BlockEngine, BlockStream};
use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;

/// Default frames per block: about 12 s at 44.1 kHz with hop 512; ~50 MB of work buffers per block.
pub const DEFAULT_BLOCK_FRAMES: usize = 1024;

/// Everything that defines a separation.
#[derive(Clone, Debug, PartialEq)]
pub struct SeparationParams {
    /// STFT layout.
    pub stft: StftParams,
    /// HPSS settings.
    pub hpss: HpssParams,
    /// Which stems to produce.
    pub stems: StemSet,
    /// Frames per processing block (bounds memory; does not change the result).
    pub block_frames: usize,
    /// Production-stem settings (used by `StemSet::Production`), resolved at the track's rate.
    pub production: ProductionParams,
}

impl SeparationParams {
    /// Frames each side of a frame whose harmonic estimate it reads: the pitch lines' context
    /// and the tonal shift's window (0 when the set needs neither).
    pub fn context_frames(&self) -> usize {
        let lines = if self.stems.needs_lines() {
            self.production
                .bass
                .window
                .max(self.production.melody.window)
        } else {
            0
        };
        lines
            .max(self.tonal().map_or(0, |(w, _)| w))
            .max(self.sustain().map_or(0, |(_, (_, to))| to))
    }

    /// The production stems' note sustain ([`crate::production::sustain_shift`]): (ratio, frames
    /// ahead `from ..= to`), `None` when off or for `hpr`.
    pub fn sustain(&self) -> Option<(f32, (usize, usize))> {
        let p = &self.production;
        (matches!(self.stems, StemSet::Production { .. }) && p.sustain_reach() > 0)
            .then_some((p.sustain_ratio, p.sustain_frames))
    }

    /// The production stems' tonal shift: (window in frames each side, threshold), `None` when
    /// off or when it cannot change the set's stems (hpr; drums and their rest without
    /// [`ProductionParams::drums_below_ratio`], which gives the drums a harmonic share). Any set
    /// with fx or a harmonic stem takes it, so a subset's stems equal the full set's.
    pub fn tonal(&self) -> Option<(usize, f32)> {
        let p = &self.production;
        let moves = match &self.stems {
            StemSet::Production { stems } => stems.iter().any(|s| match s {
                Stem::Fx | Stem::Bass | Stem::Melody | Stem::Harmony => true,
                Stem::Drums => p.drums_below_ratio > 0.0,
                _ => false,
            }),
            StemSet::Hpr { .. } => false,
        };
        (moves && p.tonal_reach() > 0).then_some((p.tonal_window, p.tonal_threshold))
    }

    /// The production stems' steady gate: (steady kernel in frames, margin), `None` when off.
    pub fn steady(&self) -> Option<(usize, f32)> {
        let p = &self.production;
        (matches!(self.stems, StemSet::Production { .. }) && p.steady_margin > 0.0)
            .then_some((p.steady_kernel, p.steady_margin))
    }

    /// The production stems' drum tail: (bins, frames back), `None` when off or for `hpr`.
    pub fn drum_tail(&self) -> Option<(usize, usize)> {
        let p = &self.production;
        (matches!(self.stems, StemSet::Production { .. }) && p.tail_bins > 0)
            .then_some((p.tail_bins, p.tail_frames))
    }

    /// The production stems' spatial filter: frames per segment, `None` when off or for `hpr`.
    /// It acts on stereo signals only.
    pub fn spatial(&self) -> Option<usize> {
        let f = self.production.spatial_frames;
        (matches!(self.stems, StemSet::Production { .. }) && f > 0).then_some(f)
    }

    /// The production stems' bass profile: frames per segment, `None` when off or when the set
    /// tracks no lines.
    pub fn profile(&self) -> Option<usize> {
        let f = self.production.profile_frames;
        (self.stems.needs_lines() && f > 0).then_some(f)
    }

    /// The production stems' melody floor: frames per segment, `None` when off or when the set
    /// tracks no lines.
    pub fn melody_floor(&self) -> Option<usize> {
        let f = self.production.melody_floor_frames;
        (self.stems.needs_lines() && f > 0).then_some(f)
    }

    /// The production stems' harmony hold ([`crate::stages::hold`]): frames per segment, `None`
    /// when off or when the set tracks no lines.
    pub fn hold(&self) -> Option<usize> {
        let f = self.production.hold_frames;
        (self.stems.needs_lines() && f > 0).then_some(f)
    }

    /// Frames per block: `block_frames`, rounded up to whole segments of the spatial filter, the
    /// bass profile and the melody floor when they are on (their segments are grids fixed to
    /// the signal, so each block holds whole ones).
    pub fn block_len(&self) -> usize {
        let grid = self.segment_grid(self.spatial());
        self.block_frames.div_ceil(grid) * grid
    }

    /// The frames whose multiples start a segment of every grid in use: the least common
    /// multiple of `spatial` (the spatial filter's segment, where it acts), the bass profile's,
    /// the melody floor's and the harmony hold's segments (1 when none is on).
    pub fn segment_grid(&self, spatial: Option<usize>) -> usize {
        fn gcd(a: usize, b: usize) -> usize {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        [spatial, self.profile(), self.melody_floor(), self.hold()]
            .into_iter()
            .flatten()
            .fold(1, |l, s| l / gcd(l, s) * s)
    }

    /// Frames before and after an output frame that its processing reads: half the harmonic
    /// kernel plus the pitch lines' context, or half the steady kernel, or the drum tail's
    /// frames back, whichever is more.
    pub fn time_halo(&self) -> (usize, usize) {
        let (before, after) = self.hpss.harmonic_halo();
        let c = self.context_frames();
        let (sb, sa) = self.steady().map_or((0, 0), |(k, _)| SteadyGrid::halo(k));
        let tail = self.drum_tail().map_or(0, |(_, frames)| frames);
        ((before + c).max(sb).max(tail), (after + c).max(sa))
    }
}

impl Default for SeparationParams {
    fn default() -> Self {
        let hpss = HpssParams::default();
        SeparationParams {
            stft: StftParams::default(),
            stems: StemSet::Hpr {
                residual: hpss.has_residual(),
            },
            hpss,
            block_frames: DEFAULT_BLOCK_FRAMES,
            production: ProductionParams::default(),
        }
    }
}

/// A CPU separator: FFT plans, window and tables built once, reused for every track.
pub struct Separator {
    params: SeparationParams,
    stems: Vec<Stem>,
    window: Vec<f32>,
    fft: ForwardFft,
    ifft: InverseFft,
    wss: WindowSumSquare,
    /// Bass and melody trackers, for sets that need the lines.
    lines: Option<(LineTracker, LineTracker)>,
    /// The low-register weight per bin.
    low: Vec<f32>,
    bin_hz: f32,
    /// Each stem's row among the production masks (`PRODUCTION` order; the spatial filter).
    spatial_rows: Vec<usize>,
    /// Per-frame work buffers of the synthesis, kept between slabs and blocks: one pool for the
    /// channel-by-channel path, one for the spatial filter's.
    scratch: [ScratchPool; 2],
}

impl Separator {
    /// Validates `params` and builds the plans.
    pub fn new(params: SeparationParams) -> Result<Self> {
        params.stft.validate()?;
        params.hpss.validate()?;
        if params.block_frames < 1 {
            return Err(Error::param("block_frames", "expected at least 1, got 0"));
        }
        let mut planner = RealFftPlanner::new();
        let n_fft = params.stft.n_fft;
        let window = hann_periodic(n_fft);
        let bins = params.stft.n_bins();
        let bin_hz = params.production.sample_rate as f32 / n_fft as f32;
        let lines = params.stems.needs_lines().then(|| {
            (
                LineTracker::new(params.production.bass, bins, bin_hz),
                LineTracker::new(params.production.melody, bins, bin_hz),
            )
        });
        let stems = params.stems.stems();
        let spatial_rows = stems
            .iter()
            .map(|stem| PRODUCTION.iter().position(|p| p == stem).unwrap_or(0))
            .collect();
        Ok(Separator {
            lines,
            spatial_rows,
            low: low_register(&params.production, bins, bin_hz),
            bin_hz,
            stems,
            fft: ForwardFft::new(&mut planner, n_fft),
            ifft: InverseFft::new(&mut planner, n_fft),
            wss: WindowSumSquare::new(&window, params.stft.hop_length),
            scratch: Default::default(),
            window,
            params,
        })
    }

    /// The parameters in force.
    pub fn params(&self) -> &SeparationParams {
        &self.params
    }

    /// The stems produced, in output order.
    pub fn stems(&self) -> &[Stem] {
        &self.stems
    }

    /// Starts streaming a track of `channels` channels.
    pub fn stream(&self, channels: usize) -> SeparatorStream<'_> {
        BlockStream::new(self, channels)
    }

    /// Separates a whole planar signal; returns `[stem][channel][sample]`, each as long as the input.
    pub fn separate(&self, channels: &[Vec<f32>]) -> Vec<Vec<Vec<f32>>> {
        crate::stream::separate_all(self, channels).expect("the CPU engine does not fail")
    }

    /// An empty `[stem][channel]` output buffer for `channels` channels.
    pub fn empty_output(&self, channels: usize) -> Vec<Vec<Vec<f32>>> {
        vec![vec![Vec::new(); channels]; self.stems.len()]
    }
}

/// A track streaming through the CPU separator.
pub type SeparatorStream<'a> = BlockStream<'a, Separator>;

/// CPU per-track state: each channel's inverse frames of the previous block's tail, and work
/// buffers (one set per channel when the pitch lines need every channel's analysis at once).
#[derive(Default)]
pub struct CpuState {
    tails: Vec<ChannelTail>,
    works: Vec<BlockWork>,
    /// The block's melody combs, `[frame][bin]` (production stems).
    mel: Vec<f32>,
    /// With the spatial filter: the covariances of the block's segments,
    /// `[segment][stem][row][bin]` (rows: [`COV_ROWS`]).
    spatial_cov: Vec<f32>,
    /// With the spatial filter: each chunk's sums ([`spatial::sum_chunk`]),
    /// `[chunk][stem][row][bin]`.
    spatial_sums: Vec<f32>,
    /// With the harmony hold: each channel's harmony amplitude at the block's grid points,
    /// `[channel][point][hold_bins]`.
    hold_points: Vec<Vec<f32>>,
}

/// What the spatial filter gives a stereo synthesis: both channels' analyses, the
/// covariances of the block's segments and the segment length.
#[derive(Clone, Copy)]
struct SpatialView<'a> {
    works: [&'a BlockWork; 2],
    cov: &'a [f32],
    segment: usize,
}

/// One channel's part in a synthesis: its carried inverse frames, input, work buffers and
/// output rows (`[stem]`).
struct ChannelSynth<'a, 'b> {
    tail: &'a mut ChannelTail,
    signal: SignalView<'b>,
    work: &'a BlockWork,
    rows: Vec<&'a mut Vec<f32>>,
}

#[derive(Default)]
struct ChannelTail {
    /// Windowed inverse frames of the last `frames` frames, `[frame][stem][n_fft]`.
    frames_data: Vec<f32>,
    frames: usize,
    /// The synthesis's inverse frames, `[frame][stem][n_fft]`: the carried ones, then each
    /// slab's (a work buffer that only grows).
    stem_frames: Vec<f32>,
}

/// Work buffers reused across blocks (and across channels when one set serves them all).
#[derive(Default)]
struct BlockWork {
    spectra: Vec<Complex32>,
    mag: Vec<f32>,
    /// Harmonic estimate of frames `harm_first ..`.
    harm: Vec<f32>,
    harm_first: usize,
    /// Percussive estimate of the output frames.
    perc: Vec<f32>,
    /// With the steady gate: its grid, the percussive estimate at the grid's points `lo .. hi`,
    /// and the steady estimate at points `first ..`.
    grid: SteadyGrid,
    perc_points: Vec<f32>,
    steady: Vec<f32>,
    /// With the tonal shift: the tonal ratios of the output frames and ±window around them, and
    /// the tonal weights of the output frames.
    tonal_ratios: Vec<u32>,
    tonal: Vec<f32>,
    /// With the bass profile: the profiles of the block's segments (the same in every channel's
    /// work).
    profiles: Vec<BassProfile>,
    /// With the harmony hold: the floors at the block's grid points, `[point][hold_bins]`
    /// ([`crate::stages::hold::segment_floors`]). Empty while the points are being taken, so
    /// their masks are the unheld ones.
    hold: Vec<f32>,
}

/// Bytes of inverse frames synthesised at once (at least two tasks per thread).
const SLAB_BYTES: usize = 2 << 20;
/// Fewest frames in a slab (enough parallel work per slab).
const MIN_SLAB_FRAMES: usize = 32;
/// Frames per task of a slab's synthesis (at least the frames covering one sample): the
/// samples within `n_fft − hop` of a task's edges need the next task's frames too (3 of its 16
/// hops at the default STFT). Measured: 8 frames +4 % of the five stems' time, 16 −2 to −4 %,
/// 32 the same as 16.
const TASK_FRAMES: usize = 16;

/// The bass and melody f0 (Hz, 0 when unvoiced) of each output frame of a block.
type Lines = Vec<(f32, f32)>;

impl BlockEngine for Separator {
    type State = CpuState;

    fn params(&self) -> &SeparationParams {
        &self.params
    }

    fn new_state(&self, channels: usize) -> CpuState {
        CpuState {
            tails: (0..channels).map(|_| ChannelTail::default()).collect(),
            works: Vec::new(),
            mel: Vec::new(),
            spatial_cov: Vec::new(),
            spatial_sums: Vec::new(),
            hold_points: Vec::new(),
        }
    }

    fn run_block(
        &self,
        state: &mut CpuState,
        inputs: &[SignalView<'_>],
        block: &Block,
        emit_from: u64,
        out: &mut [Vec<Vec<f32>>],
    ) -> Result<()> {
        if self.lines.is_some() {
            // Every channel's analysis first: the lines are tracked on their sum.
            state.works.resize_with(inputs.len(), BlockWork::default);
            // The channels' analyses side by side: more parallel work between the barriers of
            // each one's stages.
            state
                .works
                .par_iter_mut()
                .zip(inputs)
                .for_each(|(work, signal)| self.analyse(*signal, block, work));
            let mut lines = self.track_lines(block, &state.works);
            if let Some(segment) = self.params.melody_floor() {
                debug_assert_eq!(block.start % segment, 0, "blocks start on the segment grid");
                apply_melody_floors(
                    &mut lines,
                    segment,
                    self.params.production.melody_floor_ratio,
                );
            }
            if let Some(segment) = self.params.profile() {
                let profiles = self.block_profiles(block, segment, &state.works, &lines);
                for work in &mut state.works {
                    work.profiles.clone_from(&profiles);
                }
            }
            // The melody comb depends on the frame alone: built once for every channel.
            let mut mel = std::mem::take(&mut state.mel);
            self.melody_combs(&lines, &mut mel);
            let spatial = self.params.spatial().filter(|_| inputs.len() == 2);
            let hold = self.params.hold();
            if hold.is_some() {
                // The points' masks are the unheld ones.
                state.works.iter_mut().for_each(|w| w.hold.clear());
                state.hold_points.resize_with(inputs.len(), Vec::new);
            }
            if let Some(segment) = spatial {
                // With the hold, this pass also takes its points.
                self.spatial_stats(block, segment, &lines, &mel, state);
            } else if hold.is_some() {
                self.hold_points(block, &lines, &mel, state);
            }
            if let Some(segment) = hold {
                self.hold_floors(block, segment, state);
            }
            // The spatial filter reads both channels' analyses in each frame's synthesis.
            let view = spatial.map(|segment| SpatialView {
                works: [&state.works[0], &state.works[1]],
                cov: &state.spatial_cov,
                segment,
            });
            let mut chans: Vec<ChannelSynth<'_, '_>> = state
                .tails
                .iter_mut()
                .zip(inputs)
                .zip(&state.works)
                .zip(channel_rows(out))
                .map(|(((tail, signal), work), rows)| ChannelSynth {
                    tail,
                    signal: *signal,
                    work,
                    rows,
                })
                .collect();
            match view {
                // Both channels at once: the filter mixes them.
                Some(view) => {
                    self.synthesise(&mut chans, block, &lines, &mel, Some(view), emit_from)
                }
                // Each channel's synthesis side by side, into its own output rows.
                None => chans.par_iter_mut().for_each(|c| {
                    self.synthesise(
                        std::slice::from_mut(c),
                        block,
                        &lines,
                        &mel,
                        None,
                        emit_from,
                    )
                }),
            }
            state.mel = mel;
        } else {
            state.works.resize_with(1, BlockWork::default);
            let work = &mut state.works[0];
            for ((tail, signal), rows) in state.tails.iter_mut().zip(inputs).zip(channel_rows(out))
            {
                self.analyse(*signal, block, work);
                let mut chan = ChannelSynth {
                    tail,
                    signal: *signal,
                    work: &*work,
                    rows,
                };
                self.synthesise(
                    std::slice::from_mut(&mut chan),
                    block,
                    &[],
                    &[],
                    None,
                    emit_from,
                );
            }
        }
        Ok(())
    }
}

/// `out` (output samples `from ..`) cut at `cuts` (sample indices from `from`, non-decreasing,
/// the last at the end of `out`): the `cuts.len() − 1` pieces between them.
fn split_at_cuts<'a>(mut out: &'a mut [f32], cuts: &[u64], from: u64) -> Vec<&'a mut [f32]> {
    let mut pieces = Vec::with_capacity(cuts.len().saturating_sub(1));
    for w in cuts.windows(2) {
        let (piece, rest) = std::mem::take(&mut out).split_at_mut((w[1] - w[0]) as usize);
        pieces.push(piece);
        out = rest;
    }
    debug_assert!(out.is_empty() && cuts.first().is_none_or(|&c| c == from));
    pieces
}

/// Lengthens `v` to at least `len` (zeros in the new part); never shortens it.
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// The output rows of each channel: `[channel][stem]` borrowed from `out` (`[stem][channel]`).
fn channel_rows(out: &mut [Vec<Vec<f32>>]) -> Vec<Vec<&mut Vec<f32>>> {
    let channels = out.first().map_or(0, Vec::len);
    let mut rows: Vec<Vec<&mut Vec<f32>>> = (0..channels).map(|_| Vec::new()).collect();
    for stem in out.iter_mut() {
        for (ch, row) in stem.iter_mut().enumerate() {
            rows[ch].push(row);
        }
    }
    rows
}

impl Separator {
    /// frame → fft → magnitude for the held frames; median along time for the output frames and
    /// the lines' context; median along frequency for the output frames.
    fn analyse(&self, signal: SignalView<'_>, block: &Block, work: &mut BlockWork) {
        let StftParams { n_fft, hop_length } = self.params.stft;
        let bins = self.params.stft.n_bins();
        let held = block.held_hi - block.held_lo;
        let out_frames = block.end - block.start;

        work.spectra.resize(held * bins, Complex32::default());
        work.mag.resize(held * bins, 0.0);
        work.spectra
            .par_chunks_mut(bins)
            .zip(work.mag.par_chunks_mut(bins))
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![0.0f32; n_fft],
                        vec![Complex32::default(); self.fft.scratch_len()],
                    )
                },
                |(frame, scratch), (i, (spectrum, mag))| {
                    frame_windowed(signal, block.held_lo + i, hop_length, &self.window, frame);
                    self.fft.process(frame, spectrum, scratch);
                    magnitude(spectrum, mag);
                },
            );

        // median along time (harmonic) and along frequency (percussive), frame-major, in tasks of
        // whole frame runs so each task writes its own rows. The harmonic estimate also covers
        // the lines' context frames around the block.
        let hpss = self.params.hpss;
        let ctx = self.params.context_frames();
        let harm_first = block.start.saturating_sub(ctx);
        let harm_end = (block.end + ctx).min(block.n_frames);
        work.harm_first = harm_first;
        work.harm.resize((harm_end - harm_first) * bins, 0.0);

        // Time-median tasks are long runs of frames: each lane group starts with k insertions.
        const FRAMES_PER_TASK: usize = 64;
        let time_task_frames = (harm_end - harm_first)
            .div_ceil(rayon::current_num_threads())
            .clamp(FRAMES_PER_TASK, 512);
        let mag = &work.mag;
        work.harm
            .par_chunks_mut(time_task_frames * bins)
            .enumerate()
            .for_each_init(MedianScratch::default, |scratch, (task, out)| {
                let first = harm_first + task * time_task_frames;
                median_time_tapped(
                    mag,
                    bins,
                    block.held_lo,
                    block.n_frames,
                    (first, hpss.harmonic_tap),
                    hpss.harmonic_kernel,
                    out,
                    0..bins,
                    scratch,
                );
            });
        work.perc.resize(out_frames * bins, 0.0);
        let offset = block.start - block.held_lo;
        let own = &mag[offset * bins..(offset + out_frames) * bins];
        work.perc
            .par_chunks_mut(FRAMES_PER_TASK * bins)
            .zip(own.par_chunks(FRAMES_PER_TASK * bins))
            .for_each_init(MedianScratch::default, |scratch, (out, frames)| {
                median_freq(frames, bins, hpss.percussive_kernel, out, scratch);
            });
        // The steady estimate: the median along time of the percussive estimate at the points of
        // its grid (STEADY_STEP frames apart).
        if let Some((k, _)) = self.params.steady() {
            let grid = SteadyGrid::new(block.start, block.end, block.n_frames, k);
            work.grid = grid;
            work.perc_points.resize((grid.hi - grid.lo) * bins, 0.0);
            // Points on the block's own frames copy their percussive estimate; only the halo's
            // points beyond the block need a median of their own.
            let perc = &work.perc;
            work.perc_points
                .par_chunks_mut(bins)
                .enumerate()
                .for_each_init(MedianScratch::default, |scratch, (i, out)| {
                    let t = (grid.lo + i) * STEADY_STEP;
                    if (block.start..block.end).contains(&t) {
                        let j = t - block.start;
                        out.copy_from_slice(&perc[j * bins..(j + 1) * bins]);
                    } else {
                        let row = t - block.held_lo;
                        let frame = &mag[row * bins..(row + 1) * bins];
                        median_freq(frame, bins, hpss.percussive_kernel, out, scratch);
                    }
                });
            work.steady.resize(grid.rows * bins, 0.0);
            let task_rows = grid
                .rows
                .div_ceil(rayon::current_num_threads())
                .clamp(16, 512);
            let points = &work.perc_points;
            work.steady
                .par_chunks_mut(task_rows * bins)
                .enumerate()
                .for_each_init(MedianScratch::default, |scratch, (task, out)| {
                    median_time(
                        points,
                        bins,
                        grid.lo,
                        grid.n_points,
                        grid.first + task * task_rows,
                        k,
                        out,
                        0..bins,
                        scratch,
                    );
                });
        }
        // The tonal weights: each output frame's mean ratio over ±window frames (exact integer
        // sums), in tasks of frame runs that each start their own sums.
        if let Some((window, threshold)) = self.params.tonal() {
            let t_lo = block.start.saturating_sub(window);
            let t_hi = (block.end + window).min(block.n_frames);
            work.tonal_ratios.resize((t_hi - t_lo) * bins, 0);
            let (mag, harm) = (&work.mag, &work.harm);
            work.tonal_ratios
                .par_chunks_mut(FRAMES_PER_TASK * bins)
                .enumerate()
                .for_each(|(task, rows)| {
                    for (i, row) in rows.chunks_exact_mut(bins).enumerate() {
                        let t = t_lo + task * FRAMES_PER_TASK + i;
                        let m = (t - block.held_lo) * bins;
                        let h = (t - harm_first) * bins;
                        tonal_ratio(&mag[m..m + bins], &harm[h..h + bins], row);
                    }
                });
            work.tonal.resize(out_frames * bins, 0.0);
            let task_frames = out_frames
                .div_ceil(rayon::current_num_threads())
                .clamp(FRAMES_PER_TASK, 512);
            let ratios = &work.tonal_ratios;
            work.tonal
                .par_chunks_mut(task_frames * bins)
                .enumerate()
                .for_each_init(Vec::new, |sum, (task, out)| {
                    tonal_weights(
                        ratios,
                        t_lo,
                        bins,
                        block.n_frames,
                        block.start + task * task_frames,
                        window,
                        threshold,
                        out,
                        sum,
                    );
                });
        }
    }

    /// The bass and melody lines of the block's output frames, summed over channels: the bass on
    /// the harmonic estimate, the melody on the magnitude (see `stages::pitch`).
    fn track_lines(&self, block: &Block, works: &[BlockWork]) -> Lines {
        let (bass, melody) = self.lines.as_ref().expect("a set with lines");
        let bins = self.params.stft.n_bins();
        let first = works[0].harm_first;
        let frames = works[0].harm.len() / bins;
        let (bass_c, mel_c): (Vec<FrameCandidates>, Vec<FrameCandidates>) = (0..frames)
            .into_par_iter()
            .map_init(
                || (vec![0.0f32; bins], vec![0.0f32; bins], Vec::new()),
                |(harm_sum, mag_sum, scratch), t| {
                    line_input(works.iter().map(|w| &w.harm[t * bins..]), harm_sum);
                    let row = (first + t - block.held_lo) * bins;
                    line_input(works.iter().map(|w| &w.mag[row..]), mag_sum);
                    line_candidates(
                        (bass, melody),
                        &self.params.production,
                        self.bin_hz,
                        harm_sum,
                        mag_sum,
                        scratch,
                    )
                },
            )
            .unzip();
        (block.start..block.end)
            .into_par_iter()
            .map(|t| {
                (
                    bass.decide(&bass_c, first, t, block.n_frames),
                    melody.decide(&mel_c, first, t, block.n_frames),
                )
            })
            .collect()
    }

    /// The bass profiles ([`bass_profile`]) of the block's segments (it starts on their grid),
    /// each from its frames' bass line and channel-summed magnitude and harmonic estimate (as the
    /// lines' input sums them, in channel order).
    fn block_profiles(
        &self,
        block: &Block,
        segment: usize,
        works: &[BlockWork],
        lines: &[(f32, f32)],
    ) -> Vec<BassProfile> {
        debug_assert_eq!(block.start % segment, 0, "blocks start on the segment grid");
        let bins = self.params.stft.n_bins();
        let p = &self.params.production;
        let rest = (p.profile_rest_window, p.profile_rest_ratio);
        // Σ over channels of `row(work)[at]`, in channel order (as `line_input` sums).
        let sum = |at: usize, row: fn(&BlockWork) -> &[f32]| {
            let mut works = works.iter();
            let first = works.next().map_or(0.0, |w| row(w)[at]);
            works.fold(first, |s, w| s + row(w)[at])
        };
        let f0: Vec<f32> = lines.iter().map(|l| l.0).collect();
        f0.par_chunks(segment)
            .enumerate()
            .map(|(i, f0)| {
                let mag_at = block.start + i * segment - block.held_lo;
                let amp = |j: usize, k: usize| sum((mag_at + j) * bins + k, |w| &w.mag);
                let harm_at = block.start + i * segment - works[0].harm_first;
                let harm = |j: usize, k: usize| sum((harm_at + j) * bins + k, |w| &w.harm);
                bass_profile(f0, amp, harm, bins, self.bin_hz, p.profile_floor, rest)
            })
            .collect()
    }

    /// masks → stem spectra → ifft → overlap_add for `chans` (one channel, or both channels of a
    /// stereo block through the spatial filter); appends each stem's completed samples to the
    /// channel's row `rows[stem]`.
    fn synthesise(
        &self,
        chans: &mut [ChannelSynth<'_, '_>],
        block: &Block,
        lines: &[(f32, f32)],
        mel: &[f32],
        spatial: Option<SpatialView<'_>>,
        emit_from: u64,
    ) {
        let StftParams { n_fft, hop_length } = self.params.stft;

        // The block is synthesised in slabs of frames (a whole block of five stems' inverse
        // frames is 32 MiB per channel), each slab in tasks of `run` frames: a task inverts its
        // frames, then overlap-adds the samples they alone cover while they are still in its
        // cache; the few samples between two tasks' frames are added afterwards from the slab.
        // Overlap-add sums each sample's frames in frame order whatever the cut, so the output
        // depends neither on the slab nor on the tasks.
        let inverted = self.params.stems.inverted();
        let frame_stride = inverted * n_fft;
        let run = TASK_FRAMES.max(n_fft.div_ceil(hop_length));
        let slab = (SLAB_BYTES / (chans.len() * frame_stride * std::mem::size_of::<f32>()))
            .max(MIN_SLAB_FRAMES)
            .max(2 * run * rayon::current_num_threads());
        let keep_max = crate::stream::tail_frames(&self.params.stft);
        let mut emit_from = emit_from;
        // Every channel carries the same number of frames.
        let mut tail = chans[0].tail.frames;
        // `stem_frames` only grows (its frames are overwritten, never zero-filled again): the
        // first `tail` frames are the carried ones, then each slab's.
        for c in chans.iter_mut() {
            let (data, frames) = (&c.tail.frames_data, &mut c.tail.stem_frames);
            grow(frames, data.len());
            frames[..data.len()].copy_from_slice(data);
        }
        let sp = spatial.filter(|_| chans.len() == 2);
        let works: Vec<&BlockWork> = chans.iter().map(|c| c.work).collect();
        let pool = &self.scratch[usize::from(sp.is_some())];
        let mut s0 = block.start;
        while s0 < block.end {
            let s1 = (s0 + slab).min(block.end);
            let emit_to = block.emit_to_at(s1, &self.params.stft).max(emit_from);
            let count = (emit_to - emit_from) as usize;
            let held = tail + (s1 - s0);
            let held_first = s0 - tail;
            // The slab's tasks (frames `starts[c] .. starts[c + 1]`) and the output segments:
            // `cuts[2c] .. cuts[2c + 1]` is task c's own (every frame covering it is the task's,
            // or carried for the first), `cuts[2c + 1] .. cuts[2c + 2]` needs two tasks' frames.
            let starts: Vec<usize> = (s0..s1).step_by(run).chain([s1]).collect();
            let cuts = self.segment_cuts(&starts, block.n_frames, emit_from, emit_to);
            for c in chans.iter_mut() {
                grow(&mut c.tail.stem_frames, held * frame_stride);
            }
            // Each channel's slab, and its inverted stem rows' new samples cut into the
            // segments (`[channel][stem][segment]`).
            let mut slabs: Vec<&mut [f32]> = Vec::with_capacity(chans.len());
            let mut pieces: Vec<Vec<Vec<&mut [f32]>>> = Vec::with_capacity(chans.len());
            for c in chans.iter_mut() {
                let ChannelSynth { tail, rows, .. } = c;
                slabs.push(&mut tail.stem_frames[..held * frame_stride]);
                pieces.push(
                    rows.iter_mut()
                        .take(inverted)
                        .map(|v| {
                            let len = v.len();
                            v.resize(len + count, 0.0);
                            split_at_cuts(&mut v[len..], &cuts, emit_from)
                        })
                        .collect(),
                );
            }
            // Each task's own segments (`[task][channel][stem]`), and the segments between
            // tasks (channel, stem, segment, samples).
            let tasks = starts.len() - 1;
            let mut own: Vec<Vec<Vec<&mut [f32]>>> = (0..tasks).map(|_| Vec::new()).collect();
            let mut shared: Vec<(usize, usize, usize, &mut [f32])> = Vec::new();
            for (ch, stems) in pieces.into_iter().enumerate() {
                for task in own.iter_mut() {
                    task.push(Vec::new());
                }
                for (stem, segments) in stems.into_iter().enumerate() {
                    for (k, seg) in segments.into_iter().enumerate() {
                        if k % 2 == 0 {
                            own[k / 2][ch].push(seg);
                        } else if !seg.is_empty() {
                            shared.push((ch, stem, k, seg));
                        }
                    }
                }
            }
            let ola = |frames: &[f32], first: usize, stem: usize, at: u64, out: &mut [f32]| {
                overlap_add(
                    frames,
                    frame_stride,
                    stem * n_fft,
                    first,
                    n_fft,
                    hop_length,
                    block.n_frames,
                    &self.wss,
                    at,
                    out,
                )
            };
            {
                // Each task's frames in each channel's slab (the first task's after the
                // carried ones): `[task][channel]`, with the first frame each holds.
                let mut frames: Vec<Vec<(&mut [f32], usize)>> =
                    (0..tasks).map(|_| Vec::new()).collect();
                for slab in slabs.iter_mut() {
                    let mut rest: &mut [f32] = slab;
                    let mut first = held_first;
                    for (task, w) in starts.windows(2).enumerate() {
                        let (mine, more) =
                            std::mem::take(&mut rest).split_at_mut((w[1] - first) * frame_stride);
                        frames[task].push((mine, first));
                        rest = more;
                        first = w[1];
                    }
                }
                frames
                    .par_iter_mut()
                    .zip(own.par_iter_mut())
                    .zip(starts.par_windows(2))
                    .enumerate()
                    .for_each(|(task, ((frames, own), w))| {
                        let mut s = pool.take(self.params.stft.n_bins(), self.ifft.scratch_len());
                        for j in w[0]..w[1] {
                            let at = (j - block.start, j - block.held_lo);
                            match (&sp, &mut frames[..]) {
                                (Some(sp), [(f0, first), (f1, _)]) => {
                                    let i = (j - *first) * frame_stride;
                                    let out = [
                                        &mut f0[i..i + frame_stride],
                                        &mut f1[i..i + frame_stride],
                                    ];
                                    self.spatial_frame(sp, block, at, (lines, mel), out, &mut s);
                                }
                                (_, frames) => {
                                    for (work, (f, first)) in works.iter().zip(frames.iter_mut()) {
                                        let i = (j - *first) * frame_stride;
                                        let out = &mut f[i..i + frame_stride];
                                        self.invert_frame(work, block, at, lines, mel, out, &mut s);
                                    }
                                }
                            }
                        }
                        // The samples the task's own frames complete, while they are in cache.
                        for ((f, first), stems) in frames.iter().zip(own.iter_mut()) {
                            for (stem, out) in stems.iter_mut().enumerate() {
                                ola(f, *first, stem, cuts[2 * task], out);
                            }
                        }
                    });
            }
            // The samples between two tasks, from the whole slab.
            shared.par_iter_mut().for_each(|(ch, stem, k, out)| {
                ola(&slabs[*ch][..], held_first, *stem, cuts[*k], out);
            });
            drop(own);
            drop(shared);
            drop(slabs);
            if count > 0 && self.params.stems.last_is_remainder() {
                chans
                    .par_iter_mut()
                    .for_each(|c| self.remainder_row(c, inverted, emit_from, count));
            }
            emit_from = emit_to;
            // Keep the inverse frames the next slab's first samples still need.
            let keep = keep_max.min(held);
            for c in chans.iter_mut() {
                c.tail
                    .stem_frames
                    .copy_within((held - keep) * frame_stride..held * frame_stride, 0);
            }
            tail = keep;
            s0 = s1;
        }
        for c in chans.iter_mut() {
            let t = &mut *c.tail;
            t.frames_data.clear();
            t.frames_data
                .extend_from_slice(&t.stem_frames[..tail * frame_stride]);
            t.frames = tail;
        }
    }

    /// The output segments of a slab whose tasks hold the frames `starts[c] .. starts[c + 1]`,
    /// emitting samples `emit_from .. emit_to`: `2T` non-decreasing cuts (output sample indices,
    /// `T` tasks, the last cut `emit_to`), `cuts[2c] .. cuts[2c + 1]` the samples all of whose
    /// covering frames task c holds (the first task also holds the carried frames before it),
    /// and `cuts[2c + 1] .. cuts[2c + 2]` those that need two tasks' frames.
    fn segment_cuts(
        &self,
        starts: &[usize],
        n_frames: usize,
        emit_from: u64,
        emit_to: u64,
    ) -> Vec<u64> {
        let StftParams { n_fft, hop_length } = self.params.stft;
        let (n_fft, hop) = (n_fft as u64, hop_length as u64);
        let pad = n_fft / 2;
        let tasks = starts.len() - 1;
        let mut cuts = Vec::with_capacity(2 * tasks + 1);
        let mut last = emit_from;
        let mut push = |x: u64, cuts: &mut Vec<u64>| {
            last = x.clamp(last, emit_to);
            cuts.push(last);
        };
        push(emit_from, &mut cuts);
        for c in 0..tasks {
            // The task's own samples end where a frame past it covers them: padded positions
            // from `end · hop` on (none past the signal's last frame).
            let end = starts[c + 1] as u64;
            let own_end = if c + 1 == tasks || starts[c + 1] >= n_frames {
                emit_to
            } else {
                (end * hop).saturating_sub(pad)
            };
            push(own_end, &mut cuts);
            if c + 1 < tasks {
                // The next task's own samples start where its first frame is the first to cover
                // them: padded positions from `(start − 1) · hop + n_fft` on.
                let next = ((end - 1) * hop + n_fft).saturating_sub(pad);
                push(next, &mut cuts);
            }
        }
        cuts
    }

    /// The remainder stem's new samples `emit_from .. emit_from + count` of channel `c`: the
    /// input minus the inverted stems, subtracted in stem order.
    fn remainder_row(
        &self,
        c: &mut ChannelSynth<'_, '_>,
        inverted: usize,
        emit_from: u64,
        count: usize,
    ) {
        const SAMPLES_PER_TASK: usize = 4096;
        let signal = c.signal;
        let (inverted_rows, rest) = c.rows.split_at_mut(inverted);
        let Some(rest) = rest.first_mut() else {
            return;
        };
        let len = rest.len();
        rest.resize(len + count, 0.0);
        let stems: Vec<&[f32]> = inverted_rows
            .iter()
            .map(|r| &r[r.len() - count..])
            .collect();
        rest[len..]
            .par_chunks_mut(SAMPLES_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| {
                let i0 = task * SAMPLES_PER_TASK;
                for (i, r) in chunk.iter_mut().enumerate() {
                    *r = signal.at((emit_from + (i0 + i) as u64) as i64);
                }
                for stem in &stems {
                    for (r, &v) in chunk.iter_mut().zip(&stem[i0..]) {
                        *r -= v;
                    }
                }
            });
    }

    /// masks → stem spectra → ifft of output frame `j` of the block (`at` = `(j, held)`, `held`
    /// the frame's row in the held spectra) into `out` (`[stem][n_fft]`). When the last stem of
    /// a set is the remainder of the others it is taken in the time domain (x − Σ others; the
    /// ISTFT is linear and reconstructs x) and needs no inverse transform of its own.
    #[allow(clippy::too_many_arguments)]
    fn invert_frame(
        &self,
        work: &BlockWork,
        block: &Block,
        (j, held): (usize, usize),
        lines: &[(f32, f32)],
        mel: &[f32],
        out: &mut [f32],
        s: &mut FrameScratch,
    ) {
        let n_fft = self.params.stft.n_fft;
        let bins = self.params.stft.n_bins();
        let inverted = self.params.stems.inverted();
        let harm_row = block.start + j - work.harm_first;
        let spectrum = &work.spectra[held * bins..(held + 1) * bins];
        self.frame_masks(
            work,
            block,
            j,
            (held, harm_row),
            lines,
            mel,
            &self.stems[..inverted],
            (None, bins),
            s,
        );
        let FrameScratch {
            mask_h,
            mask_p,
            masks,
            stem,
            ifft,
            ..
        } = s;
        // Each inverted stem's mask: hpr's are the HPSS masks themselves.
        let hpr = [&mask_h[..], &mask_p[..]];
        let (from_hpr, from_masks) = match &self.params.stems {
            StemSet::Hpr { .. } => (inverted, 0),
            StemSet::Production { .. } => (0, inverted),
        };
        let mut rows = hpr[..from_hpr]
            .iter()
            .copied()
            .chain(masks.chunks_exact(bins).take(from_masks));
        // Two stems per complex inverse transform (the masks applied as the transform's input
        // is packed); an odd one alone.
        let mut frames = out.chunks_exact_mut(n_fft);
        while let (Some(fa), Some(ma)) = (frames.next(), rows.next()) {
            match (frames.next(), rows.next()) {
                (Some(fb), Some(mb)) => {
                    self.ifft
                        .process_masked_pair(spectrum, (ma, mb), (fa, fb), &self.window, ifft)
                }
                _ => {
                    apply_mask(spectrum, ma, stem);
                    self.ifft.process(stem, fa, &self.window, ifft);
                }
            }
        }
    }

    /// The HPSS masks (`s.mask_h`, `s.mask_p`) and the masks of `stems` (`[stem][bin]` into
    /// `out`, or `s.masks` without one; none for `hpr`) of output frame `j` of the block, whose
    /// spectrum is row `rows.0` of the held frames and whose harmonic estimate is row `rows.1`
    /// of `work.harm`: drum tail, HPSS masks, steady gate, tonal shift, line weights. Only the
    /// first `limit` bins (`out` then `[stem][limit]`): the spatial filter's sums need no more,
    /// and each of those bins' masks is the same as in a whole row (the line weights are still
    /// built on the whole row, as the bass comb's envelope reads partials above the limit).
    #[allow(clippy::too_many_arguments)]
    fn frame_masks(
        &self,
        work: &BlockWork,
        block: &Block,
        j: usize,
        (held, harm_row): (usize, usize),
        lines: &[(f32, f32)],
        mel: &[f32],
        stems: &[Stem],
        (out, limit): (Option<&mut [f32]>, usize),
        s: &mut FrameScratch,
    ) {
        let bins = self.params.stft.n_bins();
        let hpss = self.params.hpss;
        let harm = &work.harm[harm_row * bins..(harm_row + 1) * bins];
        let perc = &work.perc[j * bins..j * bins + limit];
        // The percussive estimate: with drum tails, their first `tail` bins from `s.perc`, the
        // rest the block's row as it is (only those bins change; each mask is bin by bin).
        let mut tail = 0;
        if self.params.drum_tail().is_some() {
            self.drum_tails(&work.mag, &work.perc, j, held, lines.get(j).copied(), s);
            tail = s.perc.len().min(limit);
        }
        let pieces = [(&s.perc[..tail], 0..tail), (&perc[tail..], tail..limit)];
        if matches!(self.params.stems, StemSet::Production { .. }) {
            for (perc, range) in pieces.clone() {
                hpss_masks_banded_range(
                    &harm[range.clone()],
                    perc,
                    range.start,
                    &hpss,
                    &self.params.production,
                    &mut s.mask_h[range.clone()],
                    &mut s.mask_p[range],
                );
            }
        } else {
            // `hpr`: librosa's masks, one margin on every bin.
            for (perc, range) in pieces.clone() {
                hpss_masks(
                    &harm[range.clone()],
                    perc,
                    &hpss,
                    &mut s.mask_h[range.clone()],
                    &mut s.mask_p[range],
                );
            }
        }
        if let Some((_, margin)) = self.params.steady() {
            let r = work.grid.row(block.start + j);
            let steady = &work.steady[r * bins..r * bins + limit];
            for (perc, range) in pieces {
                let mask_p = &mut s.mask_p[range.clone()];
                steady_gate(perc, &steady[range], margin, hpss.power, mask_p);
            }
        }
        if let Some((ratio, (from, to))) = self.params.sustain() {
            // The smallest magnitude over the frames ahead, 0 past the signal's end (the block
            // holds every signal frame within the reach: `context_frames`).
            let rows = work.mag.len() / bins;
            let (lo, hi) = self.params.production.sustain_bins;
            // An empty band where the limit (the spatial filter's bins) lies under it.
            let hi = hi.min(limit).max(lo);
            s.ahead[lo..hi].fill(f32::INFINITY);
            for d in from..=to {
                if block.held_lo + held + d >= block.n_frames {
                    s.ahead[lo..hi].fill(0.0);
                    break;
                }
                debug_assert!(held + d < rows, "note sustain reaches past the held frames");
                let row = &work.mag[(held + d) * bins..(held + d + 1) * bins];
                min_into(&mut s.ahead[lo..hi], &row[lo..hi]);
            }
            sustain_shift(
                &work.mag[held * bins..(held + 1) * bins],
                &s.ahead,
                ratio,
                (lo, hi),
                &mut s.mask_h,
                &mut s.mask_p,
            );
        }
        if self.params.tonal().is_some() {
            tonal_shift(
                &work.tonal[j * bins..j * bins + limit],
                &mut s.mask_h,
                &s.mask_p,
            );
        }
        let mel_w = mel.get(j * bins..(j + 1) * bins);
        let profile = self
            .params
            .profile()
            .map(|seg| &work.profiles[(block.start + j) / seg - block.start / seg]);
        let line = lines.get(j).copied();
        // The hold's floor at the frame's grid point (none while the points are taken).
        let hold = (!work.hold.is_empty()).then(|| {
            let p = &self.params.production;
            let row = j / p.hold_stride * p.hold_bins;
            let mag = &work.mag[held * bins..(held + 1) * bins];
            (&work.hold[row..row + p.hold_bins], mag)
        });
        self.stem_masks(harm, line, profile, mel_w, hold, stems, (out, limit), s);
    }

    /// The spatial filter's covariances for a stereo block's segments (`state.spatial_cov`;
    /// the block holds whole segments, see [`SeparationParams::block_len`], but for the
    /// signal's last): every [`spatial::stats_stride`]-th frame's masks of the five production
    /// stems in both channels, summed per chunk ([`spatial::sum_chunk`]) while they are in
    /// cache, the chunks in order per segment, normalised.
    fn spatial_stats(
        &self,
        block: &Block,
        segment: usize,
        lines: &[(f32, f32)],
        mel: &[f32],
        state: &mut CpuState,
    ) {
        let bins = self.params.stft.n_bins();
        let n = PRODUCTION.len();
        let frames = block.end - block.start;
        // The filter's bins: covariances are `[stem][row][k]`.
        let k = self.params.production.spatial_bins.min(bins);
        let seg_len = n * COV_ROWS * k;
        let chunk = spatial::sum_chunk(segment);
        let stft = &self.params.stft;
        let stride = spatial::stats_stride(segment, stft.n_fft, stft.hop_length);
        debug_assert_eq!(block.start % segment, 0, "blocks start on the segment grid");
        let mut partial = std::mem::take(&mut state.spatial_sums);
        partial.resize(frames.div_ceil(chunk) * seg_len, 0.0);
        // With the harmony hold, its points are this pass's frames (the same grid): each
        // chunk's rows of them, per channel (none without the hold).
        let hold = self.params.hold().is_some();
        let p = &self.params.production;
        let hb = if hold { p.hold_bins } else { 0 };
        debug_assert!(
            !hold || p.hold_stride == stride,
            "the hold's grid is the filter's"
        );
        let chunks = frames.div_ceil(chunk);
        let mut points = std::mem::take(&mut state.hold_points);
        let mut rows: [Vec<&mut [f32]>; 2] = [Vec::new(), Vec::new()];
        for (r, pts) in rows.iter_mut().zip(points.iter_mut()) {
            pts.clear();
            pts.resize(frames.div_ceil(stride) * hb, 0.0);
            *r = pts.chunks_mut((chunk / stride * hb).max(1)).collect();
        }
        for r in &mut rows {
            r.resize_with(chunks, Default::default);
        }
        let [rows0, rows1] = rows;
        // Masks of the filter's bins (`[stem][kk]`), and of the hold's where it reaches higher.
        let kk = k.max(hb);
        let (w0, w1) = (&state.works[0], &state.works[1]);
        let offset = block.start - block.held_lo;
        // One task per chunk of frames (the block starts on the segment grid and chunks divide
        // segments).
        partial
            .par_chunks_mut(seg_len)
            .zip(rows0.into_par_iter().zip(rows1))
            .enumerate()
            .for_each_init(
                || {
                    let s = FrameScratch::new(bins, 0);
                    (s, vec![0.0f32; 2 * n * kk], vec![0.0f32; 4 * k])
                },
                |(s, masks, cross), (c, (sums, pts))| {
                    sums.fill(0.0);
                    let (r0, r1) = masks.split_at_mut(n * kk);
                    let first = c * chunk;
                    for j in (first..((c + 1) * chunk).min(frames)).step_by(stride) {
                        let at = (j, offset + j);
                        self.stereo_masks([w0, w1], block, at, (lines, mel), [r0, r1], s);
                        let x = (offset + j) * bins..(offset + j) * bins + k;
                        spatial::cross_spectra(&w0.spectra[x.clone()], &w1.spectra[x], cross);
                        spatial::accumulate(cross, r0, r1, sums);
                        if hb > 0 {
                            let row = (j - first) / stride * hb;
                            for ((w, r), out) in [w0, w1]
                                .into_iter()
                                .zip([&*r0, &*r1])
                                .zip([&mut *pts.0, &mut *pts.1])
                            {
                                let harmony = &r[HARMONY_ROW * kk..HARMONY_ROW * kk + hb];
                                let mag = &w.mag[(offset + j) * bins..(offset + j) * bins + hb];
                                hold_amplitude(harmony, mag, &mut out[row..row + hb]);
                            }
                        }
                    }
                },
            );
        state.hold_points = points;
        // Each segment's sums: its chunks' in order, then normalised.
        let first = block.start / segment;
        let segments = (block.end - 1) / segment + 1 - first;
        let per_segment = segment / chunk;
        let mut cov = std::mem::take(&mut state.spatial_cov);
        cov.clear();
        cov.resize(segments * seg_len, 0.0);
        cov.par_chunks_mut(seg_len)
            .zip(partial.par_chunks(per_segment * seg_len))
            .for_each(|(cov, parts)| {
                for part in parts.chunks_exact(seg_len) {
                    cov.iter_mut().zip(part).for_each(|(c, p)| *c += p);
                }
                spatial::normalise(cov, k);
            });
        state.spatial_sums = partial;
        state.spatial_cov = cov;
    }

    /// The harmony hold's points without the spatial filter (`state.hold_points`): each
    /// channel's harmony amplitude at the block's grid frames, from their unheld masks.
    fn hold_points(&self, block: &Block, lines: &[(f32, f32)], mel: &[f32], state: &mut CpuState) {
        let bins = self.params.stft.n_bins();
        let p = &self.params.production;
        let (hb, stride) = (p.hold_bins, p.hold_stride);
        let frames = block.end - block.start;
        let offset = block.start - block.held_lo;
        for (work, pts) in state.works.iter().zip(state.hold_points.iter_mut()) {
            pts.clear();
            pts.resize(frames.div_ceil(stride) * hb, 0.0);
            pts.par_chunks_mut(hb).enumerate().for_each_init(
                || {
                    (
                        FrameScratch::new(bins, 0),
                        vec![0.0f32; PRODUCTION.len() * hb],
                    )
                },
                |(s, masks), (i, out)| {
                    let j = i * stride;
                    let harm_row = block.start - work.harm_first + j;
                    let rows = (offset + j, harm_row);
                    let at = (Some(&mut masks[..]), hb);
                    self.frame_masks(work, block, j, rows, lines, mel, &PRODUCTION, at, s);
                    let harmony = &masks[HARMONY_ROW * hb..(HARMONY_ROW + 1) * hb];
                    let mag = &work.mag[(offset + j) * bins..(offset + j) * bins + hb];
                    hold_amplitude(harmony, mag, out);
                },
            );
        }
    }

    /// The harmony hold's floors of the block's grid points (`works[c].hold`), each segment's
    /// from its own points ([`hold::segment_floors`]).
    fn hold_floors(&self, block: &Block, segment: usize, state: &mut CpuState) {
        let p = &self.params.production;
        let (hb, stride) = (p.hold_bins, p.hold_stride);
        debug_assert_eq!(block.start % segment, 0, "blocks start on the segment grid");
        debug_assert_eq!(segment % stride, 0, "segments hold whole strides");
        let per_segment = segment / stride * hb;
        state
            .works
            .par_iter_mut()
            .zip(&state.hold_points)
            .for_each(|(work, pts)| {
                work.hold.clear();
                work.hold.resize(pts.len(), 0.0);
                for (out, seg) in work
                    .hold
                    .chunks_mut(per_segment)
                    .zip(pts.chunks(per_segment))
                {
                    hold::segment_floors(seg, hb, p.hold_radius, 1.0, out);
                }
            });
    }

    /// Output frame `j` of the block's masks of the five production stems in both channels
    /// (`works[c]` channel `c`'s analysis, `out[c]` its masks, `[stem][bin]` over the first
    /// `out[c].len() / 5` bins); `at` = `(j, held)`, `held` the frame's row in the held spectra.
    fn stereo_masks(
        &self,
        works: [&BlockWork; 2],
        block: &Block,
        (j, held): (usize, usize),
        (lines, mel): (&[(f32, f32)], &[f32]),
        out: [&mut [f32]; 2],
        s: &mut FrameScratch,
    ) {
        for (work, row) in works.into_iter().zip(out) {
            let harm_row = block.start - work.harm_first + j;
            let rows = (held, harm_row);
            let limit = row.len() / PRODUCTION.len();
            let out = (Some(row), limit);
            self.frame_masks(work, block, j, rows, lines, mel, &PRODUCTION, out, s);
        }
    }

    /// Output frame `j` of the block through the spatial filter (`at` = `(j, held)`, `held`
    /// the frame's row in the held spectra): its masks of the five production stems in both
    /// channels, then the inverted stems of both channels, inverse-transformed into
    /// `out[channel]` (`[stem][n_fft]`).
    fn spatial_frame(
        &self,
        sp: &SpatialView<'_>,
        block: &Block,
        (j, held): (usize, usize),
        (lines, mel): (&[(f32, f32)], &[f32]),
        out: [&mut [f32]; 2],
        s: &mut FrameScratch,
    ) {
        let (bins, n_fft) = (self.params.stft.n_bins(), self.params.stft.n_fft);
        let n = PRODUCTION.len();
        let mut masks = std::mem::take(&mut s.spatial_masks);
        masks.resize(2 * n * bins, 0.0);
        let (m0, m1) = masks.split_at_mut(n * bins);
        self.stereo_masks(sp.works, block, (j, held), (lines, mel), [m0, m1], s);
        let x = held * bins..(held + 1) * bins;
        let seg = (block.start + j) / sp.segment - block.start / sp.segment;
        let seg_len = n * COV_ROWS * self.params.production.spatial_bins.min(bins);
        let inverted = self.params.stems.inverted();
        s.spatial.resize(2 * inverted * bins, Complex32::default());
        let (s0, s1) = s.spatial.split_at_mut(inverted * bins);
        let xs = [&sp.works[0].spectra[x.clone()], &sp.works[1].spectra[x]];
        let stems = &self.spatial_rows[..inverted];
        // The filter's bins `0 .. k`; above them each stem is its mask times the mix, applied
        // as the transform's input is packed.
        let k = spatial::apply_filtered(
            xs[0],
            xs[1],
            m0,
            m1,
            &sp.cov[seg * seg_len..(seg + 1) * seg_len],
            stems,
            [s0, s1],
            &mut s.spatial_scratch,
        );
        let channels = s.spatial.chunks_exact(inverted * bins).zip(out);
        for (((spectra, out), x), m) in channels.zip(xs).zip([&*m0, &*m1]) {
            // Two stems per complex inverse transform; an odd one alone.
            let mask = |i: usize| &m[stems[i] * bins..(stems[i] + 1) * bins];
            let mut rows = spectra.chunks_exact(bins).enumerate();
            let mut frames = out.chunks_exact_mut(n_fft);
            while let (Some(fa), Some((ia, sa))) = (frames.next(), rows.next()) {
                match (frames.next(), rows.next()) {
                    (Some(fb), Some((ib, sb))) => self.ifft.process_pair_split(
                        (sa, sb),
                        (x, mask(ia), mask(ib)),
                        k,
                        (fa, fb),
                        &self.window,
                        &mut s.ifft,
                    ),
                    _ => {
                        s.stem[..k].copy_from_slice(&sa[..k]);
                        apply_mask(&x[k..], &mask(ia)[k..], &mut s.stem[k..]);
                        self.ifft
                            .process(&mut s.stem, fa, &self.window, &mut s.ifft);
                    }
                }
            }
        }
        s.spatial_masks = masks;
    }

    /// The melody comb of each output frame (`[frame][bin]`), from the frames' melody f0.
    fn melody_combs(&self, lines: &[(f32, f32)], mel: &mut Vec<f32>) {
        let bins = self.params.stft.n_bins();
        let p = &self.params.production;
        mel.clear();
        mel.resize(lines.len() * bins, 0.0);
        mel.par_chunks_mut(bins)
            .zip(lines.par_iter())
            .for_each(|(row, &(_, f_mel))| {
                add_comb(
                    row,
                    None,
                    f_mel,
                    p.melody_partials,
                    0.0,
                    p.comb_cents,
                    MELODY_LOBE_BINS,
                    MELODY_MIN_SIGMA_BINS,
                    self.bin_hz,
                    None,
                );
            });
    }

    /// The lowest `tail_bins` of frame `j`'s percussive estimate (row `j` of the block's
    /// `block_perc`) held up along a drum's decay ([`drum_tail`]), into `s.perc` (the other
    /// bins are the row's as they are). `held` is the frame's row
    /// in `mag`; earlier frames' estimates come from `block_perc` where the block has them and
    /// from `mag` before it (the same exact medians).
    fn drum_tails(
        &self,
        mag: &[f32],
        block_perc: &[f32],
        j: usize,
        held: usize,
        line: Option<(f32, f32)>,
        s: &mut FrameScratch,
    ) {
        let p = &self.params.production;
        let bins = self.params.stft.n_bins();
        let (tail_bins, frames, k) = (
            p.tail_bins,
            p.tail_frames,
            self.params.hpss.percussive_kernel,
        );
        let perc = &block_perc[j * bins..(j + 1) * bins];
        let FrameScratch {
            perc: out,
            bass_w,
            window,
            ..
        } = s;
        out.clear();
        out.extend_from_slice(&perc[..tail_bins]);
        let comb = &mut bass_w[..tail_bins];
        comb.fill(0.0);
        add_comb(
            comb,
            None,
            line.map_or(0.0, |l| l.0),
            p.bass_partials,
            p.bass_comb_fade_hz,
            p.comb_cents,
            COMB_LOBE_BINS,
            0.0,
            self.bin_hz,
            None,
        );
        let x = &mag[held * bins..(held + 1) * bins];
        for b in 0..tail_bins {
            let prev = (1..=frames).map(|back| {
                if back <= j {
                    Some(block_perc[(j - back) * bins + b])
                } else if back <= held {
                    let row = &mag[(held - back) * bins..(held - back + 1) * bins];
                    Some(freq_median_at(row, b, k, window))
                } else {
                    None
                }
            });
            out[b] = drum_tail(perc[b], x[b], prev, p.tail_rho, comb[b]);
        }
    }

    /// Fills `s.masks` (`[stem][bin]`, or `out` when given) with the masks of `stems`
    /// (production stems, no remainder) for a production set, over the first `limit` bins (the
    /// line weights over the whole row `harm`); `hpr` uses `s.mask_h` and `s.mask_p` as they are.
    #[allow(clippy::too_many_arguments)]
    fn stem_masks(
        &self,
        harm: &[f32],
        line: Option<(f32, f32)>,
        profile: Option<&BassProfile>,
        mel_w: Option<&[f32]>,
        hold: Option<(&[f32], &[f32])>,
        stems: &[Stem],
        (out, limit): (Option<&mut [f32]>, usize),
        s: &mut FrameScratch,
    ) {
        if let StemSet::Production { .. } = &self.params.stems {
            let p = &self.params.production;
            let f_bass = line.map_or(0.0, |l| l.0);
            // The comb alone, then the bass weight: the larger of it and the low register.
            s.comb.fill(0.0);
            add_comb(
                &mut s.comb,
                Some(harm),
                f_bass,
                p.bass_partials,
                p.bass_comb_fade_hz,
                p.comb_cents,
                COMB_LOBE_BINS,
                0.0,
                self.bin_hz,
                profile,
            );
            for ((w, &l), &c) in s.bass_w.iter_mut().zip(&self.low).zip(&s.comb) {
                *w = l.max(c);
            }
            let below = drums_below_bins(f_bass, p.drums_below_ratio, self.bin_hz);
            let mut mel_w = mel_w.unwrap_or(&s.mel_w);
            if let Some((floor, mag)) = hold {
                // From the drums' low bins up, where the bass mask is `h · b`.
                s.hold_mel.clear();
                s.hold_mel.extend_from_slice(mel_w);
                hold::apply_hold(&mut s.bass_w, &mut s.hold_mel, &s.mask_h, mag, floor, below);
                mel_w = &s.hold_mel;
            }
            let out = match out {
                Some(out) => out,
                None => {
                    s.masks.resize(stems.len() * limit, 0.0);
                    &mut s.masks[..]
                }
            };
            production_masks(
                stems,
                &s.mask_h[..limit],
                &s.mask_p[..limit],
                &s.bass_w,
                mel_w,
                (&s.comb, below),
                out,
            );
        }
    }
}

/// The harmony's row among the production masks (`PRODUCTION` order).
const HARMONY_ROW: usize = 3;
const _: () = assert!(matches!(PRODUCTION[HARMONY_ROW], Stem::Harmony));

/// The harmony stem's amplitude at the hold's bins: its mask times the magnitude.
fn hold_amplitude(harmony: &[f32], mag: &[f32], out: &mut [f32]) {
    out.iter_mut()
        .zip(harmony.iter().zip(mag))
        .for_each(|(o, (m, x))| *o = m * x);
}

/// Per-thread buffers for the per-frame stages.
struct FrameScratch {
    mask_h: Vec<f32>,
    mask_p: Vec<f32>,
    /// The lowest bins of the frame's percussive estimate, with the drum tails
    /// (`Separator::drum_tails`).
    perc: Vec<f32>,
    /// A frequency-median window.
    window: Vec<f32>,
    bass_w: Vec<f32>,
    /// The bass comb alone (the bass weight without the low register).
    comb: Vec<f32>,
    mel_w: Vec<f32>,
    /// The note sustain's smallest magnitude ahead, per bin.
    ahead: Vec<f32>,
    masks: Vec<f32>,
    /// One masked stem spectrum (a stem inverted alone).
    stem: Vec<Complex32>,
    /// The spatial filter's stem spectra of the frame, `[stem][bin]`, the frame's masks in
    /// both channels, `[channel][stem][bin]`, and its work buffers.
    spatial: Vec<Complex32>,
    spatial_masks: Vec<f32>,
    /// The melody weights with the harmony hold.
    hold_mel: Vec<f32>,
    spatial_scratch: SpatialScratch,
    ifft: Vec<Complex32>,
}

/// Frame scratch buffers handed out to rayon's tasks and taken back when a task ends: a slab of
/// a few dozen frames would otherwise allocate and zero a set per task (about one per two
/// frames). Each call site keeps its own pool, and every use writes what it reads, so a reused
/// set gives the same result as a new one.
#[derive(Default)]
struct ScratchPool(std::sync::Mutex<Vec<FrameScratch>>);

impl ScratchPool {
    /// A set for frames of `bins` bins and an inverse FFT scratch of `ifft_scratch`.
    fn take(&self, bins: usize, ifft_scratch: usize) -> PooledScratch<'_> {
        let kept = self.0.lock().map(|mut v| v.pop()).unwrap_or(None);
        let scratch = kept
            .filter(|s| s.mask_h.len() == bins && s.ifft.len() == ifft_scratch)
            .unwrap_or_else(|| FrameScratch::new(bins, ifft_scratch));
        PooledScratch {
            pool: self,
            scratch: Some(scratch),
        }
    }
}

/// A [`FrameScratch`] on loan from a [`ScratchPool`]; it goes back on drop.
struct PooledScratch<'a> {
    pool: &'a ScratchPool,
    scratch: Option<FrameScratch>,
}

impl std::ops::Deref for PooledScratch<'_> {
    type Target = FrameScratch;
    fn deref(&self) -> &FrameScratch {
        self.scratch.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for PooledScratch<'_> {
    fn deref_mut(&mut self) -> &mut FrameScratch {
        self.scratch.as_mut().expect("held until drop")
    }
}

impl Drop for PooledScratch<'_> {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut v)) = (self.scratch.take(), self.pool.0.lock()) {
            v.push(s);
        }
    }
}

impl FrameScratch {
    fn new(bins: usize, ifft_scratch: usize) -> Self {
        FrameScratch {
            mask_h: vec![0.0; bins],
            mask_p: vec![0.0; bins],
            perc: Vec::with_capacity(bins),
            window: Vec::new(),
            bass_w: vec![0.0; bins],
            comb: vec![0.0; bins],
            mel_w: vec![0.0; bins],
            ahead: vec![0.0; bins],
            masks: Vec::new(),
            stem: vec![Complex32::default(); bins],
            spatial: Vec::new(),
            spatial_masks: Vec::new(),
            hold_mel: Vec::with_capacity(bins),
            spatial_scratch: SpatialScratch::default(),
            ifft: vec![Complex32::default(); ifft_scratch],
        }
    }
}

/// Separation settings before they meet a sample rate: kernels may be given in seconds or hertz,
/// which become frames and bins only at a track's rate.
#[derive(Clone, Debug, PartialEq)]
pub struct SeparationSpec {
    /// STFT layout.
    pub stft: StftParams,
    /// Harmonic (time) median length (`None`: 31 frames for `hpr`, the production default
    /// otherwise).
    pub harmonic_kernel: Option<crate::params::Kernel>,
    /// Frames between the harmonic median's taps (`None`: 1 for `hpr`, the production default
    /// otherwise); the kernel is then the span the taps cover.
    pub harmonic_tap: Option<usize>,
    /// Percussive (frequency) median length (`None`: 31 bins for `hpr`, the production default
    /// otherwise).
    pub percussive_kernel: Option<crate::params::Kernel>,
    /// Soft-mask power (`inf` for hard masks; `None`: 2 for `hpr`, the production default
    /// otherwise).
    pub power: Option<f32>,
    /// Harmonic and percussive margins (`None`: 1 for `hpr`, the production default otherwise).
    pub margin: Option<(f32, f32)>,
    /// The `--stems` text.
    pub stems: String,
    /// No `rest` stem for a subset of the production stems.
    pub no_rest: bool,
    /// Production-stem settings.
    pub production: ProductionSpec,
    /// Frames per processing block.
    pub block_frames: usize,
}

impl Default for SeparationSpec {
    fn default() -> Self {
        SeparationSpec {
            stft: StftParams::default(),
            harmonic_kernel: None,
            harmonic_tap: None,
            percussive_kernel: None,
            power: None,
            margin: None,
            stems: "hpr".into(),
            no_rest: false,
            production: ProductionSpec::default(),
            block_frames: DEFAULT_BLOCK_FRAMES,
        }
    }
}

impl SeparationSpec {
    /// The concrete parameters at `sample_rate`.
    pub fn resolve(&self, sample_rate: u32) -> Result<SeparationParams> {
        let hpr = matches!(
            self.stems.trim().to_ascii_lowercase().as_str(),
            "hpr" | "hpss"
        );
        let margin = self.margin.unwrap_or(if hpr {
            (1.0, 1.0)
        } else {
            self.production.margin
        });
        self.production.validate()?;
        let harmonic_tap =
            self.harmonic_tap
                .unwrap_or(if hpr { 1 } else { self.production.harmonic_tap });
        let harmonic_span = self
            .harmonic_kernel
            .unwrap_or(if hpr {
                Kernel::Count(31)
            } else {
                self.production.harmonic_kernel
            })
            .resolve(sample_rate, &self.stft);
        let hpss = HpssParams {
            harmonic_kernel: HpssParams::taps_for_span(harmonic_span, harmonic_tap),
            harmonic_tap,
            percussive_kernel: self
                .percussive_kernel
                .unwrap_or(if hpr {
                    Kernel::Count(31)
                } else {
                    self.production.percussive_kernel
                })
                .resolve(sample_rate, &self.stft),
            power: self
                .power
                .unwrap_or(if hpr { 2.0 } else { self.production.power }),
            margin_harmonic: margin.0,
            margin_percussive: margin.1,
        };
        let params = SeparationParams {
            stft: self.stft,
            stems: StemSet::parse(&self.stems, &hpss, self.no_rest)?,
            hpss,
            block_frames: self.block_frames,
            production: self.production.resolve(sample_rate, &self.stft),
        };
        params.stft.validate()?;
        params.hpss.validate()?;
        Ok(params)
    }
}
