//! STFT and HPSS parameters, validated once. Defaults are librosa's `effects.hpss`:
//! n_fft 2048, hop 512, periodic Hann, centred frames with zero padding, kernels of 31,
//! power 2, margin 1.

use crate::error::{Error, Result};

/// Smallest and largest accepted `n_fft` (powers of two only, so every path can run them).
pub const N_FFT_RANGE: (usize, usize) = (256, 16384);

/// Short-time Fourier transform layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StftParams {
    /// FFT size and window length in samples (a power of two).
    pub n_fft: usize,
    /// Frame advance in samples, 1 ..= n_fft / 2 (so every sample is covered by a non-zero window value).
    pub hop_length: usize,
}

impl Default for StftParams {
    fn default() -> Self {
        StftParams {
            n_fft: 2048,
            hop_length: 512,
        }
    }
}

impl StftParams {
    /// Checks the layout; errors say what was expected and what arrived.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = N_FFT_RANGE;
        if !self.n_fft.is_power_of_two() || self.n_fft < lo || self.n_fft > hi {
            return Err(Error::param(
                "--n-fft",
                format!(
                    "expected a power of two from {lo} to {hi}, got {}",
                    self.n_fft
                ),
            ));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft / 2 {
            return Err(Error::param(
                "--hop",
                format!(
                    "expected 1 to n_fft/2 = {} (larger hops leave samples the window cannot reconstruct), got {}",
                    self.n_fft / 2,
                    self.hop_length
                ),
            ));
        }
        Ok(())
    }

    /// Frequency bins per frame: n_fft / 2 + 1.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames of a centred STFT of `len` samples: 1 + len / hop (librosa, `center=True`).
    pub fn n_frames(&self, len: u64) -> usize {
        1 + (len / self.hop_length as u64) as usize
    }
}

/// A median-filter length, in frames/bins or in musical units resolved against the signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// A count of frames (harmonic) or bins (percussive).
    Count(usize),
    /// A duration, for the harmonic (time) kernel: `0.2s`, `200ms`.
    Seconds(f64),
    /// A bandwidth, for the percussive (frequency) kernel: `500hz`.
    Hertz(f64),
}

impl Kernel {
    /// Parses `31`, `0.2s`, `200ms` or `500hz` (case-insensitive).
    pub fn parse(what: &'static str, text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            Error::param(
                what,
                format!("expected a count (31), a duration (0.2s, 200ms) or a bandwidth (500hz), got {text:?}"),
            )
        };
        let number = |s: &str| -> Result<f64> {
            let v: f64 = s.trim().parse().map_err(|_| bad())?;
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        if let Some(v) = t.strip_suffix("hz") {
            Ok(Kernel::Hertz(number(v)?))
        } else if let Some(v) = t.strip_suffix("ms") {
            Ok(Kernel::Seconds(number(v)? / 1000.0))
        } else if let Some(v) = t.strip_suffix('s') {
            Ok(Kernel::Seconds(number(v)?))
        } else {
            let n: usize = t.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(Kernel::Count(n))
        }
    }

    /// The kernel length in frames/bins at `sample_rate` with `stft`; at least 1.
    /// A duration converts with the hop (frames), a bandwidth with the bin spacing (bins).
    pub fn resolve(&self, sample_rate: u32, stft: &StftParams) -> usize {
        let n = match *self {
            Kernel::Count(n) => return n.max(1),
            Kernel::Seconds(s) => s * sample_rate as f64 / stft.hop_length as f64,
            Kernel::Hertz(hz) => hz * stft.n_fft as f64 / sample_rate as f64,
        };
        (n.round() as usize).max(1)
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kernel::Count(n) => write!(f, "{n}"),
            Kernel::Seconds(s) => write!(f, "{s}s"),
            Kernel::Hertz(hz) => write!(f, "{hz}hz"),
        }
    }
}

/// Largest accepted median kernel.
pub const MAX_KERNEL: usize = 1025;

/// Largest accepted time-median tap (frames between taps).
pub const MAX_TAP: usize = 8;

/// Harmonic/percussive separation settings, as `librosa.decompose.hpss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HpssParams {
    /// Median length along time, in taps (librosa's `kernel_size[0]`, in frames when
    /// `harmonic_tap` is 1).
    pub harmonic_kernel: usize,
    /// Frames between the time median's taps: 1 (librosa's, `hpr`) takes every frame; the
    /// production stems take every 2nd frame of their 0.5 s ([`HpssParams::taps_for_span`]).
    pub harmonic_tap: usize,
    /// Median length along frequency, in bins (librosa's `kernel_size[1]`).
    pub percussive_kernel: usize,
    /// Soft-mask exponent; `f32::INFINITY` gives hard masks (ties go to neither).
    pub power: f32,
    /// Harmonic margin (≥ 1).
    pub margin_harmonic: f32,
    /// Percussive margin (≥ 1).
    pub margin_percussive: f32,
}

impl Default for HpssParams {
    fn default() -> Self {
        HpssParams {
            harmonic_kernel: 31,
            harmonic_tap: 1,
            percussive_kernel: 31,
            power: 2.0,
            margin_harmonic: 1.0,
            margin_percussive: 1.0,
        }
    }
}

impl HpssParams {
    /// Checks ranges as librosa does (margins ≥ 1, power > 0).
    pub fn validate(&self) -> Result<()> {
        for (what, k) in [
            ("--harmonic-kernel", self.harmonic_kernel),
            ("--percussive-kernel", self.percussive_kernel),
        ] {
            if k == 0 || k > MAX_KERNEL {
                return Err(Error::param(
                    what,
                    format!("expected 1 to {MAX_KERNEL}, got {k}"),
                ));
            }
        }
        if !(1..=MAX_TAP).contains(&self.harmonic_tap) {
            return Err(Error::param(
                "--harmonic-tap",
                format!("expected 1 to {MAX_TAP}, got {}", self.harmonic_tap),
            ));
        }
        if self.power.is_nan() || self.power <= 0.0 {
            return Err(Error::param(
                "--power",
                format!("expected > 0 or inf, got {}", self.power),
            ));
        }
        for m in [self.margin_harmonic, self.margin_percussive] {
            if m.is_nan() || m < 1.0 || !m.is_finite() {
                return Err(Error::param(
                    "--margin",
                    format!("each margin must be >= 1, got {m}"),
                ));
            }
        }
        Ok(())
    }

    /// Taps of a time median `tap` frames apart over a span of `frames` frames: `frames` itself
    /// for `tap` 1 (librosa's kernel), else the largest odd count whose span
    /// `tap · (taps − 1) + 1` fits in `frames` (a centred window; at least 1).
    pub fn taps_for_span(frames: usize, tap: usize) -> usize {
        if tap <= 1 {
            frames
        } else {
            2 * (frames.saturating_sub(1) / (2 * tap)) + 1
        }
    }

    /// Frames before and after an output frame that the time median reads:
    /// `tap · (k / 2)` and `tap · (k − 1 − k / 2)`.
    pub fn harmonic_halo(&self) -> (usize, usize) {
        let (before, after) = crate::stream::halo(self.harmonic_kernel);
        (self.harmonic_tap * before, self.harmonic_tap * after)
    }

    /// librosa's `split_zeros`: both margins exactly 1.
    pub fn split_zeros(&self) -> bool {
        self.margin_harmonic == 1.0 && self.margin_percussive == 1.0
    }

    /// True when X − H − P can carry energy: a margin above 1, or hard masks (ties go to neither).
    pub fn has_residual(&self) -> bool {
        !self.split_zeros() || self.power.is_infinite()
    }

    /// Parses `--margin`: one value for both, or `harmonic,percussive`.
    pub fn parse_margin(text: &str) -> Result<(f32, f32)> {
        let parse = |s: &str| -> Result<f32> {
            s.trim().parse::<f32>().map_err(|_| {
                Error::param(
                    "--margin",
                    format!("expected a number >= 1 or two as h,p, got {text:?}"),
                )
            })
        };
        match text.split_once(',') {
            Some((h, p)) => Ok((parse(h)?, parse(p)?)),
            None => {
                let m = parse(text)?;
                Ok((m, m))
            }
        }
    }

    /// Parses `--power`: a positive number or `inf`.
    pub fn parse_power(text: &str) -> Result<f32> {
        let t = text.trim().to_ascii_lowercase();
        if t == "inf" || t == "infinity" {
            return Ok(f32::INFINITY);
        }
        t.parse::<f32>().ok().filter(|p| *p > 0.0).ok_or_else(|| {
            Error::param(
                "--power",
                format!("expected a number > 0 or inf, got {text:?}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_in_musical_units() {
        let stft = StftParams::default();
        assert_eq!(Kernel::parse("k", "31").unwrap().resolve(48000, &stft), 31);
        // 0.2 s at 48 kHz with hop 512 = 18.75 frames → 19.
        assert_eq!(
            Kernel::parse("k", "0.2s").unwrap().resolve(48000, &stft),
            19
        );
        assert_eq!(
            Kernel::parse("k", "200ms").unwrap().resolve(48000, &stft),
            19
        );
        // 500 Hz at 48 kHz with n_fft 2048 = 21.33 bins → 21.
        assert_eq!(
            Kernel::parse("k", "500Hz").unwrap().resolve(48000, &stft),
            21
        );
        assert!(Kernel::parse("k", "0").is_err());
        assert!(Kernel::parse("k", "-3s").is_err());
        assert!(Kernel::parse("k", "abc").is_err());
    }

    #[test]
    fn validation_messages_say_expected_and_got() {
        let e = StftParams {
            n_fft: 1000,
            hop_length: 250,
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("got 1000"), "{e}");
        let e = StftParams {
            n_fft: 2048,
            hop_length: 2048,
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("got 2048"), "{e}");
        let p = HpssParams {
            margin_harmonic: 0.5,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        assert_eq!(HpssParams::parse_margin("2,3").unwrap(), (2.0, 3.0));
        assert_eq!(HpssParams::parse_power("inf").unwrap(), f32::INFINITY);
        assert!(HpssParams::parse_power("0").is_err());
    }
}
