//! EBU R128 loudness and true peak of a stream, for the reports.
//!
//! Integrated loudness is the `ebur128` crate's (K-weighting, gating). True peak uses the crate's
//! own interpolator — the same 48-tap Hann-windowed sinc, 4× oversampling below 96 kHz, the same
//! f32 sums in the same order, so the same values — but skips every block of samples whose
//! interpolated values cannot exceed the peak found so far (their bound, Σ|h| times the largest
//! input sample the block's outputs read, is below it). Music reaches its peak early and rarely
//! comes near it again, so most blocks are skipped; the crate computes all of them, which made
//! true peak half the metering time. At 96 kHz and above the crate's own true peak is used.

use crate::error::{Error, Result};

/// Filter taps of the 4× interpolator (12 per phase).
const TAPS: usize = 48;
/// Oversampling factor below 96 kHz.
const FACTOR: usize = 4;
/// Taps per output phase.
const ACTIVE: usize = TAPS / FACTOR;
/// Output samples per skip decision.
const BLOCK: usize = 32;

/// The interpolation filter, `h[k][p]`: tap k (k samples ago) of output phase p, as the
/// `ebur128` crate builds it.
fn filter() -> [[f32; FACTOR]; ACTIVE] {
    use std::f64::consts::PI;
    let mut h = [[0f32; FACTOR]; ACTIVE];
    for (j, c) in h.iter_mut().flat_map(|x| x.iter_mut()).enumerate() {
        let j = j as f64;
        let window = TAPS as f64;
        let w = 0.5 * (1.0 - f64::cos(2.0 * PI * j / window));
        let m = j - window / 2.0;
        *c = if m.abs() > 0.000_000_001 {
            w * f64::sin(m * PI / FACTOR as f64) / (m * PI / FACTOR as f64)
        } else {
            w
        } as f32;
    }
    h
}

/// True peak of one channel at rates below 96 kHz.
#[derive(Clone, Debug)]
pub struct TruePeak {
    h: [[f32; FACTOR]; ACTIVE],
    /// Σ|h| of the largest phase, with a margin for the sums' rounding.
    bound: f32,
    /// The last `ACTIVE − 1` input samples, oldest first.
    history: [f32; ACTIVE - 1],
    peak: f32,
    sample_peak: f32,
}

impl Default for TruePeak {
    fn default() -> Self {
        let h = filter();
        let bound = (0..FACTOR)
            .map(|p| h.iter().map(|t| t[p].abs()).sum::<f32>())
            .fold(0.0f32, f32::max)
            * (1.0 + 1e-5);
        TruePeak {
            h,
            bound,
            history: [0.0; ACTIVE - 1],
            peak: 0.0,
            sample_peak: 0.0,
        }
    }
}

impl TruePeak {
    /// Adds the next samples.
    pub fn add(&mut self, x: &[f32]) {
        const HIST: usize = ACTIVE - 1;
        self.sample_peak = x.iter().fold(self.sample_peak, |m, v| m.max(v.abs()));
        // The first outputs read the history: a small stitched buffer; the rest read x alone.
        let head = x.len().min(HIST);
        let mut stitched = [0.0f32; 2 * HIST];
        stitched[..HIST].copy_from_slice(&self.history);
        stitched[HIST..HIST + head].copy_from_slice(&x[..head]);
        self.scan(&stitched[..HIST + head], HIST..HIST + head);
        self.scan(x, HIST.min(x.len())..x.len());
        // The new history: the last HIST samples of history + x.
        if x.len() >= HIST {
            self.history.copy_from_slice(&x[x.len() - HIST..]);
        } else {
            self.history.copy_within(x.len().., 0);
            self.history[HIST - x.len()..].copy_from_slice(x);
        }
    }

    /// Interpolates the outputs whose newest input is `ext[i]` for i in `newest` (each reads
    /// `ext[i − 11 ..= i]`), block by block, skipping blocks that cannot raise the peak.
    fn scan(&mut self, ext: &[f32], newest: std::ops::Range<usize>) {
        const HIST: usize = ACTIVE - 1;
        let mut start = newest.start;
        while start < newest.end {
            let end = (start + BLOCK).min(newest.end);
            let reach = ext[start - HIST..end]
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            if reach * self.bound > self.peak {
                for i in start..end {
                    let mut out = [0.0f32; FACTOR];
                    for (k, taps) in self.h.iter().enumerate() {
                        let v = ext[i - k];
                        for (o, c) in out.iter_mut().zip(taps) {
                            *o += v * c;
                        }
                    }
                    for o in out {
                        self.peak = self.peak.max(o.abs());
                    }
                }
            }
            start = end;
        }
    }

    /// The true peak so far (never below the sample peak), linear.
    pub fn value(&self) -> f64 {
        self.peak.max(self.sample_peak) as f64
    }
}

/// EBU R128 integrated loudness and true peak of one signal, measured as it streams.
pub struct LoudnessMeter {
    meter: ebur128::EbuR128,
    /// Per channel, below 96 kHz; empty: the crate measures true peak.
    peaks: Vec<TruePeak>,
}

impl LoudnessMeter {
    /// A meter for `channels` channels at `rate` Hz.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a layout the meter cannot take.
    pub fn new(channels: usize, rate: u32) -> Result<Self> {
        let own = rate < 96_000;
        let mode = if own {
            ebur128::Mode::I
        } else {
            ebur128::Mode::I | ebur128::Mode::TRUE_PEAK
        };
        let meter = ebur128::EbuR128::new(channels as u32, rate, mode)
            .map_err(|e| Error::param("loudness meter", format!("{e:?}")))?;
        Ok(LoudnessMeter {
            meter,
            peaks: if own {
                vec![TruePeak::default(); channels]
            } else {
                Vec::new()
            },
        })
    }

    /// Adds planar samples (every channel the same length).
    pub fn add(&mut self, planar: &[&[f32]]) {
        if planar.first().is_some_and(|c| !c.is_empty()) {
            let _ = self.meter.add_frames_planar_f32(planar);
            for (p, x) in self.peaks.iter_mut().zip(planar) {
                p.add(x);
            }
        }
    }

    /// (integrated loudness LUFS, true peak dBTP over all channels).
    pub fn result(&self) -> (f64, f64) {
        let lufs = self.meter.loudness_global().unwrap_or(f64::NEG_INFINITY);
        let peak = if self.peaks.is_empty() {
            (0..self.meter.channels())
                .filter_map(|c| self.meter.true_peak(c).ok())
                .fold(0.0f64, f64::max)
        } else {
            self.peaks.iter().map(TruePeak::value).fold(0.0, f64::max)
        };
        (lufs, crate::pipeline::dbfs(peak))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Against the crate's own true peak: the same values (same filter, same sums), whatever the
    /// chunking, for noise, a loud burst late in the signal, and near-Nyquist tones.
    #[test]
    fn true_peak_equals_the_crates() {
        let mut rng = Rng::new(5);
        for (case, rate) in [(0, 48000u32), (1, 44100), (2, 48000), (3, 8000)] {
            let len = 20_000;
            let x: Vec<f32> = (0..len)
                .map(|i| match case {
                    0 => 0.3 * rng.signed(),
                    1 => {
                        if (15_000..15_050).contains(&i) {
                            0.9 * rng.signed()
                        } else {
                            0.05 * rng.signed()
                        }
                    }
                    2 => 0.5 * ((i as f32) * 3.0).sin() * if i % 7 == 0 { 1.0 } else { 0.9 },
                    _ => 0.4 * (i as f32 * 2.9).sin() + 0.2 * rng.signed(),
                })
                .collect();
            let mut crate_meter = ebur128::EbuR128::new(1, rate, ebur128::Mode::TRUE_PEAK).unwrap();
            let mut ours = TruePeak::default();
            let mut at = 0;
            while at < len {
                // Chunks shorter than the filter's history too.
                let n = match rng.below(3) {
                    0 => 1 + rng.below(12),
                    _ => 1 + rng.below(3000),
                }
                .min(len - at);
                crate_meter
                    .add_frames_planar_f32(&[&x[at..at + n]])
                    .unwrap();
                ours.add(&x[at..at + n]);
                at += n;
            }
            let want = crate_meter.true_peak(0).unwrap();
            let got = ours.value();
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "case {case} at {rate} Hz: ours {got}, the crate's {want}"
            );
        }
    }
}
