//! Stage `ifft`: inverse real FFT of stem spectra, scaled by 1/n_fft (as `scipy.fft.irfft`) and
//! multiplied by the synthesis window, ready for overlap-add. Twin of `shaders/ifft.wgsl`.

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner};
use std::sync::Arc;

/// A planned inverse transform of one size, shareable across threads.
#[derive(Clone)]
pub struct InverseFft {
    plan: Arc<dyn ComplexToReal<f32>>,
}

impl InverseFft {
    /// Plans an inverse transform of `n_fft` points.
    pub fn new(planner: &mut RealFftPlanner<f32>, n_fft: usize) -> Self {
        InverseFft {
            plan: planner.plan_fft_inverse(n_fft),
        }
    }

    /// Scratch length `process` needs.
    pub fn scratch_len(&self) -> usize {
        self.plan.get_scratch_len()
    }

    /// Inverse-transforms `spectrum` (destroyed; imaginary parts of DC and Nyquist are ignored,
    /// as irfft does) into `frame`, then applies `window / n_fft`.
    ///
    /// # Panics
    /// If the slice lengths do not match the plan.
    pub fn process(
        &self,
        spectrum: &mut [Complex32],
        frame: &mut [f32],
        window: &[f32],
        scratch: &mut [Complex32],
    ) {
        let last = spectrum.len() - 1;
        spectrum[0].im = 0.0;
        spectrum[last].im = 0.0;
        self.plan
            .process_with_scratch(spectrum, frame, scratch)
            .expect("inverse FFT buffer lengths match the plan");
        let scale = 1.0 / frame.len() as f32;
        for (s, &w) in frame.iter_mut().zip(window) {
            *s *= scale * w;
        }
    }
}
