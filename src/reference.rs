//! Slow, obviously-correct references for the fast kernels: a naive O(n²) DFT and a sort-based
//! median filter. Shipped only so tests can check the fast paths (and users can too).

use crate::stages::median::{reflect_index, window_start};
use realfft::num_complex::Complex64;

/// Naive real-input DFT in f64: bins `0 ..= n/2`, unnormalised (as `numpy.fft.rfft`).
pub fn dft_real(x: &[f32]) -> Vec<Complex64> {
    let n = x.len();
    (0..=n / 2)
        .map(|k| {
            let mut acc = Complex64::new(0.0, 0.0);
            for (i, &v) in x.iter().enumerate() {
                // Reduce the phase index first so the angle stays accurate for large n.
                let phase = -2.0 * std::f64::consts::PI * ((k * i) % n) as f64 / n as f64;
                acc += Complex64::from_polar(v as f64, phase);
            }
            acc
        })
        .collect()
}

/// Naive inverse of [`dft_real`] (as `numpy.fft.irfft` with `n` points).
pub fn idft_real(spectrum: &[Complex64], n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let mut acc = 0.0;
            for (k, &z) in spectrum.iter().enumerate().take(n / 2 + 1) {
                let phase = 2.0 * std::f64::consts::PI * ((k * i) % n) as f64 / n as f64;
                let term = z.re * phase.cos() - z.im * phase.sin();
                let interior = k != 0 && !(n.is_multiple_of(2) && k == n / 2);
                acc += if interior {
                    2.0 * term
                } else {
                    z.re * phase.cos()
                };
            }
            acc / n as f64
        })
        .collect()
}

/// `scipy.ndimage.median_filter(x, size=k, mode='reflect')` on a 1-D sequence, by sorting each window.
pub fn median_filter(x: &[f32], k: usize) -> Vec<f32> {
    let n = x.len();
    (0..n)
        .map(|i| {
            let mut w: Vec<f32> = (0..k)
                .map(|o| x[reflect_index(i as i64 + window_start(k) + o as i64, n)])
                .collect();
            w.sort_by(f32::total_cmp);
            w[k / 2]
        })
        .collect()
}
