//! stemkit: split mixed music masters into production stems, on the GPU (wgpu) or the CPU.
//!
//! The pipeline, in order (each stage in `stages/` has a WGSL twin of the same name):
//! decode (`audio`) → resample → frame → fft → magnitude → median → mask → ifft → overlap_add →
//! encode (`audio`). [`Separator`] runs the stages on the CPU over blocks of frames,
//! [`gpu::GpuSeparator`] runs them as WGSL compute shaders; [`Engines`] picks one per run;
//! [`pipeline::separate_file`] runs one file end to end and [`batch::run_batch`] many (a catalog:
//! folders mirrored, finished tracks skipped, shards, live reports; see [`catalog`]).

#[macro_use]
mod simd;

pub mod audio;
pub mod batch;
pub mod catalog;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod hpss;
pub mod params;
pub mod pipeline;
pub mod production;
pub mod reference;
pub mod rng;
pub mod separator;
pub mod stages;
pub mod stems;
pub mod stream;

pub use engine::{DeviceChoice, Engine, Engines};
pub use error::{Error, Result};
pub use params::{HpssParams, Kernel, StftParams};
pub use separator::{SeparationParams, SeparationSpec, Separator, SeparatorStream};
pub use stems::{Stem, StemSet};
pub use stream::{Block, BlockEngine, BlockStream};
