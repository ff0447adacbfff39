//! Stage `spatial`: a multichannel Wiener filter over the production stems of a stereo signal
//! (Nugraha, Liutkus and Vincent 2016; the `norbert` post-filter of open source separators).
//!
//! The masks give each stem `j` a spectrum `S_j,c = m_j,c · X_c` per channel `c`. From those,
//! each stem gets a power `v_j = (|S_j,0|² + |S_j,1|²) / 2` per frame and bin and, over a
//! segment of frames, a spatial covariance per bin `R_j = Σ_t S_j S_jᴴ / Σ_t v_j` (2 × 2,
//! Hermitian, trace 2: where the stem sits between the speakers and how correlated its channels
//! are), regularised to `R_j + λ·I` with λ = [`SPATIAL_REG`]. The filter then gives stem `j` the
//! spectrum `v_j R_j C⁻¹ X` with `C = Σ_k v_k R_k`: a 2 × 2 matrix mask per stem instead of one
//! gain per channel, so a bin shared by a centred bass and a pad panned left is split by where
//! each sits as well as by how loud each is. The matrix masks sum to `C C⁻¹ = I`, so the stems
//! still sum to the mix.
//!
//! Segments are a grid fixed to the signal (frames `0 .. L`, `L .. 2L`, …; `L` =
//! [`segment_frames`]), so blocks made of whole segments give the same answer whatever their
//! size. Twin of `shaders/spatial.wgsl`.

use realfft::num_complex::Complex32;

/// Diagonal loading of each stem's normalised covariance (trace 2): keeps `C` invertible where
/// one stem holds a bin alone, and there gives that stem the whole bin.
pub const SPATIAL_REG: f32 = 0.01;

/// Frames in a spatial segment for an FFT of `n_fft` points: 2²¹ / n_fft (1024 frames at 2048,
/// about 11 s at hop 512 and 48 kHz; the same duration and the same bytes of stem spectra per
/// segment at any size with hop n_fft / 4).
pub fn segment_frames(n_fft: usize) -> usize {
    ((2usize << 20) / n_fft).max(1)
}

/// One stem's spatial covariance at a bin: `[[r00, r01], [conj(r01), r11]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Covariance {
    /// `R[0][0]`.
    pub r00: f32,
    /// `R[1][1]`.
    pub r11: f32,
    /// `R[0][1]`, real part.
    pub r01_re: f32,
    /// `R[0][1]`, imaginary part.
    pub r01_im: f32,
}

/// Adds one frame to a segment's sums, `sums[stem][bin]`: `Σ|S_0|²`, `Σ|S_1|²` and `Σ S_0·S̄_1`
/// as a [`Covariance`] (not yet normalised). `masks0`/`masks1` are the frame's masks
/// `[stem][bin]` for channels 0 and 1; `x0`/`x1` its spectra.
pub fn accumulate(
    x0: &[Complex32],
    x1: &[Complex32],
    masks0: &[f32],
    masks1: &[f32],
    sums: &mut [Covariance],
) {
    let bins = x0.len();
    for ((s, m0), m1) in sums
        .chunks_exact_mut(bins)
        .zip(masks0.chunks_exact(bins))
        .zip(masks1.chunks_exact(bins))
    {
        for b in 0..bins {
            let (a, c) = (x0[b] * m0[b], x1[b] * m1[b]);
            let e = &mut s[b];
            e.r00 += a.norm_sqr();
            e.r11 += c.norm_sqr();
            // a · conj(c)
            e.r01_re += a.re * c.re + a.im * c.im;
            e.r01_im += a.im * c.re - a.re * c.im;
        }
    }
}

/// Normalises a segment's sums into covariances: `R = sums / ((Σ|S_0|² + Σ|S_1|²) / 2) + λI`;
/// a stem silent over the segment at a bin gets `(1 + λ)·I` (no spatial information).
pub fn normalise(sums: &mut [Covariance]) {
    for e in sums {
        let d = 0.5 * (e.r00 + e.r11);
        *e = if d > 0.0 {
            let inv = 1.0 / d;
            Covariance {
                r00: e.r00 * inv + SPATIAL_REG,
                r11: e.r11 * inv + SPATIAL_REG,
                r01_re: e.r01_re * inv,
                r01_im: e.r01_im * inv,
            }
        } else {
            Covariance {
                r00: 1.0 + SPATIAL_REG,
                r11: 1.0 + SPATIAL_REG,
                r01_re: 0.0,
                r01_im: 0.0,
            }
        };
    }
}

/// One frame's stem spectra of channel `ch` through the filter, `out[stem][bin]`, from the
/// frame's spectra `x0`/`x1`, masks `masks0`/`masks1` (`[stem][bin]`) and the segment's
/// covariances `cov[stem][bin]`. Where the mix is silent in both channels the masks are applied
/// as they are.
pub fn apply(
    x0: &[Complex32],
    x1: &[Complex32],
    masks0: &[f32],
    masks1: &[f32],
    cov: &[Covariance],
    ch: usize,
    out: &mut [Complex32],
) {
    let bins = x0.len();
    let stems = masks0.len() / bins;
    for b in 0..bins {
        let (p0, p1) = (x0[b].norm_sqr(), x1[b].norm_sqr());
        // C = Σ v_j R_j.
        let (mut c00, mut c11, mut c01) = (0.0f32, 0.0f32, Complex32::new(0.0, 0.0));
        for j in 0..stems {
            let (m0, m1) = (masks0[j * bins + b], masks1[j * bins + b]);
            let v = 0.5 * (m0 * m0 * p0 + m1 * m1 * p1);
            let r = cov[j * bins + b];
            c00 += v * r.r00;
            c11 += v * r.r11;
            c01 += Complex32::new(v * r.r01_re, v * r.r01_im);
        }
        let det = c00 * c11 - c01.norm_sqr();
        if !(det > 0.0 && det.is_finite()) {
            for j in 0..stems {
                let (m, x) = if ch == 0 {
                    (masks0[j * bins + b], x0[b])
                } else {
                    (masks1[j * bins + b], x1[b])
                };
                out[j * bins + b] = x * m;
            }
            continue;
        }
        // y = C⁻¹ X.
        let inv = 1.0 / det;
        let y0 = (x0[b] * c11 - c01 * x1[b]) * inv;
        let y1 = (x1[b] * c00 - c01.conj() * x0[b]) * inv;
        for j in 0..stems {
            let (m0, m1) = (masks0[j * bins + b], masks1[j * bins + b]);
            let v = 0.5 * (m0 * m0 * p0 + m1 * m1 * p1);
            let r = cov[j * bins + b];
            let r01 = Complex32::new(r.r01_re, r.r01_im);
            // Row ch of v R y.
            let z = if ch == 0 {
                y0 * r.r00 + r01 * y1
            } else {
                r01.conj() * y0 + y1 * r.r11
            };
            out[j * bins + b] = z * v;
        }
    }
}
