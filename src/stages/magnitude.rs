//! Stage `magnitude`: |X| of each bin, as `numpy.abs` on complex64. Twin of `shaders/magnitude.wgsl`.

use realfft::num_complex::Complex32;

/// Writes `|spectrum[i]|` into `out[i]`.
pub fn magnitude(spectrum: &[Complex32], out: &mut [f32]) {
    for (o, z) in out.iter_mut().zip(spectrum) {
        *o = z.re.hypot(z.im);
    }
}
