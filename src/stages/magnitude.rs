//! Stage `magnitude`: |X| of each bin, as `numpy.abs` on complex64. Twin of `shaders/magnitude.wgsl`.

use realfft::num_complex::Complex32;

/// Writes `|spectrum[i]|` into `out[i]`. Computed in f64 and rounded once, which gives the
/// correctly rounded result that numpy's `hypotf` gives, and vectorises.
pub fn magnitude(spectrum: &[Complex32], out: &mut [f32]) {
    for (o, z) in out.iter_mut().zip(spectrum) {
        let (re, im) = (z.re as f64, z.im as f64);
        *o = (re * re + im * im).sqrt() as f32;
    }
}
