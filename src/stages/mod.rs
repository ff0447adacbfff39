//! The CPU twins of the GPU stages, in pipeline order. Each file here has a shader of the same
//! name in `shaders/` (frame → fft → magnitude → median → mask → ifft → overlap_add) and is
//! written to be compared with it. These functions are also the production CPU path, so they
//! work on whole batches of frames and are driven in parallel by `crate::separator`.

pub mod fft;
pub mod frame;
pub mod hold;
pub mod ifft;
pub mod magnitude;
pub mod mask;
pub mod median;
pub mod overlap_add;
pub mod pitch;
pub mod spatial;
