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
    median_filter_tapped(x, k, 1)
}

/// [`median_filter`] over `k` taps `tap` elements apart: element `i` is the median of
/// `x[i + tap · (o − k/2)]` for `o` in `0 .. k` (reflected), by sorting each window.
pub fn median_filter_tapped(x: &[f32], k: usize, tap: usize) -> Vec<f32> {
    let n = x.len();
    let tap = tap as i64;
    (0..n)
        .map(|i| {
            let mut w: Vec<f32> = (0..k)
                .map(|o| x[reflect_index(i as i64 + tap * (window_start(k) + o as i64), n)])
                .collect();
            w.sort_by(f32::total_cmp);
            w[k / 2]
        })
        .collect()
}

/// The spatial stage (`stages::spatial`) over one segment, by the book in f64: per stem and bin
/// the covariance `R_j = (Σ_t S_j S_jᴴ + εD·I) / (Σ_t v_j + εD) + λI` over the frames `t` that
/// are multiples of `stride` (`D` = Σ_j Σ_t v_j, ε = `shrink`), then per frame `W_j = v_j R_j C⁻¹` with `C = Σ_k v_k R_k` inverted as a 2 × 2
/// matrix, and `S'_j = W_j X`. `x[c]` is channel `c`'s spectra `[frame][bin]`, `masks[c]` its
/// masks `[frame][stem][bin]`; the result is `[c][frame][stem][bin]`. Where `C` is singular
/// (silence) the masks apply as they are.
pub fn spatial_filter(
    x: [&[Complex64]; 2],
    masks: [&[f64]; 2],
    bins: usize,
    stems: usize,
    (reg, shrink): (f64, f64),
    stride: usize,
) -> [Vec<Complex64>; 2] {
    type M = [[Complex64; 2]; 2];
    let frames = x[0].len() / bins;
    let zero = Complex64::new(0.0, 0.0);
    let s = |c: usize, t: usize, j: usize, b: usize| -> Complex64 {
        x[c][t * bins + b] * masks[c][(t * stems + j) * bins + b]
    };
    let v =
        |t: usize, j: usize, b: usize| (s(0, t, j, b).norm_sqr() + s(1, t, j, b).norm_sqr()) / 2.0;
    // Each stem's raw sums and power, then the power of all the stems per bin.
    let mut raw = vec![([[zero; 2]; 2], 0.0f64); stems * bins];
    for j in 0..stems {
        for b in 0..bins {
            let (r, d) = &mut raw[j * bins + b];
            for t in (0..frames).step_by(stride) {
                for (a, row) in r.iter_mut().enumerate() {
                    for (c, e) in row.iter_mut().enumerate() {
                        *e += s(a, t, j, b) * s(c, t, j, b).conj();
                    }
                }
                *d += v(t, j, b);
            }
        }
    }
    let mut cov = vec![[[zero; 2]; 2]; stems * bins];
    for b in 0..bins {
        let total: f64 = (0..stems).map(|j| raw[j * bins + b].1).sum();
        let floor = shrink * total;
        for j in 0..stems {
            let (mut r, d) = raw[j * bins + b];
            for (a, row) in r.iter_mut().enumerate() {
                for (c, e) in row.iter_mut().enumerate() {
                    let diag = if a == c { floor } else { 0.0 };
                    *e = if d + floor > 0.0 {
                        (*e + diag) / (d + floor)
                    } else if a == c {
                        Complex64::new(1.0, 0.0)
                    } else {
                        zero
                    };
                    if a == c {
                        *e += reg;
                    }
                }
            }
            cov[j * bins + b] = r;
        }
    }
    let mut out = [
        vec![zero; frames * stems * bins],
        vec![zero; frames * stems * bins],
    ];
    for t in 0..frames {
        for b in 0..bins {
            let mut c: M = [[zero; 2]; 2];
            for j in 0..stems {
                let r = cov[j * bins + b];
                for (a, row) in c.iter_mut().enumerate() {
                    for (k, e) in row.iter_mut().enumerate() {
                        *e += r[a][k] * v(t, j, b);
                    }
                }
            }
            let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
            if det.re <= 0.0 {
                // A bin silent in both channels: the masks as they are (zero).
                for j in 0..stems {
                    for (ch, o) in out.iter_mut().enumerate() {
                        o[(t * stems + j) * bins + b] = s(ch, t, j, b);
                    }
                }
                continue;
            }
            let inv: M = [
                [c[1][1] / det, -c[0][1] / det],
                [-c[1][0] / det, c[0][0] / det],
            ];
            let xs = [x[0][t * bins + b], x[1][t * bins + b]];
            for j in 0..stems {
                let r = cov[j * bins + b];
                for (ch, o) in out.iter_mut().enumerate() {
                    // (v R C⁻¹ X)[ch]
                    let mut acc = zero;
                    for k in 0..2 {
                        let mut w = zero;
                        for m in 0..2 {
                            w += r[ch][m] * inv[m][k];
                        }
                        acc += w * v(t, j, b) * xs[k];
                    }
                    o[(t * stems + j) * bins + b] = acc;
                }
            }
        }
    }
    out
}
