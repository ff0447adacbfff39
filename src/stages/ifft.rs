//! Stage `ifft`: inverse real FFT of stem spectra, scaled by 1/n_fft (as `scipy.fft.irfft`) and
//! multiplied by the synthesis window, ready for overlap-add. Twin of `shaders/ifft.wgsl`.
//!
//! Two stems of one spectrum can be inverted at once (`process_masked_pair`): the real signals
//! `x` and `y` are the real and imaginary parts of the inverse complex FFT of `X + iY`, one
//! complex transform of `n_fft` points instead of two real ones (each a complex transform of
//! `n_fft / 2` points plus a scalar twiddle pass that costs about as much again).

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner};
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// A planned inverse transform of one size, shareable across threads.
#[derive(Clone)]
pub struct InverseFft {
    plan: Arc<dyn ComplexToReal<f32>>,
    pair: Arc<dyn Fft<f32>>,
}

impl InverseFft {
    /// Plans an inverse transform of `n_fft` points.
    pub fn new(planner: &mut RealFftPlanner<f32>, n_fft: usize) -> Self {
        InverseFft {
            plan: planner.plan_fft_inverse(n_fft),
            pair: FftPlanner::new().plan_fft_inverse(n_fft),
        }
    }

    /// Scratch length `process` and `process_masked_pair` need.
    pub fn scratch_len(&self) -> usize {
        let n = self.pair.len();
        self.plan
            .get_scratch_len()
            .max(n + self.pair.get_inplace_scratch_len())
    }

    /// Inverse-transforms the two stems `spectrum · mask_a` and `spectrum · mask_b` into
    /// `frame_a` and `frame_b` with one complex transform, then applies `window / n_fft`: the
    /// same frames as masking each spectrum and calling `process` (to float rounding, relative
    /// to the larger of the two). The masked spectra are never stored: the masks go straight
    /// into the transform's input. The imaginary parts of DC and Nyquist are ignored, as irfft
    /// does.
    ///
    /// # Panics
    /// If the slice lengths do not match the plan.
    pub fn process_masked_pair(
        &self,
        spectrum: &[Complex32],
        (mask_a, mask_b): (&[f32], &[f32]),
        (frame_a, frame_b): (&mut [f32], &mut [f32]),
        window: &[f32],
        scratch: &mut [Complex32],
    ) {
        let half = self.pair.len() / 2;
        assert!(
            spectrum.len() == half + 1 && mask_a.len() == half + 1 && mask_b.len() == half + 1,
            "spectrum length"
        );
        self.pair_transform(
            |z| pack_pair(spectrum, mask_a, mask_b, z),
            (frame_a, frame_b),
            window,
            scratch,
        );
    }

    /// The complex transform of two stems: `pack` fills `Z = A + iB`, which is inverted and
    /// split into `frame_a` and `frame_b`, scaled by `window / n_fft`.
    fn pair_transform(
        &self,
        pack: impl FnOnce(&mut [Complex32]),
        (frame_a, frame_b): (&mut [f32], &mut [f32]),
        window: &[f32],
        scratch: &mut [Complex32],
    ) {
        let n = self.pair.len();
        assert!(frame_a.len() == n && frame_b.len() == n, "frame length");
        let (z, fft_scratch) = scratch.split_at_mut(n);
        pack(z);
        self.pair
            .process_with_scratch(z, &mut fft_scratch[..self.pair.get_inplace_scratch_len()]);
        unpack_pair(z, window, frame_a, frame_b);
    }

    /// Inverse-transforms the two half spectra `a` and `b` into `frame_a` and `frame_b` with one
    /// complex transform, then applies `window / n_fft`: `process_masked_pair` for spectra that
    /// are not one spectrum times two masks (the spatial filter's stems).
    ///
    /// # Panics
    /// If the slice lengths do not match the plan.
    pub fn process_pair(
        &self,
        (a, b): (&[Complex32], &[Complex32]),
        (frame_a, frame_b): (&mut [f32], &mut [f32]),
        window: &[f32],
        scratch: &mut [Complex32],
    ) {
        let half = self.pair.len() / 2;
        assert!(
            a.len() == half + 1 && b.len() == half + 1,
            "spectrum length"
        );
        self.pair_transform(
            |z| pack_spectra(a, b, z),
            (frame_a, frame_b),
            window,
            scratch,
        );
    }

    /// [`InverseFft::process_pair`] of half spectra given in two parts: below bin `k` the
    /// spectra `a` and `b` (only their first `k` bins are read), from bin `k` on the spectrum `x`
    /// times the masks `mask_a` and `mask_b` (as [`crate::stages::mask::apply_mask`] rounds
    /// them). The same frames, bit for bit, as building those spectra and calling
    /// `process_pair`; the masked part is never stored (the spatial filter's stems, whose masks
    /// apply as they are above the filter's bins).
    ///
    /// # Panics
    /// If the slice lengths do not match the plan.
    #[allow(clippy::too_many_arguments)]
    pub fn process_pair_split(
        &self,
        (a, b): (&[Complex32], &[Complex32]),
        (x, mask_a, mask_b): (&[Complex32], &[f32], &[f32]),
        k: usize,
        (frame_a, frame_b): (&mut [f32], &mut [f32]),
        window: &[f32],
        scratch: &mut [Complex32],
    ) {
        let half = self.pair.len() / 2;
        assert!(
            a.len() >= k.min(half + 1)
                && b.len() >= k.min(half + 1)
                && x.len() == half + 1
                && mask_a.len() == half + 1
                && mask_b.len() == half + 1,
            "spectrum length"
        );
        self.pair_transform(
            |z| {
                if k == 0 {
                    pack_pair(x, mask_a, mask_b, z)
                } else if k > half {
                    pack_spectra(&a[..half + 1], &b[..half + 1], z)
                } else {
                    pack_split(a, b, x, mask_a, mask_b, k, z)
                }
            },
            (frame_a, frame_b),
            window,
            scratch,
        );
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

simd_dispatch!(
    /// Builds `Z = A + iB` over the whole circle from the half spectra `A = X · m_a` and
    /// `B = X · m_b` (real masks): `Z[k] = A[k] + iB[k]` for k ≤ n/2 and
    /// `Z[n − k] = conj(A[k]) + i·conj(B[k])`, with `A` and `B` rounded as `apply_mask` rounds
    /// them.
    fn pack_pair(x: &[Complex32], mask_a: &[f32], mask_b: &[f32], z: &mut [Complex32]) {
        let half = x.len() - 1;
        let (low, high) = z.split_at_mut(half + 1);
        for (((d, x), &ma), &mb) in low.iter_mut().zip(x).zip(mask_a).zip(mask_b) {
            let (a, b) = (
                Complex32::new(x.re * ma, x.im * ma),
                Complex32::new(x.re * mb, x.im * mb),
            );
            *d = Complex32::new(a.re - b.im, a.im + b.re);
        }
        for (((d, x), &ma), &mb) in high
            .iter_mut()
            .rev()
            .zip(&x[1..half])
            .zip(&mask_a[1..half])
            .zip(&mask_b[1..half])
        {
            let (a, b) = (
                Complex32::new(x.re * ma, x.im * ma),
                Complex32::new(x.re * mb, x.im * mb),
            );
            *d = Complex32::new(a.re + b.im, b.re - a.im);
        }
        // irfft ignores the imaginary parts of DC and Nyquist.
        low[0] = Complex32::new(x[0].re * mask_a[0], x[0].re * mask_b[0]);
        low[half] = Complex32::new(x[half].re * mask_a[half], x[half].re * mask_b[half]);
    }
);

simd_dispatch!(
    /// Builds `Z = A + iB` over the whole circle from the half spectra `a` and `b`:
    /// `Z[k] = A[k] + iB[k]` for k ≤ n/2 and `Z[n − k] = conj(A[k]) + i·conj(B[k])`, the
    /// imaginary parts of DC and Nyquist dropped (as irfft does).
    fn pack_spectra(a: &[Complex32], b: &[Complex32], z: &mut [Complex32]) {
        let half = a.len() - 1;
        let (low, high) = z.split_at_mut(half + 1);
        for ((d, a), b) in low.iter_mut().zip(a).zip(b) {
            *d = Complex32::new(a.re - b.im, a.im + b.re);
        }
        for ((d, a), b) in high.iter_mut().rev().zip(&a[1..half]).zip(&b[1..half]) {
            *d = Complex32::new(a.re + b.im, b.re - a.im);
        }
        low[0] = Complex32::new(a[0].re, b[0].re);
        low[half] = Complex32::new(a[half].re, b[half].re);
    }
);

simd_dispatch!(
    /// [`pack_spectra`] of `A` and `B` given below bin `k` (1 ≤ k ≤ n/2) as `a` and `b`, and
    /// from bin `k` on as `x · mask_a` and `x · mask_b` ([`pack_pair`]).
    fn pack_split(
        a: &[Complex32],
        b: &[Complex32],
        x: &[Complex32],
        mask_a: &[f32],
        mask_b: &[f32],
        k: usize,
        z: &mut [Complex32],
    ) {
        let half = x.len() - 1;
        let (low, high) = z.split_at_mut(half + 1);
        // Bins 0 .. k from the spectra, k ..= n/2 masked.
        let (low_a, low_x) = low.split_at_mut(k);
        for ((d, a), b) in low_a.iter_mut().zip(&a[..k]).zip(&b[..k]) {
            *d = Complex32::new(a.re - b.im, a.im + b.re);
        }
        for (((d, x), &ma), &mb) in low_x
            .iter_mut()
            .zip(&x[k..])
            .zip(&mask_a[k..])
            .zip(&mask_b[k..])
        {
            let (a, b) = (
                Complex32::new(x.re * ma, x.im * ma),
                Complex32::new(x.re * mb, x.im * mb),
            );
            *d = Complex32::new(a.re - b.im, a.im + b.re);
        }
        // `high[i]` is bin n/2 − 1 − i's mirror: bins n/2 − 1 down to k masked, then k − 1 down
        // to 1 from the spectra.
        let (high_x, high_a) = high.split_at_mut(half - k);
        for (((d, x), &ma), &mb) in high_x
            .iter_mut()
            .rev()
            .zip(&x[k..half])
            .zip(&mask_a[k..half])
            .zip(&mask_b[k..half])
        {
            let (a, b) = (
                Complex32::new(x.re * ma, x.im * ma),
                Complex32::new(x.re * mb, x.im * mb),
            );
            *d = Complex32::new(a.re + b.im, b.re - a.im);
        }
        for ((d, a), b) in high_a.iter_mut().rev().zip(&a[1..k]).zip(&b[1..k]) {
            *d = Complex32::new(a.re + b.im, b.re - a.im);
        }
        // irfft ignores the imaginary parts of DC and Nyquist.
        low[0] = Complex32::new(a[0].re, b[0].re);
        low[half] = Complex32::new(x[half].re * mask_a[half], x[half].re * mask_b[half]);
    }
);

simd_dispatch!(
    /// Splits the inverse of `Z` into its two real frames, scaled by `window / n`.
    fn unpack_pair(z: &[Complex32], window: &[f32], frame_a: &mut [f32], frame_b: &mut [f32]) {
        let scale = 1.0 / z.len() as f32;
        let zf: &[f32] = bytemuck::cast_slice(z);
        for (((v, &w), fa), fb) in zf
            .chunks_exact(2)
            .zip(window)
            .zip(frame_a.iter_mut())
            .zip(frame_b.iter_mut())
        {
            let sw = scale * w;
            *fa = v[0] * sw;
            *fb = v[1] * sw;
        }
    }
);
