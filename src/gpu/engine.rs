//! The GPU separation engine: a [`BlockEngine`] that runs every stage of a block, for every
//! channel, in one queue submission (one command encoder, one compute pass per stage, a fixed
//! number of dispatches whatever the block's length), uploads the block's input samples once
//! and reads the stems' samples back once through a staging buffer.
//!
//! The production stems with a bass or melody stem take two submissions per block: the first
//! ends with the channel-summed rows the pitch lines are tracked on, which the host reads back
//! (about 0.3× the bytes of the stems) and turns into one (bass, melody) f0 pair per frame with
//! the CPU twin's own code (`production::line_candidates`, `LineTracker::decide`: a Viterbi
//! search per frame, sequential and branchy, poor work for a GPU and cheap on the host); the
//! second uploads those pairs and runs the masks, inverse transforms and overlap-add.
//!
//! Blocks from several threads (tracks in flight with `--jobs N`) share submissions: whoever
//! finds no submission in progress runs every block queued meanwhile (up to [`MAX_BATCH`], one
//! slot of buffers each) as one submission per phase, so short tracks do not pay a queue round
//! trip each, and a lone block never waits for company.
//!
//! Unlike the CPU engine it keeps no overlap-add tail between blocks: each block rebuilds the
//! inverse frames before its start (see [`crate::gpu::plan`]). Those frames lie in the previous
//! segment of the grids fixed to the signal, so a track carries from block to block what that
//! segment gave them: the spatial filter's covariances (read back with the stems, 82 kB at
//! n_fft 2048), the harmony hold's floors at the grid points those frames read (1.4 kB of
//! stereo), and the bass profile and melody floor (from the host's own line tracking), all
//! uploaded with the next block ([`GpuTrackState`]). Blocks larger than the
//! device can hold are split internally into parts of [`GpuSeparator::max_block_frames`] frames
//! (whole segments with the filter; one submission per part); results do not depend on the
//! split.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::params::GpuParams;
use crate::gpu::pipelines::{
    choose_fft_path, hold_carried, hold_point_count, spatial_segments, FftPath,
};
use crate::gpu::plan::{plan_block, worst_case_params, BlockPlan};
use crate::gpu::resources::{
    buffer_bytes, Buf, Resources, Step, SPATIAL_COV_BYTES_PER_BIN, TIMESTAMP_BYTES,
    WRITTEN_BY_A_BLOCK,
};
use crate::gpu::stage_runner::periodic_wss;
use crate::gpu::stats::GpuStats;
use crate::production::{
    apply_melody_floors, bass_profile, line_candidates, low_register, unvoice_below, BassProfile,
    NO_PROFILE,
};
use crate::separator::SeparationParams;
use crate::stages::frame::{hann_periodic, SignalView};
use crate::stages::overlap_add::WindowSumSquare;
use crate::stages::pitch::{FrameCandidates, LineTracker};
use crate::stems::{Stem, StemSet};
use crate::stream::{Block, BlockEngine, BlockStream};
use std::sync::{Arc, Condvar, Mutex};

/// Engine options beyond the separation parameters; the defaults suit production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// Force an FFT path (`None`: the workgroup FFT where the device's workgroup memory holds
    /// it, else the global one).
    pub fft_path: Option<FftPath>,
    /// Fill every intermediate and output buffer with NaN before each block (tests: an element
    /// a stage fails to write then shows up in the stems).
    pub poison: bool,
    /// Time each stage with timestamp queries when the device supports them.
    pub timestamps: bool,
    /// Split blocks into parts of at most this many frames even where the device holds more
    /// (tests: the split path on any device).
    pub max_part_frames: Option<usize>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            fft_path: None,
            poison: false,
            timestamps: true,
            max_part_frames: None,
        }
    }
}

/// Per-track state of the GPU engine: the channel count and, with the spatial filter, the
/// covariances of the last segment a block ended in (a block's first frames, rebuilt for the
/// overlap-add, lie in that segment).
#[derive(Clone, Debug, PartialEq)]
pub struct GpuTrackState {
    /// Channels of the track.
    pub channels: usize,
    /// The spatial filter's covariances of the segment the last block ended in,
    /// `[5][4][bins]` (empty before the first block, or without the filter).
    pub spatial_cov: Vec<f32>,
    /// The bass profile of the segment the last block ended in (`None` before the first block,
    /// or without the profile).
    pub profile: Option<BassProfile>,
    /// The melody floor (Hz) of the segment the last block ended in (`None` before the first
    /// block, or without the floor).
    pub melody_floor: Option<f32>,
    /// With the harmony hold: the floors of the grid points the last block's last
    /// `tail_frames` frames read, `[point][channel][hold_bins]` (the next block rebuilds
    /// those frames; empty before the first block, or without the hold).
    pub hold_floors: Vec<f32>,
}

/// Blocks that can share one queue submission (one slot of buffers each).
pub const MAX_BATCH: usize = 8;

struct Inner {
    /// One set of buffers per block of a shared submission; grown up to [`MAX_BATCH`].
    slots: Vec<Resources>,
    tables: Tables,
    stats: GpuStats,
}

/// Constant tables uploaded into every slot.
struct Tables {
    periodic: Vec<f32>,
    low: Vec<f32>,
}

/// A block waiting for the GPU: its plan, gathered input and (spatial filter) the carried
/// covariances; the leader fills in the result.
struct Request {
    plan: BlockPlan,
    n_frames: usize,
    pcm: Vec<f32>,
    carried: Vec<f32>,
    /// The bass profile of the segment before the block's own frames (its rebuilt first
    /// frames lie there).
    carried_profile: Option<BassProfile>,
    /// Likewise the melody floor of that segment.
    carried_melody_floor: Option<f32>,
    /// The harmony hold's floors of the points those frames read, `[point][channel][hold_bins]`.
    carried_hold: Vec<f32>,
    result: Mutex<Option<Result<BlockResult>>>,
}

/// What a block gives back: the stems' samples, `[stem][channel][count]`, and (spatial filter)
/// the covariances of its last segment, `[5][4][bins]`.
struct BlockResult {
    samples: Vec<f32>,
    spatial_cov: Vec<f32>,
    /// The bass profile of the block's last segment (with the profile).
    profile: Option<BassProfile>,
    /// The melody floor of the block's last segment (with the floor).
    melody_floor: Option<f32>,
    /// The harmony hold's floors of the points its last `tail_frames` frames read.
    hold_floors: Vec<f32>,
}

/// Blocks from every thread using the engine (one per track with `--jobs N`): whoever finds no
/// submission in progress becomes the leader and runs everything queued meanwhile as one
/// submission, so blocks of several short tracks share a submission whenever they contend,
/// and a lone block never waits for company.
#[derive(Default)]
struct Queue {
    pending: std::collections::VecDeque<Arc<Request>>,
    leader: bool,
}

/// A slot's buffers with the constant tables uploaded.
fn new_slot(
    ctx: &Arc<GpuContext>,
    pipelines: &Arc<crate::gpu::pipelines::Pipelines>,
    params: &SeparationParams,
    tables: &Tables,
    timestamps: bool,
) -> Result<Resources> {
    let mut resources = Resources::new(ctx.clone(), pipelines.clone(), timestamps);
    resources.ensure(&worst_case_params(params, 1, 1), 0, 0)?;
    resources.write(Buf::WssPeriodic, bytemuck::cast_slice(&tables.periodic));
    resources.write(Buf::Low, bytemuck::cast_slice(&tables.low));
    Ok(resources)
}

/// A GPU separator: pipelines and buffers built once, reused for every block and track.
/// Produces the same stems as the CPU [`crate::Separator`] for the same parameters (within
/// float rounding: the FFTs differ in the last bits).
pub struct GpuSeparator {
    ctx: Arc<GpuContext>,
    params: SeparationParams,
    stems: Vec<Stem>,
    path: FftPath,
    options: GpuOptions,
    wss: WindowSumSquare,
    /// Bass and melody trackers, for sets that need the lines (tracked on the host).
    lines: Option<(LineTracker, LineTracker)>,
    bin_hz: f32,
    inner: Mutex<Inner>,
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl std::fmt::Debug for GpuSeparator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSeparator")
            .field("ctx", &self.ctx)
            .field("params", &self.params)
            .field("path", &self.path)
            .finish()
    }
}

impl GpuSeparator {
    /// Validates `params` and builds the pipelines and first buffers on `ctx`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for bad parameters, [`Error::Gpu`] when the device cannot
    /// build the pipelines.
    pub fn new(ctx: Arc<GpuContext>, params: SeparationParams) -> Result<Self> {
        Self::with_options(ctx, params, GpuOptions::default())
    }

    /// [`GpuSeparator::new`] with explicit [`GpuOptions`].
    ///
    /// # Errors
    /// As [`GpuSeparator::new`].
    pub fn with_options(
        ctx: Arc<GpuContext>,
        params: SeparationParams,
        options: GpuOptions,
    ) -> Result<Self> {
        params.stft.validate()?;
        params.hpss.validate()?;
        if params.block_frames < 1 {
            return Err(Error::param("block_frames", "expected at least 1, got 0"));
        }
        // A block's rebuilt first frames must lie in the one segment carried over.
        let tail = crate::stream::tail_frames(&params.stft);
        for (name, seg) in [
            ("spatial segment", params.spatial()),
            ("harmony hold segment", params.hold()),
        ] {
            if let Some(seg) = seg.filter(|&seg| seg <= tail) {
                return Err(Error::param(
                    name,
                    format!("expected more than {tail} frames, got {seg}"),
                ));
            }
        }
        if let Some(seg) = params.hold() {
            let stride = params.production.hold_stride;
            if stride == 0 || seg % stride != 0 {
                return Err(Error::param(
                    "harmony hold segment",
                    format!("expected whole strides of {stride} frames, got {seg}"),
                ));
            }
        }
        let n_fft = params.stft.n_fft;
        let hop = params.stft.hop_length;
        let path = options
            .fft_path
            .unwrap_or_else(|| choose_fft_path(n_fft, &ctx.limits()));
        let pipelines = ctx.pipelines(n_fft, path)?;
        let window = hann_periodic(n_fft);
        let wss = WindowSumSquare::new(&window, hop);
        let bins = params.stft.n_bins();
        let bin_hz = params.production.sample_rate as f32 / n_fft as f32;
        let production = matches!(params.stems, StemSet::Production { .. });
        // Tables every block reads, uploaded once per slot: the periodic window sum-square
        // (it depends only on the hop) and the low-register weight.
        let tables = Tables {
            periodic: periodic_wss(&wss, n_fft, hop),
            low: if production {
                low_register(&params.production, bins, bin_hz)
            } else {
                Vec::new()
            },
        };
        let resources = new_slot(&ctx, &pipelines, &params, &tables, options.timestamps)?;
        let lines = params.stems.needs_lines().then(|| {
            (
                LineTracker::new(params.production.bass, bins, bin_hz),
                LineTracker::new(params.production.melody, bins, bin_hz),
            )
        });
        let stats = GpuStats {
            setup_bytes_uploaded: pipelines.setup_bytes
                + ((tables.periodic.len() + tables.low.len()) * 4) as u64,
            timestamps: resources.timed(),
            ..Default::default()
        };
        ctx.check("creating the GPU separator")?;
        Ok(GpuSeparator {
            lines,
            bin_hz,
            stems: params.stems.stems(),
            ctx,
            params,
            path,
            options,
            wss,
            inner: Mutex::new(Inner {
                slots: vec![resources],
                tables,
                stats,
            }),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
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

    /// The FFT path in use.
    pub fn fft_path(&self) -> FftPath {
        self.path
    }

    /// The context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Counters since construction.
    pub fn stats(&self) -> GpuStats {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// The most output frames one submission can hold for `channels` channels: every buffer
    /// within the device's `max_storage_buffer_binding_size` and `max_buffer_size`, every
    /// dispatch within `max_compute_workgroups_per_dimension`. Larger blocks are split.
    pub fn max_block_frames(&self, channels: usize) -> usize {
        let limits = self.ctx.limits();
        let bytes_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let dims = limits.max_compute_workgroups_per_dimension as u64;
        let n_fft = self.params.stft.n_fft;
        let fits = |frames: usize| {
            let p = worst_case_params(&self.params, channels.max(1), frames);
            let buffers_fit = std::iter::once(&Buf::Pcm)
                .chain(WRITTEN_BY_A_BLOCK.iter())
                .all(|&b| buffer_bytes(b, &p, self.path, n_fft) <= bytes_limit);
            let groups_fit = [
                p.held_frames as u64,
                p.harm_frames as u64,
                (p.out_frames * p.inverted_stems) as u64,
                (p.emit_count as u64).div_ceil(256),
            ]
            .iter()
            .all(|&g| g <= dims);
            buffers_fit && groups_fit
        };
        if !fits(1) {
            return 0;
        }
        let (mut lo, mut hi) = (1usize, 1usize << 24);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Starts streaming a track of `channels` channels.
    pub fn stream(&self, channels: usize) -> BlockStream<'_, GpuSeparator> {
        BlockStream::new(self, channels)
    }

    /// Separates a whole planar signal; returns `[stem][channel][sample]`.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device fails.
    pub fn separate(&self, channels: &[Vec<f32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        crate::stream::separate_all(self, channels)
    }

    /// Runs one part of a block: frames `start .. end`, emitting `emit_from .. emit_to`.
    #[allow(clippy::too_many_arguments)]
    fn run_part(
        &self,
        state: &mut GpuTrackState,
        inputs: &[SignalView<'_>],
        start: usize,
        end: usize,
        n_frames: usize,
        emit_from: u64,
        emit_to: u64,
        out: &mut [Vec<Vec<f32>>],
    ) -> Result<()> {
        self.ctx.alive("running a block")?;
        let channels = inputs.len();
        let input_end = inputs
            .iter()
            .map(|v| v.offset as u64 + v.samples.len() as u64)
            .min()
            .unwrap_or(0);
        let plan = plan_block(
            &self.params,
            &self.wss,
            channels,
            start,
            end,
            n_frames,
            emit_from,
            emit_to,
            input_end,
        )?;
        if let Some(v) = inputs
            .iter()
            .find(|v| plan.pcm_len > 0 && v.offset as u64 > plan.pcm_start)
        {
            return Err(Error::Gpu(format!(
                "frames {start}..{end} need input from sample {}, but the stream holds it only from {}",
                plan.pcm_start, v.offset
            )));
        }
        // Gather the block's input here, outside any lock, then queue it for the GPU.
        let mut pcm = Vec::new();
        gather_pcm(&mut pcm, inputs, &plan);
        let count = (plan.emit_to - plan.emit_from) as usize;
        let p = &plan.params;
        let carried = if p.spatial_segment > 0 && p.spatial_phase > 0 {
            let need = (SPATIAL_COV_BYTES_PER_BIN / 4) as usize * p.spatial_bins as usize;
            if state.spatial_cov.len() != need {
                return Err(Error::Gpu(format!(
                    "frames {start}..{end} begin inside a spatial segment whose covariances no \
                     earlier block gave"
                )));
            }
            std::mem::take(&mut state.spatial_cov)
        } else {
            Vec::new()
        };
        let rebuilt_before = |seg: Option<usize>| {
            seg.is_some_and(|seg| plan.t0 < plan.start && plan.t0 / seg < plan.start / seg)
        };
        if rebuilt_before(self.params.profile()) && state.profile.is_none() {
            return Err(Error::Gpu(format!(
                "frames {start}..{end} rebuild frames of a bass-profile segment that no earlier \
                 block gave"
            )));
        }
        if rebuilt_before(self.params.melody_floor()) && state.melody_floor.is_none() {
            return Err(Error::Gpu(format!(
                "frames {start}..{end} rebuild frames of a melody-floor segment that no earlier \
                 block gave"
            )));
        }
        let carried_hold = match hold_carried(p) as usize * channels * p.hold_bins as usize {
            0 => Vec::new(),
            need if state.hold_floors.len() == need => std::mem::take(&mut state.hold_floors),
            _ => {
                return Err(Error::Gpu(format!(
                    "frames {start}..{end} rebuild frames of a harmony-hold segment whose floors \
                     no earlier block gave"
                )))
            }
        };
        let request = Arc::new(Request {
            plan,
            n_frames,
            pcm,
            carried,
            carried_profile: state.profile.take(),
            carried_melody_floor: state.melody_floor.take(),
            carried_hold,
            result: Mutex::new(None),
        });
        let BlockResult {
            samples,
            spatial_cov,
            profile,
            melody_floor,
            hold_floors,
        } = self.submit(&request)?;
        state.hold_floors = hold_floors;
        state.spatial_cov = spatial_cov;
        state.profile = profile;
        state.melody_floor = melody_floor;
        for (stem, per_stem) in out.iter_mut().enumerate().take(self.stems.len()) {
            for (ch, dst) in per_stem.iter_mut().enumerate().take(channels) {
                let at = (stem * channels + ch) * count;
                dst.extend_from_slice(&samples[at..at + count]);
            }
        }
        Ok(())
    }

    /// Queues `request` and returns its result: runs the queued blocks itself when no
    /// submission is in progress, else waits for the leader that takes it.
    fn submit(&self, request: &Arc<Request>) -> Result<BlockResult> {
        let lock_queue = || self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut queue = lock_queue();
        queue.pending.push_back(request.clone());
        loop {
            if let Some(result) = request
                .result
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return result;
            }
            if queue.leader {
                queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            queue.leader = true;
            let n = queue.pending.len().min(MAX_BATCH);
            let batch: Vec<Arc<Request>> = queue.pending.drain(..n).collect();
            drop(queue);
            // Whatever happens (an error, a panic), the leadership is handed back.
            let _release = Release(self);
            let results = match self.run_batch(&batch) {
                Ok(results) => results.into_iter().map(Ok).collect(),
                Err(e) if batch.len() == 1 => vec![Err(e)],
                Err(e) => batch
                    .iter()
                    .map(|_| {
                        Err(match &e {
                            Error::Gpu(m) => Error::Gpu(m.clone()),
                            other => Error::Gpu(other.to_string()),
                        })
                    })
                    .collect(),
            };
            for (r, result) in batch.iter().zip(results) {
                *r.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            }
            drop(_release);
            queue = lock_queue();
        }
    }

    /// Runs `batch` (at most [`MAX_BATCH`] blocks, any tracks) in one submission per phase:
    /// slot i holds block i. Returns each block's stem samples.
    fn run_batch(&self, batch: &[Arc<Request>]) -> Result<Vec<BlockResult>> {
        self.ctx.alive("running a block")?;
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        while inner.slots.len() < batch.len() {
            let pipelines = inner.slots[0].pipelines().clone();
            let slot = new_slot(
                &self.ctx,
                &pipelines,
                &self.params,
                &inner.tables,
                self.options.timestamps,
            )?;
            inner.stats.setup_bytes_uploaded +=
                ((inner.tables.periodic.len() + inner.tables.low.len()) * 4) as u64;
            inner.slots.push(slot);
        }
        for (slot, req) in inner.slots.iter_mut().zip(batch) {
            let plan = &req.plan;
            let out_bytes = buffer_bytes(Buf::Out, &plan.params, self.path, 0)
                + spatial_last(&plan.params).2
                + self.hold_last(&plan.params).2;
            let line_bytes = if self.lines.is_some() {
                buffer_bytes(Buf::LineIn, &plan.params, self.path, 0)
            } else {
                0
            };
            slot.ensure(&plan.params, plan.wss_edge.len(), out_bytes.max(line_bytes))?;
            slot.write(Buf::Params, bytemuck::bytes_of(&plan.params));
            slot.write(Buf::Pcm, bytemuck::cast_slice(&req.pcm));
            slot.write(Buf::WssEdge, bytemuck::cast_slice(&plan.wss_edge));
            if self.options.poison {
                for b in WRITTEN_BY_A_BLOCK {
                    slot.poison(b);
                }
            }
            // The carried segment's covariances are segment 0 of the block's.
            slot.write(Buf::SpatialCov, bytemuck::cast_slice(&req.carried));
            // The carried points' floors are the first rows of the block's.
            slot.write(Buf::HoldFloors, bytemuck::cast_slice(&req.carried_hold));
            inner.stats.blocks += 1;
            inner.stats.bytes_uploaded += (std::mem::size_of_val(&plan.params)
                + req.pcm.len() * 4
                + plan.wss_edge.len() * 4
                + req.carried.len() * 4
                + req.carried_hold.len() * 4) as u64;
        }
        let mut last_profiles: Vec<Option<BassProfile>> = Vec::new();
        let mut last_floors: Vec<Option<f32>> = Vec::new();
        let last: &[Step] = match &self.params.stems {
            StemSet::Hpr { .. } => &Step::HPR,
            StemSet::Production { .. } if self.lines.is_none() => &Step::PRODUCTION_ONLY,
            StemSet::Production { .. } => {
                last_profiles.resize(batch.len(), None);
                last_floors.resize(batch.len(), None);
                // Spectra, medians and the lines' input; the lines on the host; then the rest.
                let line_in = |p: &GpuParams| {
                    vec![(Buf::LineIn, 0, buffer_bytes(Buf::LineIn, p, self.path, 0))]
                };
                let lines = self.run_steps(inner, batch, &Step::ANALYSIS, line_in, |i, b| {
                    let req = &batch[i];
                    self.track_lines(req, bytemuck::cast_slice(b))
                })?;
                for (i, block) in lines.into_iter().enumerate() {
                    let flat = lines_buffer(&block.lines, &block.profiles);
                    inner.slots[i].write(Buf::Lines, bytemuck::cast_slice(&flat));
                    inner.stats.bytes_uploaded += (flat.len() * 4) as u64;
                    last_profiles[i] = block.last_profile;
                    last_floors[i] = block.last_melody_floor;
                }
                &Step::SYNTHESIS
            }
        };
        // The stems' samples, then (spatial filter) the last segment's covariances and (harmony
        // hold) the floors the next block's rebuilt frames read.
        let regions = |p: &GpuParams| {
            vec![
                (Buf::Out, 0, buffer_bytes(Buf::Out, p, self.path, 0)),
                spatial_last(p),
                self.hold_last(p),
            ]
        };
        self.run_steps(inner, batch, last, regions, |i, b| {
            let p = &batch[i].plan.params;
            let (samples, rest) = b.split_at(buffer_bytes(Buf::Out, p, self.path, 0) as usize);
            let (cov, floors) = rest.split_at(spatial_last(p).2 as usize);
            BlockResult {
                samples: bytemuck::cast_slice::<u8, f32>(samples).to_vec(),
                spatial_cov: bytemuck::cast_slice::<u8, f32>(cov).to_vec(),
                hold_floors: bytemuck::cast_slice::<u8, f32>(floors).to_vec(),
                profile: last_profiles.get(i).copied().flatten(),
                melody_floor: last_floors.get(i).copied().flatten(),
            }
        })
    }

    /// One submission for the whole batch: records `steps` for each block in its slot, copies
    /// the `readback` regions of its plan (buffer, offset, bytes) to the slot's staging buffer,
    /// waits, and hands block i's bytes to `read(i, bytes)`.
    fn run_steps<T>(
        &self,
        inner: &mut Inner,
        batch: &[Arc<Request>],
        steps: &[Step],
        readback: impl Fn(&GpuParams) -> Vec<(Buf, u64, u64)>,
        mut read: impl FnMut(usize, &[u8]) -> T,
    ) -> Result<Vec<T>> {
        let mut encoder =
            self.ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("stemkit blocks"),
                });
        let mut sizes = Vec::with_capacity(batch.len());
        for (slot, req) in inner.slots.iter().zip(batch) {
            inner.stats.dispatches += slot.record(&mut encoder, &req.plan.params, steps);
            sizes.push(slot.record_readback(&mut encoder, &readback(&req.plan.params), steps));
        }
        self.ctx.queue().submit([encoder.finish()]);
        inner.stats.submissions += 1;
        let mut results = Vec::with_capacity(batch.len());
        for (i, (slot, &bytes)) in inner.slots.iter().zip(&sizes).enumerate() {
            let mut result = None;
            let times =
                slot.read_staging(bytes, "GPU block", steps, |b| result = Some(read(i, b)))?;
            let s = &mut inner.stats;
            s.bytes_read_back += bytes + if times.is_some() { TIMESTAMP_BYTES } else { 0 };
            if let Some(ns) = times {
                for (acc, t) in s.stage_ns.iter_mut().zip(ns) {
                    *acc += t;
                }
            }
            results.push(
                result.ok_or_else(|| {
                    Error::Gpu("GPU block: the readback was not delivered".into())
                })?,
            );
        }
        Ok(results)
    }

    /// The readback region of the harmony hold's floors that the next block's rebuilt frames
    /// read (those of the points of the block's last `tail_frames` frames): (buffer, offset,
    /// bytes), no bytes without the hold.
    fn hold_last(&self, p: &GpuParams) -> (Buf, u64, u64) {
        let points = hold_point_count(p) as u64;
        if points == 0 {
            return (Buf::HoldFloors, 0, 0);
        }
        let tail = crate::stream::tail_frames(&self.params.stft) as u32;
        let lead = p.hold_phase % p.hold_stride;
        let first = ((lead + p.out_frames.saturating_sub(tail)) / p.hold_stride) as u64;
        let row = p.channels as u64 * p.hold_bins as u64 * 4;
        (Buf::HoldFloors, first * row, (points - first) * row)
    }

    /// The (bass, melody) f0 of the plan's output frames from the lines' input read back:
    /// per harmonic frame, the channel-summed harmonic rows (`line_bins` bins), then the
    /// channel-summed magnitude rows.
    ///
    /// Runs on plain scoped threads, not rayon: the caller is the submission leader, whose
    /// waiters may be blocked rayon workers, and a rayon wait here could steal one of their
    /// jobs onto this thread and block it behind itself.
    fn track_lines(&self, req: &Request, line_in: &[f32]) -> BlockLines {
        let (plan, n_frames) = (&req.plan, req.n_frames);
        let (bass, melody) = self.lines.as_ref().expect("a set with lines");
        let p = &plan.params;
        let bins = p.bins as usize;
        let line_bins = p.line_bins as usize;
        let stride = line_bins + bins;
        let h0 = plan.t0 - p.harm_offset as usize;
        let rows: Vec<&[f32]> = line_in
            .chunks_exact(stride)
            .take(p.harm_frames as usize)
            .collect();
        let candidates: Vec<(FrameCandidates, FrameCandidates)> = scoped_map(rows.len(), |range| {
            let (mut harm_sum, mut mag_sum, mut scratch) =
                (vec![0.0f32; bins], vec![0.0f32; bins], Vec::new());
            range
                .map(|i| {
                    let row = rows[i];
                    harm_sum[..line_bins].copy_from_slice(&row[..line_bins]);
                    mag_sum.copy_from_slice(&row[line_bins..]);
                    line_candidates(
                        (bass, melody),
                        &self.params.production,
                        self.bin_hz,
                        &harm_sum,
                        &mut mag_sum,
                        &mut scratch,
                    )
                })
                .collect()
        });
        let (bass_c, mel_c): (Vec<FrameCandidates>, Vec<FrameCandidates>) =
            candidates.into_iter().unzip();
        let mut lines: Vec<(f32, f32)> = scoped_map(plan.end - plan.t0, |range| {
            range
                .map(|j| {
                    let t = plan.t0 + j;
                    (
                        bass.decide(&bass_c, h0, t, n_frames),
                        melody.decide(&mel_c, h0, t, n_frames),
                    )
                })
                .collect()
        });
        let own = plan.start - plan.t0;
        // The melody floor, per segment as in the CPU engine: the rebuilt frames before `start`
        // take the carried one (the previous segment's), the block's own segments their own.
        let mut last_melody_floor = None;
        if let Some(seg) = self.params.melody_floor() {
            let (rebuilt, own_lines) = lines.split_at_mut(own);
            if let Some(floor) = req.carried_melody_floor {
                unvoice_below(rebuilt, floor);
            }
            let ratio = self.params.production.melody_floor_ratio;
            last_melody_floor =
                apply_melody_floors(own_lines, seg, ratio).or(req.carried_melody_floor);
        }
        // The bass profile per output frame: the rebuilt frames before `start` take the carried
        // one (the previous segment's), the block's own segments their own, from the same
        // channel-summed magnitude and harmonic estimate the lines were tracked on (as the CPU
        // engine sums them).
        let Some(seg) = self.params.profile() else {
            return BlockLines {
                lines,
                profiles: Vec::new(),
                last_profile: None,
                last_melody_floor,
            };
        };
        let f0: Vec<f32> = lines[own..].iter().map(|l| l.0).collect();
        let segments: Vec<BassProfile> = f0
            .chunks(seg)
            .enumerate()
            .map(|(i, f0)| {
                let first = plan.start + i * seg - h0;
                let amp = |j: usize, k: usize| rows[first + j][line_bins + k];
                let harm = |j: usize, k: usize| {
                    debug_assert!(k < line_bins, "the bass line lies in the line rows");
                    rows[first + j][k]
                };
                let p = &self.params.production;
                bass_profile(
                    f0,
                    amp,
                    harm,
                    bins,
                    self.bin_hz,
                    p.profile_floor,
                    (p.profile_rest_window, p.profile_rest_ratio),
                )
            })
            .collect();
        let carried = req.carried_profile.unwrap_or(NO_PROFILE);
        let profiles = (0..lines.len())
            .map(|j| match j.checked_sub(own) {
                Some(k) => segments[k / seg],
                None => carried,
            })
            .collect();
        BlockLines {
            lines,
            profiles,
            last_profile: segments.last().copied().or(req.carried_profile),
            last_melody_floor,
        }
    }
}

/// A block's lines and what its last segment carries to the next block.
struct BlockLines {
    /// The (bass, melody) f0 per output frame.
    lines: Vec<(f32, f32)>,
    /// The bass profile per output frame (empty without the profile).
    profiles: Vec<BassProfile>,
    /// The bass profile of the block's last segment.
    last_profile: Option<BassProfile>,
    /// The melody floor of the block's last segment.
    last_melody_floor: Option<f32>,
}

/// The `lines` buffer: the (bass, melody) f0 of each output frame, then each frame's bass
/// profile ([`NO_PROFILE`] without one).
pub(crate) fn lines_buffer(lines: &[(f32, f32)], profiles: &[BassProfile]) -> Vec<f32> {
    let mut flat: Vec<f32> = lines.iter().flat_map(|&(b, m)| [b, m]).collect();
    for j in 0..lines.len() {
        flat.extend_from_slice(profiles.get(j).unwrap_or(&NO_PROFILE));
    }
    flat
}

/// `0..n` split into contiguous ranges over a few scoped OS threads; `f` maps a range to its
/// results, which come back in order.
fn scoped_map<T: Send>(n: usize, f: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 16)
        .min(n.div_ceil(64).max(1));
    if threads == 1 {
        return f(0..n);
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let f = &f;
                scope.spawn(move || f(k * per..((k + 1) * per).min(n)))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a line-tracking thread panicked"))
            .collect()
    })
}

/// The readback region of a block's last spatial segment: (buffer, offset, bytes), no bytes
/// without the filter.
fn spatial_last(p: &GpuParams) -> (Buf, u64, u64) {
    let segments = spatial_segments(p) as u64;
    let seg_bytes = SPATIAL_COV_BYTES_PER_BIN * p.spatial_bins as u64;
    match segments {
        0 => (Buf::SpatialCov, 0, 0),
        n => (Buf::SpatialCov, (n - 1) * seg_bytes, seg_bytes),
    }
}

/// Hands the leadership of the submission queue back (on drop) and wakes the waiters.
struct Release<'a>(&'a GpuSeparator);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.leader = false;
        self.0.ready.notify_all();
    }
}

/// The block's input samples `[channel][pcm_len]` (zeros past the held end).
fn gather_pcm(pcm: &mut Vec<f32>, inputs: &[SignalView<'_>], plan: &BlockPlan) {
    pcm.clear();
    let (a, len) = (plan.pcm_start, plan.pcm_len);
    for v in inputs {
        // The held samples in a .. a + len (the plan checked they start at or before a);
        // past the held end the signal reads as zero.
        let from = a.saturating_sub(v.offset as u64) as usize;
        let avail = v.samples.len().saturating_sub(from).min(len);
        pcm.extend_from_slice(&v.samples[from.min(v.samples.len())..][..avail]);
        pcm.resize(pcm.len() + len - avail, 0.0);
    }
}

impl BlockEngine for GpuSeparator {
    type State = GpuTrackState;

    fn params(&self) -> &SeparationParams {
        &self.params
    }

    fn new_state(&self, channels: usize) -> GpuTrackState {
        GpuTrackState {
            channels,
            spatial_cov: Vec::new(),
            profile: None,
            melody_floor: None,
            hold_floors: Vec::new(),
        }
    }

    fn run_block(
        &self,
        state: &mut GpuTrackState,
        inputs: &[SignalView<'_>],
        block: &Block,
        emit_from: u64,
        out: &mut [Vec<Vec<f32>>],
    ) -> Result<()> {
        let channels = inputs.len();
        debug_assert_eq!(channels, state.channels);
        if channels == 0 || block.end <= block.start {
            return Ok(());
        }
        let mut cap = self.max_block_frames(channels);
        if let Some(m) = self.options.max_part_frames {
            cap = cap.min(m);
        }
        // Parts of whole segments of the spatial filter, the bass profile and the melody floor,
        // like the blocks (the segments are grids on the signal).
        let spatial = self.params.spatial().filter(|_| channels == 2);
        cap -= cap % self.params.segment_grid(spatial);
        if cap == 0 {
            return Err(Error::Gpu(format!(
                "the device cannot hold one frame (with the spatial filter, one segment) of \
                 {channels} channels at n_fft {}",
                self.params.stft.n_fft
            )));
        }
        let mut from = emit_from;
        let mut start = block.start;
        while start < block.end {
            let end = (start + cap).min(block.end);
            let to = block.emit_to_at(end, &self.params.stft);
            if to > from {
                self.run_part(state, inputs, start, end, block.n_frames, from, to, out)?;
                from = to;
            }
            start = end;
        }
        Ok(())
    }
}
