//! Whole-spectrogram HPSS, as `librosa.decompose.hpss` on a complex STFT matrix: the same stage
//! functions as the streaming pipeline, for callers that already hold a spectrogram.

use crate::error::{Error, Result};
use crate::params::HpssParams;
use crate::stages::magnitude::magnitude;
use crate::stages::mask::{apply_mask, hpss_masks};
use crate::stages::median::{median_freq, median_time_tapped, MedianScratch};
use rayon::prelude::*;
use realfft::num_complex::Complex32;

/// Harmonic and percussive spectrograms of `spectrum`, laid out frame-major
/// (`spectrum[t * bins + b]`), as `librosa.decompose.hpss(S, kernel_size, power, margin)` with
/// `S` of shape `(bins, frames)`. The residual is `S − H − P`.
pub fn decompose_hpss(
    spectrum: &[Complex32],
    bins: usize,
    params: &HpssParams,
) -> Result<(Vec<Complex32>, Vec<Complex32>)> {
    params.validate()?;
    if bins == 0 || !spectrum.len().is_multiple_of(bins) {
        return Err(Error::param(
            "spectrum",
            format!(
                "expected a multiple of {bins} bins, got {} values",
                spectrum.len()
            ),
        ));
    }
    let frames = spectrum.len() / bins;
    let mut mag = vec![0.0f32; spectrum.len()];
    mag.par_chunks_mut(bins)
        .zip(spectrum.par_chunks(bins))
        .for_each(|(m, z)| magnitude(z, m));

    let (mut harm, mut perc) = (vec![0.0f32; spectrum.len()], vec![0.0f32; spectrum.len()]);
    let mut scratch = MedianScratch::default();
    median_time_tapped(
        &mag,
        bins,
        0,
        frames,
        (0, params.harmonic_tap),
        params.harmonic_kernel,
        &mut harm,
        0..bins,
        &mut scratch,
    );
    median_freq(
        &mag,
        bins,
        params.percussive_kernel,
        &mut perc,
        &mut scratch,
    );

    let mut h = vec![Complex32::default(); spectrum.len()];
    let mut p = vec![Complex32::default(); spectrum.len()];
    h.par_chunks_mut(bins)
        .zip(p.par_chunks_mut(bins))
        .enumerate()
        .for_each_init(
            || (vec![0.0f32; bins], vec![0.0f32; bins]),
            |(mask_h, mask_p), (t, (h, p))| {
                let row = t * bins..(t + 1) * bins;
                hpss_masks(
                    &harm[row.clone()],
                    &perc[row.clone()],
                    params,
                    mask_h,
                    mask_p,
                );
                apply_mask(&spectrum[row.clone()], mask_h, h);
                apply_mask(&spectrum[row], mask_p, p);
            },
        );
    Ok((h, p))
}
