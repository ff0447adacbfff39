//! Stage `frame`: cut centred, windowed frames out of the signal. Twin of `shaders/frame.wgsl`.
//!
//! Frame `t` covers samples `t*hop - n_fft/2 .. t*hop + n_fft/2` (librosa `center=True`); samples
//! outside the signal are zero (`pad_mode='constant'`).

/// Periodic Hann window, `0.5 − 0.5·cos(2πn/N)`, as scipy's `get_window('hann', N, fftbins=True)`;
/// computed in f64 and rounded once.
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Samples of a signal held in memory from global index `offset` on; the signal has `len`
/// samples in all when known. Reads outside `0..len` are zero.
#[derive(Clone, Copy, Debug)]
pub struct SignalView<'a> {
    /// The samples held, starting at global index `offset`.
    pub samples: &'a [f32],
    /// Global index of `samples[0]`.
    pub offset: i64,
}

impl SignalView<'_> {
    /// The sample at global index `i`, zero where not held (before 0 or after the end).
    #[inline]
    pub fn at(&self, i: i64) -> f32 {
        let j = i - self.offset;
        if j >= 0 && (j as usize) < self.samples.len() {
            self.samples[j as usize]
        } else {
            0.0
        }
    }
}

/// Writes the windowed samples of frame `t` into `out` (length `window.len()`).
pub fn frame_windowed(
    signal: SignalView<'_>,
    t: usize,
    hop_length: usize,
    window: &[f32],
    out: &mut [f32],
) {
    let n_fft = window.len();
    let start = (t * hop_length) as i64 - (n_fft / 2) as i64;
    let first = start - signal.offset;
    if first >= 0 && first as usize + n_fft <= signal.samples.len() {
        let src = &signal.samples[first as usize..first as usize + n_fft];
        for ((o, &s), &w) in out.iter_mut().zip(src).zip(window) {
            *o = s * w;
        }
    } else {
        for (i, (o, &w)) in out.iter_mut().zip(window).enumerate() {
            *o = signal.at(start + i as i64) * w;
        }
    }
}
