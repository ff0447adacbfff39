//! The stage table: every GPU stage in one place (name, shader files, entry point, workgroup
//! size, bindings in order, workgroup memory), and the pipelines built from it once per context
//! and FFT size, in the manner of vello's `shaders.rs`.
//!
//! Each stage's shader is the generated constants ([`shader_prelude`]), then
//! `shaders/common.wgsl`, then its files, embedded with `include_str!`. Workgroup memory is checked against the device's
//! `max_compute_workgroup_storage_size` here, because neither wgpu nor every driver checks it.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::params::{stockham_passes, GpuParams, PassParams, PASS_STRIDE};

/// `shaders/common.wgsl`: the uniform structs and helpers every stage shares.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");
const FRAME: &str = include_str!("../../shaders/frame.wgsl");
const FFT_CORE: &str = include_str!("../../shaders/fft_core.wgsl");
const FFT: &str = include_str!("../../shaders/fft.wgsl");
const FFT_GLOBAL: &str = include_str!("../../shaders/fft_global.wgsl");
const MAGNITUDE: &str = include_str!("../../shaders/magnitude.wgsl");
const MEDIAN: &str = include_str!("../../shaders/median.wgsl");
const SELECT: &str = include_str!("../../shaders/select.wgsl");
const MASK: &str = include_str!("../../shaders/mask.wgsl");
const IFFT: &str = include_str!("../../shaders/ifft.wgsl");
const OVERLAP_ADD: &str = include_str!("../../shaders/overlap_add.wgsl");
const PRODUCTION: &str = include_str!("../../shaders/production.wgsl");
const SPATIAL: &str = include_str!("../../shaders/spatial.wgsl");
const HOLD: &str = include_str!("../../shaders/hold.wgsl");

/// Every compute stage, in pipeline order. The FFT stages come in two forms: workgroup memory
/// (`Fft`, `Ifft`) and global memory (`FftGlobal*`, `IfftGlobal*`) for sizes too large for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Centred windowed frames.
    Frame,
    /// Forward real FFT in workgroup memory.
    Fft,
    /// One Stockham pass in global memory (forward or inverse).
    FftGlobalPass,
    /// Forward real split after the global passes.
    FftGlobalPost,
    /// |X|.
    Magnitude,
    /// Median along time (harmonic).
    MedianTime,
    /// Median along frequency (percussive).
    MedianFreq,
    /// Median along frequency at the steady grid's points (production stems).
    MedianFreqPoints,
    /// Median along time of those (the production stems' steady estimate).
    MedianSteady,
    /// Masks applied to the spectrum.
    Mask,
    /// Channel sums the production stems' pitch lines are tracked on.
    LineInput,
    /// The production stems' masks applied to the spectrum.
    Production,
    /// The production stems' five masks alone (for the spatial filter and the harmony hold).
    ProductionMasks,
    /// The harmony hold's points: the harmony's amplitude at its grid frames.
    HoldPoints,
    /// The harmony hold's floors: each point's mean over the points near it in its segment.
    HoldFloors,
    /// The held masks applied to the spectrum (without the spatial filter).
    HoldSpectra,
    /// The spatial filter's sums per chunk of frames (production stems of stereo input).
    SpatialChunks,
    /// The spatial filter's covariances per segment, from the chunks' sums.
    SpatialSums,
    /// The spatial filter applied: the stem spectra from the masks and covariances.
    SpatialApply,
    /// Inverse real FFT in workgroup memory, scaled and windowed.
    Ifft,
    /// Real merge before the global inverse passes.
    IfftGlobalPre,
    /// Scale and window after the global inverse passes.
    IfftGlobalPost,
    /// Gather overlap-add, normalisation and the remainder stem.
    OverlapAdd,
}

/// How a stage binds a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<uniform>`.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// One binding of a stage: its index in group 0, the WGSL name, the access.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// `@binding(index)` in group 0.
    pub index: u32,
    /// The WGSL variable.
    pub name: &'static str,
    /// Uniform, read-only or read-write storage.
    pub access: Access,
}

const fn b(index: u32, name: &'static str, access: Access) -> Binding {
    Binding {
        index,
        name,
        access,
    }
}

/// One row of the stage table.
#[derive(Clone, Copy)]
pub struct StageDesc {
    /// The stage.
    pub stage: Stage,
    /// The CPU twin's stage name (`crate::stages::<twin>`); also the timing group.
    pub twin: &'static str,
    /// Shader files after `common.wgsl`, for messages.
    pub files: &'static str,
    /// Their sources, concatenated in order after the prelude and `common.wgsl`.
    pub sources: &'static [&'static str],
    /// The `@compute` entry point.
    pub entry_point: &'static str,
    /// Invocations per workgroup (x), as a function of n_fft.
    pub workgroup_size: fn(usize) -> u32,
    /// Bindings of group 0, in binding order.
    pub bindings: &'static [Binding],
    /// Bytes of `var<workgroup>` memory, as a function of n_fft.
    pub workgroup_bytes: fn(usize) -> u64,
}

impl std::fmt::Debug for StageDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageDesc")
            .field("stage", &self.stage)
            .field("entry_point", &self.entry_point)
            .finish()
    }
}

use Access::{Read, ReadWrite, Uniform};

/// Workgroup size of the workgroup FFTs: N/8 (one radix-4 butterfly per invocation) up to 256.
pub fn fft_workgroup_size(n_fft: usize) -> u32 {
    (n_fft / 8).clamp(1, 256) as u32
}

/// Workgroup memory of the workgroup FFTs: N/2 complex f32 values.
pub fn fft_workgroup_bytes(n_fft: usize) -> u64 {
    (n_fft / 2 * 8) as u64
}

const fn fixed<const N: u32>(_: usize) -> u32 {
    N
}

const fn none(_: usize) -> u64 {
    0
}

/// The table: every stage, its shader, entry point, workgroup size, bindings and workgroup memory.
pub static STAGES: [StageDesc; 23] = [
    StageDesc {
        stage: Stage::Frame,
        twin: "frame",
        files: "frame.wgsl",
        sources: &[FRAME],
        entry_point: "frame",
        workgroup_size: fixed::<256>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "pcm", Read),
            b(2, "window", Read),
            b(3, "frames", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::Fft,
        twin: "fft",
        files: "fft_core.wgsl + fft.wgsl",
        sources: &[FFT_CORE, FFT],
        entry_point: "fft",
        workgroup_size: fft_workgroup_size,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "frames", Read),
            b(2, "twiddles", Read),
            b(3, "spectra", ReadWrite),
        ],
        workgroup_bytes: fft_workgroup_bytes,
    },
    StageDesc {
        stage: Stage::FftGlobalPass,
        twin: "fft",
        files: "fft_global.wgsl",
        sources: &[FFT_GLOBAL],
        entry_point: "fft_global_pass",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "pass_params", Uniform),
            b(2, "src", Read),
            b(3, "dst", ReadWrite),
            b(4, "twiddles", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::FftGlobalPost,
        twin: "fft",
        files: "fft_global.wgsl",
        sources: &[FFT_GLOBAL],
        entry_point: "fft_global_post",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "src", Read),
            b(3, "dst", ReadWrite),
            b(4, "twiddles", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::Magnitude,
        twin: "magnitude",
        files: "magnitude.wgsl",
        sources: &[MAGNITUDE],
        entry_point: "magnitude",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "mag", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::MedianTime,
        twin: "median_time",
        files: "select.wgsl, median.wgsl",
        sources: &[SELECT, MEDIAN],
        entry_point: "median_time",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "mag", Read),
            b(2, "out", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::MedianFreq,
        twin: "median_freq",
        files: "select.wgsl, median.wgsl",
        sources: &[SELECT, MEDIAN],
        entry_point: "median_freq",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "mag", Read),
            b(2, "out", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::MedianFreqPoints,
        twin: "median_steady",
        files: "select.wgsl, median.wgsl",
        sources: &[SELECT, MEDIAN],
        entry_point: "median_freq_points",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "mag", Read),
            b(2, "out", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::MedianSteady,
        twin: "median_steady",
        files: "select.wgsl, median.wgsl",
        sources: &[SELECT, MEDIAN],
        entry_point: "median_steady",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "mag", Read),
            b(2, "out", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::Mask,
        twin: "mask",
        files: "mask.wgsl",
        sources: &[MASK],
        entry_point: "mask",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "harm", Read),
            b(3, "perc", Read),
            b(4, "stem_spectra", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::LineInput,
        twin: "line_input",
        files: "select.wgsl, production.wgsl",
        sources: &[SELECT, PRODUCTION],
        entry_point: "line_input",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "harm", Read),
            b(7, "mag", Read),
            b(8, "line_in", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::Production,
        twin: "production",
        files: "select.wgsl, production.wgsl",
        sources: &[SELECT, PRODUCTION],
        entry_point: "production",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "harm", Read),
            b(3, "perc", Read),
            b(4, "low", Read),
            b(5, "lines", Read),
            b(6, "stem_spectra", ReadWrite),
            b(7, "mag", Read),
            b(9, "steady", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::ProductionMasks,
        twin: "production",
        files: "select.wgsl, production.wgsl",
        sources: &[SELECT, PRODUCTION],
        entry_point: "production_masks",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "harm", Read),
            b(3, "perc", Read),
            b(4, "low", Read),
            b(5, "lines", Read),
            b(7, "mag", Read),
            b(9, "steady", Read),
            b(10, "stem_masks", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::HoldPoints,
        twin: "hold",
        files: "hold.wgsl",
        sources: &[HOLD],
        entry_point: "hold_points",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "stem_masks", Read),
            b(3, "mag", Read),
            b(5, "points", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::HoldFloors,
        twin: "hold",
        files: "hold.wgsl",
        sources: &[HOLD],
        entry_point: "hold_floors",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(5, "points", ReadWrite),
            b(6, "floors", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::HoldSpectra,
        twin: "hold",
        files: "hold.wgsl",
        sources: &[HOLD],
        entry_point: "hold_spectra",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "stem_masks", Read),
            b(3, "mag", Read),
            b(4, "lines", Read),
            b(6, "floors", ReadWrite),
            b(7, "stem_spectra", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::SpatialChunks,
        twin: "spatial",
        files: "spatial.wgsl",
        sources: &[SPATIAL],
        entry_point: "spatial_chunks",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "stem_masks", Read),
            b(5, "partials", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::SpatialSums,
        twin: "spatial",
        files: "spatial.wgsl",
        sources: &[SPATIAL],
        entry_point: "spatial_sums",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(3, "cov", ReadWrite),
            b(5, "partials", ReadWrite),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::SpatialApply,
        twin: "spatial",
        files: "spatial.wgsl",
        sources: &[SPATIAL],
        entry_point: "spatial_apply",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "spectra", Read),
            b(2, "stem_masks", Read),
            b(3, "cov", ReadWrite),
            b(4, "stem_spectra", ReadWrite),
            b(6, "lines", Read),
            b(7, "mag", Read),
            b(8, "hold_floors", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::Ifft,
        twin: "ifft",
        files: "fft_core.wgsl + ifft.wgsl",
        sources: &[FFT_CORE, IFFT],
        entry_point: "ifft",
        workgroup_size: fft_workgroup_size,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "stem_spectra", Read),
            b(2, "twiddles", Read),
            b(3, "window", Read),
            b(4, "stem_frames", ReadWrite),
        ],
        workgroup_bytes: fft_workgroup_bytes,
    },
    StageDesc {
        stage: Stage::IfftGlobalPre,
        twin: "ifft",
        files: "fft_global.wgsl",
        sources: &[FFT_GLOBAL],
        entry_point: "ifft_global_pre",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "src", Read),
            b(3, "dst", ReadWrite),
            b(4, "twiddles", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::IfftGlobalPost,
        twin: "ifft",
        files: "fft_global.wgsl",
        sources: &[FFT_GLOBAL],
        entry_point: "ifft_global_post",
        workgroup_size: fixed::<64>,
        bindings: &[
            b(0, "params", Uniform),
            b(2, "src", Read),
            b(3, "dst", ReadWrite),
            b(5, "window", Read),
        ],
        workgroup_bytes: none,
    },
    StageDesc {
        stage: Stage::OverlapAdd,
        twin: "overlap_add",
        files: "overlap_add.wgsl",
        sources: &[OVERLAP_ADD],
        entry_point: "overlap_add",
        workgroup_size: fixed::<256>,
        bindings: &[
            b(0, "params", Uniform),
            b(1, "stem_frames", Read),
            b(2, "pcm", Read),
            b(3, "wss_periodic", Read),
            b(4, "wss_edge", Read),
            b(5, "out", ReadWrite),
        ],
        workgroup_bytes: none,
    },
];

impl Stage {
    /// Every stage, in table order.
    pub const ALL: [Stage; 23] = [
        Stage::Frame,
        Stage::Fft,
        Stage::FftGlobalPass,
        Stage::FftGlobalPost,
        Stage::Magnitude,
        Stage::MedianTime,
        Stage::MedianFreq,
        Stage::MedianFreqPoints,
        Stage::MedianSteady,
        Stage::Mask,
        Stage::LineInput,
        Stage::Production,
        Stage::ProductionMasks,
        Stage::HoldPoints,
        Stage::HoldFloors,
        Stage::HoldSpectra,
        Stage::SpatialChunks,
        Stage::SpatialSums,
        Stage::SpatialApply,
        Stage::Ifft,
        Stage::IfftGlobalPre,
        Stage::IfftGlobalPost,
        Stage::OverlapAdd,
    ];

    /// This stage's row of [`STAGES`].
    pub fn desc(self) -> &'static StageDesc {
        let d = &STAGES[self as usize];
        debug_assert_eq!(d.stage, self);
        d
    }

    /// The stages one FFT path runs, in order.
    pub fn for_path(path: FftPath) -> &'static [Stage] {
        match path {
            FftPath::Workgroup => &[
                Stage::Frame,
                Stage::Fft,
                Stage::Magnitude,
                Stage::MedianTime,
                Stage::MedianFreq,
                Stage::MedianFreqPoints,
                Stage::MedianSteady,
                Stage::Mask,
                Stage::LineInput,
                Stage::Production,
                Stage::ProductionMasks,
                Stage::HoldPoints,
                Stage::HoldFloors,
                Stage::HoldSpectra,
                Stage::SpatialChunks,
                Stage::SpatialSums,
                Stage::SpatialApply,
                Stage::Ifft,
                Stage::OverlapAdd,
            ],
            FftPath::Global => &[
                Stage::Frame,
                Stage::FftGlobalPass,
                Stage::FftGlobalPost,
                Stage::Magnitude,
                Stage::MedianTime,
                Stage::MedianFreq,
                Stage::MedianFreqPoints,
                Stage::MedianSteady,
                Stage::Mask,
                Stage::LineInput,
                Stage::Production,
                Stage::ProductionMasks,
                Stage::HoldPoints,
                Stage::HoldFloors,
                Stage::HoldSpectra,
                Stage::SpatialChunks,
                Stage::SpatialSums,
                Stage::SpatialApply,
                Stage::IfftGlobalPre,
                Stage::IfftGlobalPost,
                Stage::OverlapAdd,
            ],
        }
    }
}

/// Outputs per invocation of the median stages for kernels up to [`MEDIAN_SMALL_K`]
/// (`MEDIAN_RUN` in `shaders/median.wgsl`); larger kernels take one output per invocation.
pub const MEDIAN_RUN: u32 = 16;
/// Largest kernel the medians slide a sorted private array for (`SMALL_K` in the shader).
pub const MEDIAN_SMALL_K: u32 = 64;

/// Outputs per invocation of a median of length `k` (`run_length` in `shaders/median.wgsl`).
pub fn median_run_length(k: u32) -> u32 {
    if k > MEDIAN_SMALL_K {
        1
    } else {
        MEDIAN_RUN
    }
}

/// The timing groups of [`crate::gpu::stats::GpuStats::stage_ns`]: the CPU twins' names.
pub const TIMED_STAGES: [&str; 13] = [
    "frame",
    "fft",
    "magnitude",
    "median_time",
    "median_freq",
    "median_steady",
    "line_input",
    "mask",
    "production",
    "hold",
    "spatial",
    "ifft",
    "overlap_add",
];

/// Index of a twin name in [`TIMED_STAGES`].
pub fn timed_index(twin: &str) -> usize {
    TIMED_STAGES
        .iter()
        .position(|t| *t == twin)
        .expect("every stage's twin is timed")
}

/// Where the FFTs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FftPath {
    /// One workgroup per frame, the transform in workgroup memory (4·n_fft bytes).
    Workgroup,
    /// One dispatch per Stockham pass through global memory: any size.
    Global,
}

/// Checks a stage's workgroup memory and size against the device limits.
pub fn check_workgroup_limits(stage: Stage, n_fft: usize, limits: &wgpu::Limits) -> Result<()> {
    let d = stage.desc();
    let bytes = (d.workgroup_bytes)(n_fft);
    if bytes > limits.max_compute_workgroup_storage_size as u64 {
        return Err(Error::Gpu(format!(
            "stage {:?} ({}) needs {bytes} bytes of workgroup memory at n_fft {n_fft}; the device allows {}",
            stage, d.files, limits.max_compute_workgroup_storage_size
        )));
    }
    let size = (d.workgroup_size)(n_fft);
    if size > limits.max_compute_invocations_per_workgroup
        || size > limits.max_compute_workgroup_size_x
    {
        return Err(Error::Gpu(format!(
            "stage {stage:?} needs {size} invocations per workgroup; the device allows {}",
            limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x)
        )));
    }
    Ok(())
}

/// The workgroup FFT where every workgroup stage fits the device, else the global one.
pub fn choose_fft_path(n_fft: usize, limits: &wgpu::Limits) -> FftPath {
    let fits = Stage::for_path(FftPath::Workgroup)
        .iter()
        .all(|&s| check_workgroup_limits(s, n_fft, limits).is_ok());
    if fits {
        FftPath::Workgroup
    } else {
        FftPath::Global
    }
}

/// The constants generated for one FFT size, prepended to every shader.
pub fn shader_prelude(n_fft: usize) -> String {
    let m = n_fft / 2;
    let wg = fft_workgroup_size(n_fft);
    format!(
        "// Generated for n_fft = {n_fft} (src/gpu/pipelines.rs, shader_prelude).\n\
         const N_FFT: u32 = {n_fft}u;\n\
         const FFT_M: u32 = {m}u;\n\
         const FFT_LOG2_M: u32 = {}u;\n\
         const FFT_WG: u32 = {wg}u;\n\
         const FFT_VPT: u32 = {}u;\n",
        m.trailing_zeros(),
        m / wg as usize,
    )
}

/// The full WGSL source of `stage` at `n_fft`.
pub fn shader_source(stage: Stage, n_fft: usize) -> String {
    let mut s = shader_prelude(n_fft);
    s.push_str(COMMON);
    for part in stage.desc().sources {
        s.push('\n');
        s.push_str(part);
    }
    s
}

/// `exp(-2πi q / n)` for q in 0..n, computed in f64 by octant symmetry (exact 0 and ±1 at the
/// quarter points) and rounded once to f32, as `[re, im]` pairs.
pub fn twiddles(n: usize) -> Vec<[f32; 2]> {
    use std::f64::consts::PI;
    assert!(n.is_multiple_of(8), "twiddle table size {n}");
    let quarter = n / 4;
    (0..n)
        .map(|q| {
            let quad = q / quarter;
            let rem = q % quarter;
            // (cos, sin) of 2π·rem/n, rem in [0, n/4).
            let (c, s) = if rem * 8 <= n {
                let a = 2.0 * PI * rem as f64 / n as f64;
                (a.cos(), a.sin())
            } else {
                let a = 2.0 * PI * (quarter - rem) as f64 / n as f64;
                (a.sin(), a.cos())
            };
            let (c, s) = match quad {
                0 => (c, s),
                1 => (-s, c),
                2 => (-c, -s),
                _ => (s, -c),
            };
            [c as f32, -s as f32]
        })
        .collect()
}

/// One built stage: its bind group layout and pipeline.
#[derive(Debug)]
pub struct StagePipeline {
    /// Group 0's layout, from the table's bindings.
    pub layout: wgpu::BindGroupLayout,
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
}

/// Pipelines and constant tables for one FFT size and path, built once per context.
#[derive(Debug)]
pub struct Pipelines {
    n_fft: usize,
    path: FftPath,
    stages: Vec<Option<StagePipeline>>,
    /// Periodic Hann window, n_fft f32 (the CPU twin's values).
    pub window: wgpu::Buffer,
    /// `exp(-2πiq/n_fft)`, n_fft `vec2<f32>`.
    pub twiddles: wgpu::Buffer,
    /// Global path: forward passes then inverse passes, [`PASS_STRIDE`] bytes apart.
    pub pass_params: Option<wgpu::Buffer>,
    /// Global path: the forward passes.
    pub forward_passes: Vec<PassParams>,
    /// Global path: the inverse passes.
    pub inverse_passes: Vec<PassParams>,
    /// Bytes uploaded to build the constant tables.
    pub setup_bytes: u64,
}

impl Pipelines {
    /// Builds every stage `path` runs at `n_fft`, checking workgroup limits first.
    ///
    /// # Errors
    /// [`Error::Gpu`] when a stage exceeds the device's limits or a shader fails to compile.
    pub fn new(ctx: &GpuContext, n_fft: usize, path: FftPath) -> Result<Self> {
        let device = ctx.device();
        let limits = ctx.limits();
        let mut stages: Vec<Option<StagePipeline>> = (0..STAGES.len()).map(|_| None).collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut modules: Vec<(&'static str, wgpu::ShaderModule)> = Vec::new();
        for &stage in Stage::for_path(path) {
            check_workgroup_limits(stage, n_fft, &limits)?;
            let d = stage.desc();
            let module = match modules.iter().find(|(f, _)| *f == d.files) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(d.files),
                        source: wgpu::ShaderSource::Wgsl(shader_source(stage, n_fft).into()),
                    });
                    modules.push((d.files, m.clone()));
                    m
                }
            };
            let entries: Vec<wgpu::BindGroupLayoutEntry> = d
                .bindings
                .iter()
                .map(|bd| wgpu::BindGroupLayoutEntry {
                    binding: bd.index,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match bd.access {
                            Access::Uniform => wgpu::BufferBindingType::Uniform,
                            Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                            Access::ReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(d.entry_point),
                entries: &entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(d.entry_point),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(d.entry_point),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(d.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    // Every stage writes its workgroup memory before reading it (the FFTs load
                    // their rows first); zero-filling cost minutes of compile time on GL.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            stages[stage as usize] = Some(StagePipeline { layout, pipeline });
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "building the pipelines for n_fft {n_fft} ({path:?} FFT): {e}"
            )));
        }

        let window_data = crate::stages::frame::hann_periodic(n_fft);
        let window = buffer_with(
            ctx,
            "window",
            bytemuck::cast_slice(&window_data),
            wgpu::BufferUsages::STORAGE,
        );
        let tw = twiddles(n_fft);
        let twiddles = buffer_with(
            ctx,
            "twiddles",
            bytemuck::cast_slice(&tw),
            wgpu::BufferUsages::STORAGE,
        );
        let mut setup_bytes = (window_data.len() * 4 + tw.len() * 8) as u64;
        let (forward_passes, inverse_passes, pass_params) = if path == FftPath::Global {
            let fwd = stockham_passes(n_fft / 2, false);
            let inv = stockham_passes(n_fft / 2, true);
            let mut bytes = vec![0u8; (fwd.len() + inv.len()) * PASS_STRIDE as usize];
            for (i, p) in fwd.iter().chain(&inv).enumerate() {
                let at = i * PASS_STRIDE as usize;
                bytes[at..at + std::mem::size_of::<PassParams>()]
                    .copy_from_slice(bytemuck::bytes_of(p));
            }
            setup_bytes += bytes.len() as u64;
            let buf = buffer_with(ctx, "pass params", &bytes, wgpu::BufferUsages::UNIFORM);
            (fwd, inv, Some(buf))
        } else {
            (Vec::new(), Vec::new(), None)
        };
        ctx.check("building the pipelines")?;
        Ok(Pipelines {
            n_fft,
            path,
            stages,
            window,
            twiddles,
            pass_params,
            forward_passes,
            inverse_passes,
            setup_bytes,
        })
    }

    /// The FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// The FFT path.
    pub fn path(&self) -> FftPath {
        self.path
    }

    /// A built stage.
    ///
    /// # Panics
    /// If `stage` is not part of this path.
    pub fn stage(&self, stage: Stage) -> &StagePipeline {
        self.stages[stage as usize]
            .as_ref()
            .unwrap_or_else(|| panic!("stage {stage:?} is not built for the {:?} FFT", self.path))
    }

    /// A bind group for `stage` from resources in the table's binding order.
    ///
    /// # Panics
    /// If the number of resources differs from the table's bindings.
    pub fn bind_group(
        &self,
        device: &wgpu::Device,
        stage: Stage,
        resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let d = stage.desc();
        assert_eq!(
            resources.len(),
            d.bindings.len(),
            "stage {stage:?}: expected {} bindings, got {}",
            d.bindings.len(),
            resources.len()
        );
        let entries: Vec<wgpu::BindGroupEntry> = d
            .bindings
            .iter()
            .zip(resources)
            .map(|(bd, r)| wgpu::BindGroupEntry {
                binding: bd.index,
                resource: r.clone(),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(d.entry_point),
            layout: &self.stage(stage).layout,
            entries: &entries,
        })
    }

    /// The pass uniform of global-path pass `index` (forward passes first, then inverse).
    pub fn pass_binding(&self, index: usize) -> wgpu::BindingResource<'_> {
        let buffer = self
            .pass_params
            .as_ref()
            .expect("pass parameters exist on the global FFT path");
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: index as u64 * PASS_STRIDE,
            size: wgpu::BufferSize::new(std::mem::size_of::<PassParams>() as u64),
        })
    }
}

/// Workgroups to dispatch for `stage` with `params` (and, for a global pass, its pass).
/// Frames and channels go in y and z, so the count of dispatches never depends on them.
pub fn workgroups(stage: Stage, p: &GpuParams, pass: Option<&PassParams>) -> [u32; 3] {
    let wg = (stage.desc().workgroup_size)(p.n_fft as usize);
    let m = p.n_fft / 2;
    let inverse_rows = p.out_frames * p.inverted_stems;
    let ch = p.channels;
    match stage {
        Stage::Frame => [p.n_fft.div_ceil(wg), p.held_frames, ch],
        Stage::Fft => [p.held_frames, ch, 1],
        Stage::FftGlobalPass => {
            let pass = pass.expect("a global pass needs its pass parameters");
            let rows = if pass.rows_mode == 1 {
                inverse_rows
            } else {
                p.held_frames
            };
            [(m / pass.radix).div_ceil(wg), rows, ch]
        }
        Stage::FftGlobalPost | Stage::Magnitude => [p.bins.div_ceil(wg), p.held_frames, ch],
        Stage::MedianTime => {
            // Runs of taps `tap` rows apart: each group of run·tap rows takes tap invocations.
            let tap = p.harmonic_tap.max(1);
            let run = median_run_length(p.harmonic_kernel);
            [
                p.bins.div_ceil(wg),
                p.harm_frames.div_ceil(run * tap) * tap,
                ch,
            ]
        }
        Stage::MedianFreq => [
            p.bins
                .div_ceil(median_run_length(p.percussive_kernel))
                .div_ceil(wg),
            p.out_frames,
            ch,
        ],
        Stage::MedianFreqPoints => [
            p.bins
                .div_ceil(median_run_length(p.percussive_kernel))
                .div_ceil(wg),
            if p.steady_kernel == 0 {
                0
            } else {
                p.points_frames
            },
            ch,
        ],
        Stage::MedianSteady => [
            p.bins.div_ceil(wg),
            if p.steady_kernel == 0 {
                0
            } else {
                p.steady_rows.div_ceil(median_run_length(p.steady_kernel))
            },
            ch,
        ],
        Stage::Mask => [p.bins.div_ceil(wg), p.out_frames, ch],
        // One of the two runs: the stem spectra, or (spatial filter, harmony hold) the masks
        // alone.
        Stage::Production => [
            p.bins.div_ceil(wg),
            if masks_alone(p) { 0 } else { p.out_frames },
            ch,
        ],
        Stage::ProductionMasks => [
            p.bins.div_ceil(wg),
            if masks_alone(p) { p.out_frames } else { 0 },
            ch,
        ],
        Stage::HoldPoints | Stage::HoldFloors => [
            p.hold_bins.div_ceil(wg),
            hold_point_count(p) - hold_carried(p),
            ch,
        ],
        // With the spatial filter, spatial_apply holds the masks.
        Stage::HoldSpectra => [
            p.bins.div_ceil(wg),
            if p.hold_segment > 0 && p.spatial_segment == 0 {
                p.out_frames
            } else {
                0
            },
            ch,
        ],
        Stage::LineInput => [p.bins.div_ceil(wg), p.harm_frames, 1],
        Stage::SpatialChunks => [p.spatial_bins.div_ceil(wg), spatial_chunks(p), 5],
        Stage::SpatialSums => [p.spatial_bins.div_ceil(wg), spatial_sum_segments(p), 5],
        Stage::SpatialApply => [
            p.bins.div_ceil(wg),
            if p.spatial_segment == 0 {
                0
            } else {
                p.out_frames
            },
            1,
        ],
        Stage::Ifft => [inverse_rows, ch, 1],
        Stage::IfftGlobalPre | Stage::IfftGlobalPost => [m.div_ceil(wg), inverse_rows, ch],
        Stage::OverlapAdd => [p.emit_count.div_ceil(wg), 1, ch],
    }
}

/// Whether the production stage writes the five masks alone (for the spatial filter or the
/// harmony hold) rather than the stem spectra.
pub fn masks_alone(p: &GpuParams) -> bool {
    p.spatial_segment > 0 || p.hold_segment > 0
}

/// Grid points of the harmony hold a block holds (0 when off): those of output frames
/// `0 .. out_frames`, the first at or before output frame 0 (`shaders/hold.wgsl`).
pub fn hold_point_count(p: &GpuParams) -> u32 {
    match p.hold_segment {
        0 => 0,
        _ => (p.hold_phase % p.hold_stride + p.out_frames.max(1) - 1) / p.hold_stride + 1,
    }
}

/// The first of those points whose floors the block computes: the earlier ones lie in the
/// segment before its first segment boundary, and their floors are carried over.
pub fn hold_carried(p: &GpuParams) -> u32 {
    if p.hold_segment == 0 || p.hold_phase == 0 {
        return 0;
    }
    let lead = p.hold_phase % p.hold_stride;
    ((p.hold_segment - p.hold_phase + lead) / p.hold_stride).min(hold_point_count(p))
}

/// Segments of the spatial filter a block holds (0 when off): the first is carried over from
/// the previous block when the block's first frame is not on the segment grid.
pub fn spatial_segments(p: &GpuParams) -> u32 {
    match p.spatial_segment {
        0 => 0,
        seg => (p.spatial_phase + p.out_frames.max(1) - 1) / seg + 1,
    }
}

/// Chunks of the spatial filter's sums a block computes (`stages::spatial::sum_chunk` frames
/// each, from the first segment it computes; 0 when off).
pub fn spatial_chunks(p: &GpuParams) -> u32 {
    if p.spatial_segment == 0 {
        return 0;
    }
    let chunk = crate::stages::spatial::sum_chunk(p.spatial_segment as usize) as u32;
    let origin = if p.spatial_phase > 0 {
        p.spatial_segment - p.spatial_phase
    } else {
        0
    };
    p.out_frames.saturating_sub(origin).div_ceil(chunk)
}

/// Segments whose covariances the block computes: all but a carried one.
pub fn spatial_sum_segments(p: &GpuParams) -> u32 {
    spatial_segments(p).saturating_sub((p.spatial_phase > 0) as u32)
}

/// A buffer holding `contents`, written through the queue. (`create_buffer_init` maps at
/// creation and panics when the device is lost; this fails through the error sink instead.)
fn buffer_with(
    ctx: &GpuContext,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (contents.len() as u64).div_ceil(4).max(1) * 4,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue().write_buffer(&buffer, 0, contents);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    fn limits_with_workgroup_bytes(bytes: u32) -> wgpu::Limits {
        wgpu::Limits {
            max_compute_workgroup_storage_size: bytes,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_size_x: 256,
            ..wgpu::Limits::default()
        }
    }

    #[test]
    fn workgroup_fft_only_where_it_fits() {
        let small = limits_with_workgroup_bytes(16 * 1024);
        let large = limits_with_workgroup_bytes(32 * 1024);
        assert_eq!(choose_fft_path(4096, &small), FftPath::Workgroup);
        assert_eq!(choose_fft_path(8192, &small), FftPath::Global);
        assert_eq!(choose_fft_path(8192, &large), FftPath::Workgroup);
        assert_eq!(choose_fft_path(16384, &large), FftPath::Global);
        let e = check_workgroup_limits(Stage::Fft, 8192, &small).unwrap_err();
        assert!(e.to_string().contains("32768 bytes"), "{e}");
        for &s in Stage::for_path(FftPath::Global) {
            check_workgroup_limits(s, 16384, &small).unwrap();
        }
    }

    /// The table's workgroup sizes and bytes agree with what naga reads from the shaders.
    #[test]
    fn table_matches_the_shaders() {
        for n_fft in [256usize, 2048, 8192, 16384] {
            for d in &STAGES {
                let src = shader_source(d.stage, n_fft);
                let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                    panic!("{} at n_fft {n_fft}: {}", d.files, e.emit_to_string(&src))
                });
                let mut validator = naga::valid::Validator::new(
                    naga::valid::ValidationFlags::all(),
                    naga::valid::Capabilities::default(),
                );
                validator.validate(&module).unwrap_or_else(|e| {
                    panic!("{} at n_fft {n_fft}: {}", d.files, e.emit_to_string(&src))
                });
                let ep = module
                    .entry_points
                    .iter()
                    .find(|e| e.name == d.entry_point)
                    .unwrap_or_else(|| panic!("no entry point {}", d.entry_point));
                assert_eq!(
                    ep.workgroup_size,
                    [(d.workgroup_size)(n_fft), 1, 1],
                    "{} workgroup size",
                    d.entry_point
                );
                let mut layouter = naga::proc::Layouter::default();
                layouter.update(module.to_ctx()).unwrap();
                let bytes: u64 = module
                    .global_variables
                    .iter()
                    .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                    .map(|(_, g)| layouter[g.ty].size as u64)
                    .sum();
                assert_eq!(
                    bytes,
                    (d.workgroup_bytes)(n_fft),
                    "{} workgroup bytes at n_fft {n_fft}",
                    d.entry_point
                );
                // Every declared binding exists in the shader with the declared access.
                for bd in d.bindings {
                    let (_, g) = module
                        .global_variables
                        .iter()
                        .find(|(_, g)| g.name.as_deref() == Some(bd.name))
                        .unwrap_or_else(|| panic!("{}: no global {}", d.files, bd.name));
                    let rb = g.binding.as_ref().expect("bound");
                    assert_eq!((rb.group, rb.binding), (0, bd.index), "{}", bd.name);
                    let space_ok = match (bd.access, g.space) {
                        (Access::Uniform, naga::AddressSpace::Uniform) => true,
                        (Access::Read, naga::AddressSpace::Storage { access }) => {
                            !access.contains(naga::StorageAccess::STORE)
                        }
                        (Access::ReadWrite, naga::AddressSpace::Storage { access }) => {
                            access.contains(naga::StorageAccess::STORE)
                        }
                        _ => false,
                    };
                    assert!(space_ok, "{}: {} access", d.files, bd.name);
                }
            }
        }
    }

    /// The literal a `const` of `stage`'s WGSL source is set to.
    fn wgsl_constant(stage: Stage, name: &str) -> naga::Literal {
        let module = naga::front::wgsl::parse_str(&shader_source(stage, 2048)).unwrap();
        let (_, c) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no constant {name}"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(v) => v,
            ref e => panic!("{name} = {e:?}"),
        }
    }

    /// The adapter check's storage-buffer count is what the widest stage binds.
    #[test]
    fn storage_buffers_used_is_the_widest_stage() {
        let widest = STAGES
            .iter()
            .map(|d| {
                d.bindings
                    .iter()
                    .filter(|b| b.access != Access::Uniform)
                    .count()
            })
            .max()
            .unwrap();
        assert_eq!(widest as u32, crate::gpu::context::STORAGE_BUFFERS_USED);
    }

    /// The median constants the dispatch sizes depend on agree between Rust and WGSL.
    #[test]
    fn median_constants_match_the_shader() {
        use naga::Literal::U32;
        assert_eq!(
            wgsl_constant(Stage::MedianTime, "MEDIAN_RUN"),
            U32(MEDIAN_RUN)
        );
        assert_eq!(
            wgsl_constant(Stage::MedianTime, "SMALL_K"),
            U32(MEDIAN_SMALL_K)
        );
    }

    /// The bass comb's upper-partial constants agree between Rust and WGSL.
    #[test]
    fn production_constants_match_the_shader() {
        use crate::production::{
            BASS_THIRD_PEAK, BASS_UPPER_EXPONENT, PROFILE_MIN_HZ, PROFILE_PARTIALS,
        };
        use naga::Literal::{F32, U32};
        for stage in [Stage::Production, Stage::ProductionMasks] {
            let constant = |name| wgsl_constant(stage, name);
            assert_eq!(constant("BASS_UPPER_EXPONENT"), F32(BASS_UPPER_EXPONENT));
            assert_eq!(constant("BASS_THIRD_PEAK"), F32(BASS_THIRD_PEAK));
            assert_eq!(constant("PROFILE_PARTIALS"), U32(PROFILE_PARTIALS as u32));
            assert_eq!(constant("PROFILE_MIN_HZ"), F32(PROFILE_MIN_HZ));
            assert_eq!(
                constant("SUSTAIN_SOFT"),
                F32(crate::production::SUSTAIN_SOFT)
            );
        }
    }

    /// The spatial filter's constants agree between Rust and WGSL.
    #[test]
    fn spatial_constants_match_the_shader() {
        use crate::stages::spatial::{SPATIAL_FLOOR, SPATIAL_REG, SPATIAL_SHRINK, SUM_CHUNK};
        use naga::Literal::{F32, U32};
        let constant = |name| wgsl_constant(Stage::SpatialApply, name);
        assert_eq!(constant("SPATIAL_REG"), F32(SPATIAL_REG));
        assert_eq!(constant("SPATIAL_FLOOR"), F32(SPATIAL_FLOOR));
        assert_eq!(constant("SPATIAL_SHRINK"), F32(SPATIAL_SHRINK));
        assert_eq!(constant("F32_MAX"), F32(f32::MAX));
        assert_eq!(constant("SUM_CHUNK"), U32(SUM_CHUNK as u32));
    }

    #[test]
    fn twiddles_are_accurate_and_exact_at_quarters() {
        let n = 1024;
        let t = twiddles(n);
        assert_eq!(t[0], [1.0, 0.0]);
        assert_eq!(t[n / 4], [0.0, -1.0]);
        assert_eq!(t[n / 2], [-1.0, 0.0]);
        assert_eq!(t[3 * n / 4], [0.0, 1.0]);
        for (q, w) in t.iter().enumerate() {
            let a = -2.0 * std::f64::consts::PI * q as f64 / n as f64;
            assert!((w[0] as f64 - a.cos()).abs() < 1e-7);
            assert!((w[1] as f64 - a.sin()).abs() < 1e-7);
        }
    }
}
