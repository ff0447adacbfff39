//! stemkit: split mixed music masters into production stems, on the GPU (wgpu) or the CPU.

pub mod audio;
pub mod error;
pub mod rng;

pub use error::{Error, Result};
pub mod hpss;
pub mod params;
pub mod reference;
pub mod separator;
pub mod stages;
pub mod stems;

pub use params::{HpssParams, Kernel, StftParams};
pub use separator::{SeparationParams, Separator, SeparatorStream};
pub use stems::{Stem, StemSet};
