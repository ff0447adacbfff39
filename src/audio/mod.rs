//! Audio in and out: streaming decode (hound, symphonia) to planar f32, resampling (rubato),
//! WAV encoding (hound) with temp-file-then-rename, and stem file naming.

pub mod decode;
pub mod encode;
pub mod loudness;
pub mod naming;
pub mod resample;
