//! The buffers a block flows through, the bind groups that connect them to the stage table, and
//! the recording of the stages into one command encoder. Created once, grown only when a block
//! needs more; shared by the engine ([`crate::gpu::engine`]) and the stage runner
//! ([`crate::gpu::stage_runner`]) so both run exactly the same dispatches.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::params::{GpuParams, PassParams};
use crate::gpu::pipelines::{
    hold_point_count, masks_alone, spatial_chunks, spatial_segments, workgroups, FftPath,
    Pipelines, Stage, TIMED_STAGES,
};
use std::sync::Arc;

/// The stages as the CPU names them, each recorded as one compute pass (the global FFT path
/// records several dispatches in its `Fft` and `Ifft` passes). `hpr` blocks run [`Step::HPR`] in
/// one submission; production blocks run [`Step::ANALYSIS`], then (after the host tracked the
/// pitch lines) [`Step::SYNTHESIS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// frame.wgsl
    Frame,
    /// fft.wgsl or fft_global.wgsl
    Fft,
    /// magnitude.wgsl
    Magnitude,
    /// median.wgsl, median_time
    MedianTime,
    /// median.wgsl, median_freq
    MedianFreq,
    /// median.wgsl, median_freq_points then median_steady (production stems)
    MedianSteady,
    /// production.wgsl, line_input
    LineInput,
    /// mask.wgsl
    Mask,
    /// production.wgsl, production (or production_masks with the spatial filter or the
    /// harmony hold)
    Production,
    /// hold.wgsl, hold_points, hold_floors then hold_spectra (production stems with the harmony
    /// hold; hold_spectra only without the spatial filter; no workgroups otherwise)
    Hold,
    /// spatial.wgsl, spatial_chunks, spatial_sums then spatial_apply (production stems of
    /// stereo input with the spatial filter; no workgroups otherwise)
    Spatial,
    /// ifft.wgsl or fft_global.wgsl
    Ifft,
    /// overlap_add.wgsl
    OverlapAdd,
}

impl Step {
    /// All steps in table order.
    pub const ALL: [Step; 13] = [
        Step::Frame,
        Step::Fft,
        Step::Magnitude,
        Step::MedianTime,
        Step::MedianFreq,
        Step::MedianSteady,
        Step::LineInput,
        Step::Mask,
        Step::Production,
        Step::Hold,
        Step::Spatial,
        Step::Ifft,
        Step::OverlapAdd,
    ];

    /// The `hpr` block: one submission.
    pub const HPR: [Step; 8] = [
        Step::Frame,
        Step::Fft,
        Step::Magnitude,
        Step::MedianTime,
        Step::MedianFreq,
        Step::Mask,
        Step::Ifft,
        Step::OverlapAdd,
    ];

    /// A production block's first submission: spectra, medians and the pitch lines' input.
    pub const ANALYSIS: [Step; 7] = [
        Step::Frame,
        Step::Fft,
        Step::Magnitude,
        Step::MedianTime,
        Step::MedianFreq,
        Step::MedianSteady,
        Step::LineInput,
    ];

    /// A production block's second submission: masks, inverse transforms, overlap-add.
    pub const SYNTHESIS: [Step; 5] = [
        Step::Production,
        Step::Hold,
        Step::Spatial,
        Step::Ifft,
        Step::OverlapAdd,
    ];

    /// A production block without pitch lines (no bass or melody stem): one submission.
    pub const PRODUCTION_ONLY: [Step; 10] = [
        Step::Frame,
        Step::Fft,
        Step::Magnitude,
        Step::MedianTime,
        Step::MedianFreq,
        Step::MedianSteady,
        Step::Production,
        Step::Spatial,
        Step::Ifft,
        Step::OverlapAdd,
    ];

    /// The stage name (index into [`TIMED_STAGES`]).
    pub fn name(self) -> &'static str {
        TIMED_STAGES[self as usize]
    }
}

/// The buffers, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// The block's [`GpuParams`] uniform.
    Params,
    /// Input samples `[channel][pcm_len]`.
    Pcm,
    /// Windowed frames `[channel][held][n_fft]`.
    Frames,
    /// Spectra `[channel][held][bins]` complex.
    Spectra,
    /// Magnitudes `[channel][held][bins]`.
    Mag,
    /// Time medians `[channel][out][bins]`.
    Harm,
    /// Frequency medians `[channel][out][bins]`.
    Perc,
    /// Frequency medians at the steady grid's points `[channel][points][bins]` (production).
    PercPoints,
    /// Steady estimates `[channel][steady_rows][bins]` (production stems).
    Steady,
    /// Masked spectra `[channel][out][stem][bins]` complex.
    StemSpectra,
    /// The five production masks `[channel][out][5][bins]` (spatial filter or harmony hold).
    StemMasks,
    /// The spatial filter's covariances `[segment][5][4][bins]` (spatial filter only).
    SpatialCov,
    /// The spatial filter's sums per chunk of frames `[chunk][5][4][bins]` (spatial filter only).
    SpatialPartials,
    /// The harmony hold's points `[point][channel][hold_bins]` (harmony hold only).
    HoldPoints,
    /// The harmony hold's floors `[point][channel][hold_bins]` (harmony hold only; the carried
    /// points' uploaded).
    HoldFloors,
    /// Windowed inverse frames `[channel][out][stem][n_fft]`.
    StemFrames,
    /// Global FFT ping-pong buffer A.
    CplxA,
    /// Global FFT ping-pong buffer B.
    CplxB,
    /// Periodic window sum-square `[hop]`.
    WssPeriodic,
    /// Window sum-square of the emitted edge samples.
    WssEdge,
    /// Stem samples `[stem][channel][emit_count]`.
    Out,
    /// Low-register weight per bin `[bins]` (production stems; uploaded once).
    Low,
    /// Pitch lines `[out][2]`: bass and melody f0 per output frame (production stems).
    Lines,
    /// The pitch lines' input `[harm][line_bins + bins]` (production stems).
    LineIn,
}

/// The buffers a block's stages write (every intermediate and the output): what must fit the
/// device's limits, and what tests poison before each block.
pub(crate) const WRITTEN_BY_A_BLOCK: [Buf; 18] = [
    Buf::Frames,
    Buf::Spectra,
    Buf::Mag,
    Buf::Harm,
    Buf::Perc,
    Buf::PercPoints,
    Buf::Steady,
    Buf::StemSpectra,
    Buf::StemMasks,
    Buf::SpatialCov,
    Buf::SpatialPartials,
    Buf::HoldPoints,
    Buf::HoldFloors,
    Buf::StemFrames,
    Buf::CplxA,
    Buf::CplxB,
    Buf::Out,
    Buf::LineIn,
];

const BUFS: [Buf; 24] = [
    Buf::Params,
    Buf::Pcm,
    Buf::Frames,
    Buf::Spectra,
    Buf::Mag,
    Buf::Harm,
    Buf::Perc,
    Buf::PercPoints,
    Buf::Steady,
    Buf::StemSpectra,
    Buf::StemMasks,
    Buf::SpatialCov,
    Buf::SpatialPartials,
    Buf::HoldPoints,
    Buf::HoldFloors,
    Buf::StemFrames,
    Buf::CplxA,
    Buf::CplxB,
    Buf::WssPeriodic,
    Buf::WssEdge,
    Buf::Out,
    Buf::Low,
    Buf::Lines,
    Buf::LineIn,
];

/// Bytes each buffer needs for a block with `p` (and `wss_edge_len` edge values).
pub fn buffer_bytes(buf: Buf, p: &GpuParams, path: FftPath, wss_edge_len: usize) -> u64 {
    let c = p.channels as u64;
    let held = p.held_frames as u64;
    let out = p.out_frames as u64;
    let inv = p.inverted_stems as u64;
    let n = p.n_fft as u64;
    let bins = p.bins as u64;
    match buf {
        Buf::Params => std::mem::size_of::<GpuParams>() as u64,
        Buf::Pcm => c * p.pcm_len as u64 * 4,
        Buf::Frames => c * held * n * 4,
        Buf::Spectra => c * held * bins * 8,
        Buf::Mag => c * held * bins * 4,
        Buf::Harm => c * p.harm_frames as u64 * bins * 4,
        Buf::Perc => c * out * bins * 4,
        Buf::PercPoints => c * p.points_frames as u64 * bins * 4,
        Buf::Steady => c * p.steady_rows as u64 * bins * 4,
        Buf::StemSpectra => c * out * inv * bins * 8,
        Buf::StemMasks if masks_alone(p) => c * out * 5 * bins * 4,
        Buf::SpatialCov => {
            spatial_segments(p) as u64 * SPATIAL_COV_BYTES_PER_BIN * p.spatial_bins as u64
        }
        Buf::StemMasks => 0,
        Buf::SpatialPartials => {
            spatial_chunks(p) as u64 * SPATIAL_COV_BYTES_PER_BIN * p.spatial_bins as u64
        }
        Buf::HoldPoints | Buf::HoldFloors => {
            hold_point_count(p) as u64 * c * p.hold_bins as u64 * 4
        }
        Buf::StemFrames => c * out * inv * n * 4,
        Buf::CplxA | Buf::CplxB => match path {
            FftPath::Workgroup => 0,
            FftPath::Global => c * held.max(out * inv) * n * 4,
        },
        Buf::WssPeriodic => p.hop_length as u64 * 4,
        Buf::WssEdge => wss_edge_len as u64 * 4,
        Buf::Out => p.n_stems as u64 * c * p.emit_count as u64 * 4,
        Buf::Low => bins * 4,
        Buf::Lines => out * (8 + 4 * crate::production::PROFILE_PARTIALS as u64),
        Buf::LineIn => p.harm_frames as u64 * (p.line_bins as u64 + bins) * 4,
    }
}

/// Bytes of one segment's covariances per bin: five stems, four rows of f32.
pub const SPATIAL_COV_BYTES_PER_BIN: u64 = 5 * 4 * 4;

/// Smallest buffer created (bindings must not be empty).
const MIN_BUFFER: u64 = 256;

/// One dispatch: the stage, its pass parameters (global FFT passes) and its bind group.
struct Dispatch {
    stage: Stage,
    pass: Option<PassParams>,
    bind_group: wgpu::BindGroup,
}

/// Timestamp queries: a begin and an end per step.
struct Timestamps {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

/// Buffers, bind groups and the staging buffer of one engine (or stage runner).
pub struct Resources {
    ctx: Arc<GpuContext>,
    pipelines: Arc<Pipelines>,
    buffers: Vec<wgpu::Buffer>,
    steps: Vec<Vec<Dispatch>>,
    staging: wgpu::Buffer,
    timestamps: Option<Timestamps>,
    limit: u64,
}

/// Bytes of resolved timestamps (a begin and an end per step).
pub const TIMESTAMP_BYTES: u64 = 8 * 2 * Step::ALL.len() as u64;

impl Resources {
    /// Minimal buffers for `pipelines`; `timestamps` asks for timing queries (when the device can).
    pub fn new(ctx: Arc<GpuContext>, pipelines: Arc<Pipelines>, timestamps: bool) -> Self {
        let device = ctx.device();
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let buffers = BUFS
            .iter()
            .map(|&b| create_buffer(device, b, MIN_BUFFER))
            .collect();
        let staging = create_staging(device, MIN_BUFFER);
        let timestamps = (timestamps && ctx.has_timestamps()).then(|| Timestamps {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("stage timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * Step::ALL.len() as u32,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: TIMESTAMP_BYTES,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        });
        let mut r = Resources {
            ctx,
            pipelines,
            buffers,
            steps: Vec::new(),
            staging,
            timestamps,
            limit,
        };
        r.rebuild_bind_groups();
        r
    }

    /// The pipelines in use.
    pub fn pipelines(&self) -> &Arc<Pipelines> {
        &self.pipelines
    }

    /// Whether steps are timed.
    pub fn timed(&self) -> bool {
        self.timestamps.is_some()
    }

    /// A buffer.
    pub fn buffer(&self, buf: Buf) -> &wgpu::Buffer {
        &self.buffers[buf as usize]
    }

    /// Makes every buffer large enough for `p` (and the staging buffer for `readback` bytes),
    /// growing with headroom and rebuilding the bind groups when anything grew.
    ///
    /// # Errors
    /// [`Error::Gpu`] when a buffer would exceed the device's binding limit.
    pub fn ensure(&mut self, p: &GpuParams, wss_edge_len: usize, readback: u64) -> Result<()> {
        let device = self.ctx.device().clone();
        let path = self.pipelines.path();
        let mut grew = false;
        for &b in &BUFS {
            let need = buffer_bytes(b, p, path, wss_edge_len);
            if need > self.limit {
                return Err(Error::Gpu(format!(
                    "buffer {b:?} needs {need} bytes; the device binds at most {}",
                    self.limit
                )));
            }
            if need > self.buffers[b as usize].size() {
                let size = grown(need, self.limit);
                self.buffers[b as usize] = create_buffer(&device, b, size);
                grew = true;
            }
        }
        let staging_need = staging_offset(readback) + TIMESTAMP_BYTES;
        if staging_need > self.staging.size() {
            self.staging = create_staging(&device, grown(staging_need, u64::MAX));
        }
        if grew {
            self.rebuild_bind_groups();
        }
        Ok(())
    }

    fn rebuild_bind_groups(&mut self) {
        let device = self.ctx.device();
        let p = &self.pipelines;
        let buf = |b: Buf| self.buffers[b as usize].as_entire_binding();
        let one = |stage: Stage, res: &[wgpu::BindingResource<'_>]| Dispatch {
            stage,
            pass: None,
            bind_group: p.bind_group(device, stage, res),
        };
        let params = || buf(Buf::Params);
        let twiddles = || p.twiddles.as_entire_binding();
        let window = || p.window.as_entire_binding();
        let mut steps: Vec<Vec<Dispatch>> = Vec::new();
        steps.push(vec![one(
            Stage::Frame,
            &[params(), buf(Buf::Pcm), window(), buf(Buf::Frames)],
        )]);
        match p.path() {
            FftPath::Workgroup => steps.push(vec![one(
                Stage::Fft,
                &[params(), buf(Buf::Frames), twiddles(), buf(Buf::Spectra)],
            )]),
            FftPath::Global => {
                let mut list = Vec::new();
                let mut last = Buf::Frames;
                for (i, pass) in p.forward_passes.iter().enumerate() {
                    let src = if i == 0 { Buf::Frames } else { last };
                    let dst = if i % 2 == 0 { Buf::CplxA } else { Buf::CplxB };
                    list.push(Dispatch {
                        stage: Stage::FftGlobalPass,
                        pass: Some(*pass),
                        bind_group: p.bind_group(
                            device,
                            Stage::FftGlobalPass,
                            &[params(), p.pass_binding(i), buf(src), buf(dst), twiddles()],
                        ),
                    });
                    last = dst;
                }
                list.push(one(
                    Stage::FftGlobalPost,
                    &[params(), buf(last), buf(Buf::Spectra), twiddles()],
                ));
                steps.push(list);
            }
        }
        steps.push(vec![one(
            Stage::Magnitude,
            &[params(), buf(Buf::Spectra), buf(Buf::Mag)],
        )]);
        steps.push(vec![one(
            Stage::MedianTime,
            &[params(), buf(Buf::Mag), buf(Buf::Harm)],
        )]);
        steps.push(vec![one(
            Stage::MedianFreq,
            &[params(), buf(Buf::Mag), buf(Buf::Perc)],
        )]);
        steps.push(vec![
            one(
                Stage::MedianFreqPoints,
                &[params(), buf(Buf::Mag), buf(Buf::PercPoints)],
            ),
            one(
                Stage::MedianSteady,
                &[params(), buf(Buf::PercPoints), buf(Buf::Steady)],
            ),
        ]);
        steps.push(vec![one(
            Stage::LineInput,
            &[params(), buf(Buf::Harm), buf(Buf::Mag), buf(Buf::LineIn)],
        )]);
        steps.push(vec![one(
            Stage::Mask,
            &[
                params(),
                buf(Buf::Spectra),
                buf(Buf::Harm),
                buf(Buf::Perc),
                buf(Buf::StemSpectra),
            ],
        )]);
        // Either the stem spectra or (spatial filter) the masks: the other has no workgroups.
        steps.push(vec![
            one(
                Stage::Production,
                &[
                    params(),
                    buf(Buf::Spectra),
                    buf(Buf::Harm),
                    buf(Buf::Perc),
                    buf(Buf::Low),
                    buf(Buf::Lines),
                    buf(Buf::StemSpectra),
                    buf(Buf::Mag),
                    buf(Buf::Steady),
                ],
            ),
            one(
                Stage::ProductionMasks,
                &[
                    params(),
                    buf(Buf::Harm),
                    buf(Buf::Perc),
                    buf(Buf::Low),
                    buf(Buf::Lines),
                    buf(Buf::Mag),
                    buf(Buf::Steady),
                    buf(Buf::StemMasks),
                ],
            ),
        ]);
        steps.push(vec![
            one(
                Stage::HoldPoints,
                &[
                    params(),
                    buf(Buf::StemMasks),
                    buf(Buf::Mag),
                    buf(Buf::HoldPoints),
                ],
            ),
            one(
                Stage::HoldFloors,
                &[params(), buf(Buf::HoldPoints), buf(Buf::HoldFloors)],
            ),
            one(
                Stage::HoldSpectra,
                &[
                    params(),
                    buf(Buf::Spectra),
                    buf(Buf::StemMasks),
                    buf(Buf::Mag),
                    buf(Buf::Lines),
                    buf(Buf::HoldFloors),
                    buf(Buf::StemSpectra),
                ],
            ),
        ]);
        steps.push(vec![
            one(
                Stage::SpatialChunks,
                &[
                    params(),
                    buf(Buf::Spectra),
                    buf(Buf::StemMasks),
                    buf(Buf::SpatialPartials),
                ],
            ),
            one(
                Stage::SpatialSums,
                &[params(), buf(Buf::SpatialCov), buf(Buf::SpatialPartials)],
            ),
            one(
                Stage::SpatialApply,
                &[
                    params(),
                    buf(Buf::Spectra),
                    buf(Buf::StemMasks),
                    buf(Buf::SpatialCov),
                    buf(Buf::StemSpectra),
                    buf(Buf::Lines),
                    buf(Buf::Mag),
                    buf(Buf::HoldFloors),
                ],
            ),
        ]);
        match p.path() {
            FftPath::Workgroup => steps.push(vec![one(
                Stage::Ifft,
                &[
                    params(),
                    buf(Buf::StemSpectra),
                    twiddles(),
                    window(),
                    buf(Buf::StemFrames),
                ],
            )]),
            FftPath::Global => {
                let mut list = vec![one(
                    Stage::IfftGlobalPre,
                    &[params(), buf(Buf::StemSpectra), buf(Buf::CplxA), twiddles()],
                )];
                let mut last = Buf::CplxA;
                let first_index = p.forward_passes.len();
                for (i, pass) in p.inverse_passes.iter().enumerate() {
                    let (src, dst) = if i % 2 == 0 {
                        (Buf::CplxA, Buf::CplxB)
                    } else {
                        (Buf::CplxB, Buf::CplxA)
                    };
                    list.push(Dispatch {
                        stage: Stage::FftGlobalPass,
                        pass: Some(*pass),
                        bind_group: p.bind_group(
                            device,
                            Stage::FftGlobalPass,
                            &[
                                params(),
                                p.pass_binding(first_index + i),
                                buf(src),
                                buf(dst),
                                twiddles(),
                            ],
                        ),
                    });
                    last = dst;
                }
                list.push(one(
                    Stage::IfftGlobalPost,
                    &[params(), buf(last), buf(Buf::StemFrames), window()],
                ));
                steps.push(list);
            }
        }
        steps.push(vec![one(
            Stage::OverlapAdd,
            &[
                params(),
                buf(Buf::StemFrames),
                buf(Buf::Pcm),
                buf(Buf::WssPeriodic),
                buf(Buf::WssEdge),
                buf(Buf::Out),
            ],
        )]);
        self.steps = steps;
    }

    /// Writes `data` at the start of a buffer (queued; lands before the next submission).
    pub fn write(&self, buf: Buf, data: &[u8]) {
        if !data.is_empty() {
            self.ctx
                .queue()
                .write_buffer(&self.buffers[buf as usize], 0, data);
        }
    }

    /// Fills a whole buffer with NaN, so an element a stage fails to write shows up.
    pub fn poison(&self, buf: Buf) {
        let b = &self.buffers[buf as usize];
        let nan = vec![f32::NAN; (b.size() / 4) as usize];
        self.ctx
            .queue()
            .write_buffer(b, 0, bytemuck::cast_slice(&nan));
    }

    /// Records `steps` with `params` into `encoder`, one compute pass each (timed when enabled).
    /// Returns the number of dispatches recorded.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: &GpuParams,
        steps: &[Step],
    ) -> u64 {
        let mut dispatches = 0;
        for (k, &step) in steps.iter().enumerate() {
            let i = step as usize;
            // Queries by position in this submission, so one contiguous range resolves them.
            let timestamp_writes =
                self.timestamps
                    .as_ref()
                    .map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.queries,
                        beginning_of_pass_write_index: Some(2 * k as u32),
                        end_of_pass_write_index: Some(2 * k as u32 + 1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(step.name()),
                timestamp_writes,
            });
            for d in &self.steps[i] {
                pass.set_pipeline(&self.pipelines.stage(d.stage).pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                let [x, y, z] = workgroups(d.stage, params, d.pass.as_ref());
                pass.dispatch_workgroups(x, y, z);
                dispatches += 1;
            }
        }
        dispatches
    }

    /// Records the copy of `regions` (buffer, byte offset, bytes; one after the other) and, when
    /// timed, the timestamps of `steps` (the steps this submission ran) into the staging buffer.
    /// Returns the bytes of the regions.
    pub fn record_readback(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        regions: &[(Buf, u64, u64)],
        steps: &[Step],
    ) -> u64 {
        let mut bytes = 0;
        for &(buf, offset, len) in regions {
            if len > 0 {
                let src = &self.buffers[buf as usize];
                encoder.copy_buffer_to_buffer(src, offset, &self.staging, bytes, len);
                bytes += len;
            }
        }
        if let Some(t) = &self.timestamps {
            if !steps.is_empty() {
                encoder.resolve_query_set(&t.queries, 0..2 * steps.len() as u32, &t.resolve, 0);
            }
            encoder.copy_buffer_to_buffer(
                &t.resolve,
                0,
                &self.staging,
                staging_offset(bytes),
                TIMESTAMP_BYTES,
            );
        }
        bytes
    }

    /// After the submission: maps the staging buffer and hands `read` its first `bytes` bytes;
    /// returns the nanoseconds of each of `steps` (the steps the submission ran; 0 for the
    /// others) when timed.
    ///
    /// # Errors
    /// [`Error::Gpu`] when mapping fails or wgpu reported an error during the block.
    pub fn read_staging(
        &self,
        bytes: u64,
        during: &str,
        steps: &[Step],
        read: impl FnOnce(&[u8]),
    ) -> Result<Option<[u64; Step::ALL.len()]>> {
        let total = if self.timestamps.is_some() {
            staging_offset(bytes) + TIMESTAMP_BYTES
        } else {
            bytes
        };
        if total == 0 {
            self.ctx.wait(during)?;
            read(&[]);
            return Ok(None);
        }
        let slice = self.staging.slice(..total);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.wait(during)?;
        rx.recv()
            .map_err(|_| Error::Gpu(format!("{during}: the readback was dropped")))?
            .map_err(|e| Error::Gpu(format!("{during}: mapping the readback: {e}")))?;
        let times = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("{during}: mapping the readback: {e}")))?;
            read(&view[..bytes as usize]);
            self.timestamps.as_ref().map(|_| {
                let at = staging_offset(bytes) as usize;
                let ticks: &[u64] = bytemuck::cast_slice(&view[at..at + TIMESTAMP_BYTES as usize]);
                let period = self.ctx.queue().get_timestamp_period() as f64;
                let mut ns = [0u64; Step::ALL.len()];
                for (k, &step) in steps.iter().enumerate() {
                    let d = ticks[2 * k + 1].saturating_sub(ticks[2 * k]);
                    ns[step as usize] = (d as f64 * period) as u64;
                }
                ns
            })
        };
        self.staging.unmap();
        self.ctx.check(during)?;
        Ok(times)
    }
}

/// Where the timestamps go in the staging buffer: after `bytes`, 256-aligned.
fn staging_offset(bytes: u64) -> u64 {
    bytes.next_multiple_of(256)
}

/// A capacity for `need` bytes with a quarter of headroom, within `limit`.
fn grown(need: u64, limit: u64) -> u64 {
    (need + need / 4)
        .next_multiple_of(256)
        .min(limit.max(need))
        .max(MIN_BUFFER)
}

fn create_buffer(device: &wgpu::Device, buf: Buf, size: u64) -> wgpu::Buffer {
    let usage = match buf {
        Buf::Params => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        _ => {
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
        }
    };
    let size = if buf == Buf::Params {
        std::mem::size_of::<GpuParams>() as u64
    } else {
        size.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
            .max(MIN_BUFFER)
    };
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(match buf {
            Buf::Params => "params",
            Buf::Pcm => "pcm",
            Buf::Frames => "frames",
            Buf::Spectra => "spectra",
            Buf::Mag => "mag",
            Buf::Harm => "harm",
            Buf::Perc => "perc",
            Buf::PercPoints => "perc_points",
            Buf::Steady => "steady",
            Buf::StemSpectra => "stem spectra",
            Buf::StemMasks => "stem masks",
            Buf::SpatialCov => "spatial covariances",
            Buf::SpatialPartials => "spatial chunk sums",
            Buf::HoldPoints => "hold points",
            Buf::HoldFloors => "hold floors",
            Buf::StemFrames => "stem frames",
            Buf::CplxA => "fft a",
            Buf::CplxB => "fft b",
            Buf::WssPeriodic => "wss periodic",
            Buf::WssEdge => "wss edge",
            Buf::Out => "out",
            Buf::Low => "low register",
            Buf::Lines => "lines",
            Buf::LineIn => "line input",
        }),
        size,
        usage,
        mapped_at_creation: false,
    })
}

fn create_staging(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}
