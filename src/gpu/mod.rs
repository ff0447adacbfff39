//! The GPU engine: WGSL compute shaders in `shaders/` run the pipeline stages through wgpu.
//!
//! Each shader `shaders/<stage>.wgsl` has a CPU twin `crate::stages::<stage>` (frame → fft →
//! magnitude → median → mask → ifft → overlap_add) and is tested against it. The parts:
//! * [`context`]: adapter choice ([`AdapterSelector`], [`list_adapters`]), device, error capture;
//! * [`pipelines`]: the stage table and the pipelines built from it once per context;
//! * [`params`]: the `#[repr(C)]` uniform shared with `shaders/common.wgsl`;
//! * [`plan`]: block geometry (which frames and samples a block needs), on the CPU;
//! * [`engine`]: [`GpuSeparator`], a [`crate::BlockEngine`] that runs a block of every channel
//!   in one queue submission;
//! * [`resources`]: the buffers, bind groups and recorded dispatches of a block;
//! * [`stage_runner`]: each stage on its own, for tests and benches;
//! * [`stats`]: counters and per-stage GPU time.

pub mod context;
pub mod engine;
pub mod params;
pub mod pipelines;
pub mod plan;
pub mod resources;
pub mod stage_runner;
pub mod stats;

pub use context::{
    list_adapters, shared_test_context, AdapterSelector, AdapterSummary, GpuContext,
};
pub use engine::{GpuOptions, GpuSeparator, GpuTrackState};
pub use pipelines::FftPath;
pub use stage_runner::StageRunner;
pub use stats::GpuStats;
