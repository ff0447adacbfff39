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
//! size. A segment's sums take every [`stats_stride`]-th frame (frames that tile the signal
//! without overlap). Twin of `shaders/spatial.wgsl`.

use crate::stages::mask::apply_mask;
use realfft::num_complex::Complex32;

/// Diagonal loading of each stem's normalised covariance (trace 2): keeps `C` invertible where
/// one stem holds a bin alone, and there gives that stem the whole bin.
pub const SPATIAL_REG: f32 = 0.1;

/// Share of all the stems' power at a bin over a segment (−30 dB) below which a stem's
/// covariance is mostly shrunk towards the identity ([`normalise`]).
pub const SPATIAL_SHRINK: f32 = 1e-3;

/// The four rows of `bins` values at the start of `s`.
#[inline(always)]
fn rows4(s: &[f32], bins: usize) -> [&[f32]; 4] {
    let (a, s) = s.split_at(bins);
    let (b, s) = s.split_at(bins);
    let (c, d) = s.split_at(bins);
    [a, b, c, &d[..bins]]
}

/// [`rows4`], mutable.
#[inline(always)]
fn rows4_mut(s: &mut [f32], bins: usize) -> [&mut [f32]; 4] {
    let (a, s) = s.split_at_mut(bins);
    let (b, s) = s.split_at_mut(bins);
    let (c, d) = s.split_at_mut(bins);
    [a, b, c, &mut d[..bins]]
}

/// Frames in a spatial segment for an FFT of `n_fft` points: 2²¹ / n_fft (1024 frames at 2048,
/// about 11 s at hop 512 and 48 kHz; the same duration and the same bytes of stem spectra per
/// segment at any size with hop n_fft / 4).
pub fn segment_frames(n_fft: usize) -> usize {
    ((2usize << 20) / n_fft).max(1)
}

/// Bins the filter acts on: those whose centre frequency is at most `max_hz` (`bin_hz` apart,
/// `bins` in all; an infinite `max_hz` gives all of them), at least one.
pub fn band_bins(max_hz: f32, bin_hz: f32, bins: usize) -> usize {
    let top = (max_hz / bin_hz).floor();
    if top >= bins as f32 {
        bins
    } else {
        (top as usize + 1).clamp(1, bins)
    }
}

/// Frames per partial sum of a segment: 64 where that divides the segment, else the whole
/// segment. A segment's sums are its chunks' sums (each in frame order from 0) added in chunk
/// order, on the CPU (chunks summed in parallel) and the GPU alike.
pub fn sum_chunk(segment: usize) -> usize {
    if segment.is_multiple_of(SUM_CHUNK) {
        SUM_CHUNK
    } else {
        segment
    }
}

/// See [`sum_chunk`].
pub const SUM_CHUNK: usize = 64;

/// Frames apart of the frames a segment's sums take, from each chunk's first: `n_fft / hop`
/// (4 at the default hop), where that divides the chunk ([`sum_chunk`]), else 1. Those frames
/// tile the signal without overlap: the frames between them see the same samples again through
/// the window, and leaving them out of an average over ~11 s moves the covariances by far less
/// than the masks' own error, while the sums cost a quarter of the frames' masks.
pub fn stats_stride(segment: usize, n_fft: usize, hop: usize) -> usize {
    let stride = (n_fft / hop.max(1)).max(1);
    if sum_chunk(segment).is_multiple_of(stride) {
        stride
    } else {
        1
    }
}

/// Rows of one stem's covariances, each `bins` long: `R[0][0]`, `R[1][1]`, `Re R[0][1]`,
/// `Im R[0][1]` (`R[1][0]` is the conjugate of `R[0][1]`). Sums and covariances are laid out
/// `[stem][row][bin]`.
pub const COV_ROWS: usize = 4;

simd_dispatch!(
    /// A frame's cross spectra, four rows of `bins` into `cross`: `|X_0|²`, `|X_1|²`, and the
    /// real and imaginary parts of `X_0·X̄_1`. The filter reads the spectra through these (a
    /// stem's `S_0·S̄_1` is `m_0·m_1·X_0·X̄_1`), computed once per frame for every stem.
    pub fn cross_spectra(x0: &[Complex32], x1: &[Complex32], cross: &mut [f32]) {
        let bins = x0.len();
        let [p0, p1, re, im] = rows4_mut(cross, bins);
        for b in 0..bins {
            let (a, c) = (x0[b], x1[b]);
            p0[b] = a.re * a.re + a.im * a.im;
            p1[b] = c.re * c.re + c.im * c.im;
            re[b] = a.re * c.re + a.im * c.im;
            im[b] = a.im * c.re - a.re * c.im;
        }
    }
);

simd_dispatch!(
    /// The first two rows of [`cross_spectra`]: `|X_0|²` and `|X_1|²` into `power`.
    fn powers(x0: &[Complex32], x1: &[Complex32], power: &mut [f32]) {
        let (p0, p1) = power.split_at_mut(x0.len());
        for b in 0..x0.len() {
            let (a, c) = (x0[b], x1[b]);
            p0[b] = a.re * a.re + a.im * a.im;
            p1[b] = c.re * c.re + c.im * c.im;
        }
    }
);

/// Adds one frame to a segment's sums (`[stem][row][bin]` over the filtered bins `0 .. k`, see
/// [`COV_ROWS`]): `Σ|S_0|²`, `Σ|S_1|²` and `Σ S_0·S̄_1`, from the frame's [`cross_spectra`] of
/// those bins (`4 × k`) and its masks `masks0`/`masks1` (`[stem][bin]` over all bins, channels 0
/// and 1).
pub fn accumulate(cross: &[f32], masks0: &[f32], masks1: &[f32], sums: &mut [f32]) {
    let k = cross.len() / 4;
    let stride = masks0.len() / (sums.len() / (COV_ROWS * k));
    let [p0, p1, qr, qi] = rows4(cross, k);
    for ((s, m0), m1) in sums
        .chunks_exact_mut(COV_ROWS * k)
        .zip(masks0.chunks_exact(stride))
        .zip(masks1.chunks_exact(stride))
    {
        let [r00, r11, re, im] = rows4_mut(s, k);
        accumulate_rows([p0, p1, qr, qi], [&m0[..k], &m1[..k]], [r00, r11, re, im]);
    }
}

simd_dispatch!(
    /// [`accumulate`] for one stem over a range of bins: `cross` the four cross-spectrum rows,
    /// `masks` the two channels' masks, `sums` the stem's four sum rows, all over those bins.
    pub fn accumulate_rows(cross: [&[f32]; 4], masks: [&[f32]; 2], sums: [&mut [f32]; 4]) {
        let [p0, p1, qr, qi] = cross;
        let [m0, m1] = masks;
        let [r00, r11, re, im] = sums;
        for b in 0..r00.len() {
            let (a, c) = (m0[b], m1[b]);
            let ac = a * c;
            r00[b] += a * a * p0[b];
            r11[b] += c * c * p1[b];
            re[b] += ac * qr[b];
            im[b] += ac * qi[b];
        }
    }
);

/// Normalises a segment's sums (`[stem][row][bin]`) into covariances. With `d_j =
/// (Σ|S_0|² + Σ|S_1|²) / 2` stem `j`'s power and `D = Σ_j d_j` all the stems' at a bin,
/// `R_j = (sums_j + εD·I) / (d_j + εD) + λI` (ε = [`SPATIAL_SHRINK`], λ = [`SPATIAL_REG`];
/// trace 2 + 2λ): a stem that holds a bin barely at all over the segment (its sums little more
/// than leakage and rounding) is shrunk towards no spatial information instead of a direction
/// learnt from noise. Where the bin is silent over the segment (`d_j + εD` below
/// [`SPATIAL_FLOOR`], where `1 / d` would overflow f32) a stem gets `(1 + λ)·I`.
pub fn normalise(sums: &mut [f32], bins: usize) {
    for b in 0..bins {
        let total: f32 = sums
            .chunks_exact(COV_ROWS * bins)
            .map(|s| 0.5 * (s[b] + s[bins + b]))
            .sum();
        let floor = SPATIAL_SHRINK * total;
        for s in sums.chunks_exact_mut(COV_ROWS * bins) {
            let [r00, r11, re, im] = rows4_mut(s, bins);
            let d = 0.5 * (r00[b] + r11[b]) + floor;
            if d > SPATIAL_FLOOR && d.is_finite() {
                let inv = 1.0 / d;
                r00[b] = (r00[b] + floor) * inv + SPATIAL_REG;
                r11[b] = (r11[b] + floor) * inv + SPATIAL_REG;
                re[b] *= inv;
                im[b] *= inv;
            } else {
                (r00[b], r11[b], re[b], im[b]) = (1.0 + SPATIAL_REG, 1.0 + SPATIAL_REG, 0.0, 0.0);
            }
        }
    }
}

/// Work buffers of [`apply`], reused across frames; rows are one tile of bins long.
#[derive(Default)]
pub struct SpatialScratch {
    /// Each stem's power `v`, `[stem][bin]`.
    v: Vec<f32>,
    /// `C = Σ v R` (four rows as [`COV_ROWS`]), then `y = C⁻¹X` (re, im of y₀ and y₁) and
    /// whether `C` was invertible (1 or 0).
    c: Vec<f32>,
    /// The tile's `|X_0|²` and `|X_1|²` (the first two rows of its [`cross_spectra`]).
    power: Vec<f32>,
}

/// Bins per tile of [`apply`]: its per-bin work (mix model, solve, stem spectra) runs tile by
/// tile so the intermediate rows stay in the L1 cache; every bin's arithmetic is the same.
const TILE: usize = 128;

/// One frame's stem spectra through the filter, both channels (the mix model and its solve
/// serve both), from the frame's spectra `x0`/`x1`, masks `masks0`/`masks1` (`[stem][bin]`)
/// and the segment's covariances `cov` (`[stem][row][bin]` over the filtered bins `0 .. k`,
/// `k` = its length / (4 × stems)), for the stems `stems` (indices into the masks) only: `out0`,
/// `out1` are `[stems][bin]`. From bin `k` on, and where the mix is silent (`tr C` below
/// [`SPATIAL_FLOOR`]), the masks are applied as they are.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    x0: &[Complex32],
    x1: &[Complex32],
    masks0: &[f32],
    masks1: &[f32],
    cov: &[f32],
    stems: &[usize],
    [out0, out1]: [&mut [Complex32]; 2],
    scratch: &mut SpatialScratch,
) {
    let bins = x0.len();
    let k = apply_filtered(
        x0,
        x1,
        masks0,
        masks1,
        cov,
        stems,
        [&mut *out0, &mut *out1],
        scratch,
    );
    // Above the filtered bins, the masks as they are.
    for ((o0, o1), &j) in out0
        .chunks_exact_mut(bins)
        .zip(out1.chunks_exact_mut(bins))
        .zip(stems)
    {
        let (m0, m1) = (&masks0[j * bins..][..bins], &masks1[j * bins..][..bins]);
        apply_mask(&x0[k..], &m0[k..], &mut o0[k..]);
        apply_mask(&x1[k..], &m1[k..], &mut o1[k..]);
    }
}

/// [`apply`] of the filtered bins only: writes bins `0 .. k` of each row of `out0`, `out1`
/// (rows of `x0.len()` bins) and returns `k`; the rest of each row is left as it was.
#[allow(clippy::too_many_arguments)]
pub fn apply_filtered(
    x0: &[Complex32],
    x1: &[Complex32],
    masks0: &[f32],
    masks1: &[f32],
    cov: &[f32],
    stems: &[usize],
    [out0, out1]: [&mut [Complex32]; 2],
    scratch: &mut SpatialScratch,
) -> usize {
    let bins = x0.len();
    let n = masks0.len() / bins;
    let k = cov.len() / (COV_ROWS * n);
    let w = TILE.min(k);
    scratch.v.resize(n * w, 0.0);
    scratch.power.resize(2 * w, 0.0);
    scratch.c.resize(9 * w, 0.0);
    let rows = Rows { bins, k };
    let mut lo = 0;
    while lo < k {
        let hi = (lo + TILE).min(k);
        let t = hi - lo;
        let (v, power, c) = (
            &mut scratch.v[..n * t],
            &mut scratch.power[..2 * t],
            &mut scratch.c[..9 * t],
        );
        powers(&x0[lo..hi], &x1[lo..hi], power);
        // The mix model sums into the first four rows; solve writes the rest.
        c[..4 * t].fill(0.0);
        mix_model(power, [masks0, masks1], cov, rows, lo, v, c);
        solve(&x0[lo..hi], &x1[lo..hi], c);
        stem_spectra(
            [x0, x1],
            [masks0, masks1],
            cov,
            rows,
            lo,
            v,
            c,
            stems,
            [&mut *out0, &mut *out1],
        );
        lo = hi;
    }
    k
}

/// Row lengths of [`apply`]'s inputs: masks rows of `bins`, covariance rows of `k`.
#[derive(Clone, Copy)]
struct Rows {
    bins: usize,
    k: usize,
}

simd_dispatch!(
    /// For the tile of bins `lo ..` (`power` rows long): `v_j` per stem into `v` (`[stem][bin]`
    /// of the tile), and `C = Σ_j v_j R_j` into the first four rows of `c`.
    fn mix_model(
        power: &[f32],
        masks: [&[f32]; 2],
        cov: &[f32],
        rows: Rows,
        lo: usize,
        v: &mut [f32],
        c: &mut [f32],
    ) {
        let (p0, p1) = power.split_at(power.len() / 2);
        let t = p0.len();
        let [masks0, masks1] = masks;
        let [c00, c11, cre, cim] = rows4_mut(c, t);
        for (j, v) in v.chunks_exact_mut(t).enumerate() {
            let m0 = &masks0[j * rows.bins + lo..][..t];
            let m1 = &masks1[j * rows.bins + lo..][..t];
            let r = &cov[j * COV_ROWS * rows.k..];
            let [r00, r11, rre, rim] = [0, 1, 2, 3].map(|i| &r[i * rows.k + lo..][..t]);
            for b in 0..t {
                let vb = 0.5 * (m0[b] * m0[b] * p0[b] + m1[b] * m1[b] * p1[b]);
                v[b] = vb;
                c00[b] += vb * r00[b];
                c11[b] += vb * r11[b];
                cre[b] += vb * rre[b];
                cim[b] += vb * rim[b];
            }
        }
    }
);

/// Power below which the filter treats a bin as silent (near −300 dBFS): a stem's segment sum
/// below it gives no covariance, and a bin whose `tr C` is below it keeps its masks (`C⁻¹`
/// would overflow f32).
pub const SPATIAL_FLOOR: f32 = 1e-30;

simd_dispatch!(
    /// `y = C⁻¹X` per bin into rows 4–7 of `c` (re, im of y₀, y₁) and 1 or 0 into row 8 for
    /// whether `C` was invertible. `C` is scaled by `1 / tr C` first (its determinant is then at
    /// least λ²/(2 + 2λ)²), so quiet bins neither underflow nor overflow.
    fn solve(x0: &[Complex32], x1: &[Complex32], c: &mut [f32]) {
        let bins = x0.len();
        let (m, y) = c.split_at_mut(4 * bins);
        let [c00, c11, cre, cim] = rows4(m, bins);
        let (y, ok) = y.split_at_mut(4 * bins);
        let [y0r, y0i, y1r, y1i] = rows4_mut(y, bins);
        for b in 0..bins {
            let t = c00[b] + c11[b];
            let loud = t > SPATIAL_FLOOR && t.is_finite();
            let it = if loud { 1.0 / t } else { 0.0 };
            let (a, d, er, ei) = (c00[b] * it, c11[b] * it, cre[b] * it, cim[b] * it);
            let det = a * d - (er * er + ei * ei);
            let good = loud && det > 1e-9;
            // C⁻¹ = adj(C / t) / (det · t)
            let inv = if good { it / det } else { 0.0 };
            let (p, q) = (x0[b], x1[b]);
            // y0 = (d·x0 − e·x1)·inv, y1 = (a·x1 − conj(e)·x0)·inv
            y0r[b] = (d * p.re - (er * q.re - ei * q.im)) * inv;
            y0i[b] = (d * p.im - (er * q.im + ei * q.re)) * inv;
            y1r[b] = (a * q.re - (er * p.re + ei * p.im)) * inv;
            y1i[b] = (a * q.im - (er * p.im - ei * p.re)) * inv;
            ok[b] = if good { 1.0 } else { 0.0 };
        }
    }
);

simd_dispatch!(
    /// For the tile of bins `lo ..` (`v` rows long): both rows of `v_j R_j y` for each stem `j`
    /// of `stems` into `out0`, `out1` (`[stems][bin]` over all bins), or each channel's mask
    /// times its spectrum where `C` was not invertible (row 8 of `c` is 0; rare: silence).
    #[allow(clippy::too_many_arguments)]
    fn stem_spectra(
        x: [&[Complex32]; 2],
        masks: [&[f32]; 2],
        cov: &[f32],
        rows: Rows,
        lo: usize,
        v: &[f32],
        c: &[f32],
        stems: &[usize],
        out: [&mut [Complex32]; 2],
    ) {
        let ([x0, x1], [masks0, masks1], [out0, out1]) = (x, masks, out);
        let t = c.len() / 9;
        let (x0, x1) = (&x0[lo..][..t], &x1[lo..][..t]);
        let y = &c[4 * t..];
        let (y, ok) = y.split_at(4 * t);
        let [y0r, y0i, y1r, y1i] = rows4(y, t);
        let silent = ok.contains(&0.0);
        for ((o0, o1), &j) in out0
            .chunks_exact_mut(rows.bins)
            .zip(out1.chunks_exact_mut(rows.bins))
            .zip(stems)
        {
            let (o0, o1) = (&mut o0[lo..][..t], &mut o1[lo..][..t]);
            let v = &v[j * t..][..t];
            let r = &cov[j * COV_ROWS * rows.k..];
            let [r00, r11, rre, rim] = [0, 1, 2, 3].map(|i| &r[i * rows.k + lo..][..t]);
            // Row 0: r00·y0 + r01·y1; row 1: conj(r01)·y0 + r11·y1.
            for b in 0..t {
                let z0r = r00[b] * y0r[b] + (rre[b] * y1r[b] - rim[b] * y1i[b]);
                let z0i = r00[b] * y0i[b] + (rre[b] * y1i[b] + rim[b] * y1r[b]);
                let z1r = (rre[b] * y0r[b] + rim[b] * y0i[b]) + r11[b] * y1r[b];
                let z1i = (rre[b] * y0i[b] - rim[b] * y0r[b]) + r11[b] * y1i[b];
                o0[b] = Complex32::new(z0r * v[b], z0i * v[b]);
                o1[b] = Complex32::new(z1r * v[b], z1i * v[b]);
            }
            // Where C was singular (silence; y is 0 there) the masks as they are.
            if !silent {
                continue;
            }
            let m0 = &masks0[j * rows.bins + lo..][..t];
            let m1 = &masks1[j * rows.bins + lo..][..t];
            for b in (0..t).filter(|&b| ok[b] == 0.0) {
                o0[b] = x0[b] * m0[b];
                o1[b] = x1[b] * m1[b];
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_stride_tiles_the_signal_where_it_divides_the_chunk() {
        // n_fft 2048 at hop 512: segments of 1024 frames, chunks of 64, every 4th frame.
        assert_eq!(stats_stride(segment_frames(2048), 2048, 512), 4);
        assert_eq!(stats_stride(segment_frames(2048), 2048, 1024), 2);
        assert_eq!(stats_stride(segment_frames(2048), 2048, 2048), 1);
        // A chunk of 6 frames (the whole segment) is not a multiple of 4: every frame.
        assert_eq!(stats_stride(6, 256, 64), 1);
        assert_eq!(stats_stride(8, 256, 64), 4);
        // A hop longer than the frame (gaps between frames) still takes every frame.
        assert_eq!(stats_stride(1024, 256, 512), 1);
    }
}
