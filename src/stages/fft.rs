//! Stage `fft`: forward real FFT of windowed frames (realfft, planned once). Twin of
//! `shaders/fft.wgsl`. Output matches `scipy.fft.rfft`: unnormalised, n_fft/2 + 1 bins.

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// A planned forward transform of one size, shareable across threads.
#[derive(Clone)]
pub struct ForwardFft {
    plan: Arc<dyn RealToComplex<f32>>,
}

impl ForwardFft {
    /// Plans a forward transform of `n_fft` points.
    pub fn new(planner: &mut RealFftPlanner<f32>, n_fft: usize) -> Self {
        ForwardFft {
            plan: planner.plan_fft_forward(n_fft),
        }
    }

    /// Scratch length `process` needs.
    pub fn scratch_len(&self) -> usize {
        self.plan.get_scratch_len()
    }

    /// Transforms `frame` (destroyed) into `spectrum` (n_fft/2 + 1 bins).
    ///
    /// # Panics
    /// If the slice lengths do not match the plan.
    pub fn process(
        &self,
        frame: &mut [f32],
        spectrum: &mut [Complex32],
        scratch: &mut [Complex32],
    ) {
        self.plan
            .process_with_scratch(frame, spectrum, scratch)
            .expect("forward FFT buffer lengths match the plan");
    }
}
