//! Stage `overlap_add`: rebuild samples from windowed inverse frames by gathering (each output
//! sample sums the frames that cover it, in frame order, as librosa's `__overlap_add` does), then
//! divide by the window sum-square wherever it exceeds `f32::MIN_POSITIVE` (librosa `istft`).
//! Twin of `shaders/overlap_add.wgsl`, which gathers for the same reason: no float atomics.

/// Window sum-square of a centred STFT: `Σ_t w²[s + n_fft/2 − t·hop]` over the frames that cover
/// sample `s`. Interior samples repeat with period `hop`, so only that period is stored.
#[derive(Clone, Debug)]
pub struct WindowSumSquare {
    window_sq: Vec<f64>,
    periodic: Vec<f32>,
    hop_length: usize,
}

impl WindowSumSquare {
    /// Tabulates the sum-square of `window` at `hop_length`.
    pub fn new(window: &[f32], hop_length: usize) -> Self {
        let window_sq: Vec<f64> = window.iter().map(|&w| (w as f64) * (w as f64)).collect();
        let n_fft = window.len();
        let periodic = (0..hop_length)
            .map(|r| {
                // Same order as `at`: ascending frame, i.e. descending window index.
                let top = r + (n_fft - 1 - r) / hop_length * hop_length;
                (0..=top / hop_length)
                    .map(|j| window_sq[top - j * hop_length])
                    .sum::<f64>() as f32
            })
            .collect();
        WindowSumSquare {
            window_sq,
            periodic,
            hop_length,
        }
    }

    /// The sum-square at sample `s` of a signal with `n_frames` frames.
    #[inline]
    pub fn at(&self, s: u64, n_frames: usize) -> f32 {
        let n_fft = self.window_sq.len();
        let hop = self.hop_length as u64;
        let pos = s + (n_fft / 2) as u64;
        let (first, last) = covering_frames(pos, n_fft, self.hop_length);
        if pos + 1 >= n_fft as u64 && last < n_frames as u64 {
            return self.periodic[(pos % hop) as usize];
        }
        let mut acc = 0.0f64;
        for t in first..=last.min(n_frames as u64 - 1) {
            acc += self.window_sq[(pos - t * hop) as usize];
        }
        acc as f32
    }
}

impl WindowSumSquare {
    /// Divides `out` (samples from `out_start`) by the sum-square wherever it exceeds
    /// `f32::MIN_POSITIVE`, as librosa's `istft` does.
    pub fn normalise(&self, out_start: u64, n_frames: usize, out: &mut [f32]) {
        let n_fft = self.window_sq.len() as u64;
        let hop = self.hop_length as u64;
        // Interior: every covering frame exists, so the periodic table applies.
        let interior_lo = (n_fft / 2).saturating_sub(1);
        let interior_hi = (n_frames as u64)
            .saturating_mul(hop)
            .saturating_sub(n_fft / 2);
        let end = out_start + out.len() as u64;
        let lo = interior_lo.clamp(out_start, end);
        let hi = interior_hi.clamp(lo, end);
        let edge = |o: &mut f32, s: u64| {
            let norm = self.at(s, n_frames);
            if norm > f32::MIN_POSITIVE {
                *o /= norm;
            }
        };
        let (head, rest) = out.split_at_mut((lo - out_start) as usize);
        let (interior, tail) = rest.split_at_mut((hi - lo) as usize);
        head.iter_mut()
            .enumerate()
            .for_each(|(i, o)| edge(o, out_start + i as u64));
        tail.iter_mut()
            .enumerate()
            .for_each(|(i, o)| edge(o, hi + i as u64));
        // Interior: the periodic table, one hop-long run at a time (every value is > 0 there).
        let mut phase = ((lo + n_fft / 2) % hop) as usize;
        let mut rest = interior;
        while !rest.is_empty() {
            let run = (self.periodic.len() - phase).min(rest.len());
            let (now, later) = rest.split_at_mut(run);
            for (o, &norm) in now.iter_mut().zip(&self.periodic[phase..]) {
                *o /= norm;
            }
            rest = later;
            phase = 0;
        }
    }
}

/// Frames that cover padded-signal position `pos`: `first ..= last` (before clipping to the signal).
#[inline]
pub fn covering_frames(pos: u64, n_fft: usize, hop_length: usize) -> (u64, u64) {
    let n_fft = n_fft as u64;
    let hop = hop_length as u64;
    let first = if pos + 1 > n_fft {
        (pos + 1 - n_fft).div_ceil(hop)
    } else {
        0
    };
    (first, pos / hop)
}

/// Builds output samples `out_start .. out_start + out.len()` from windowed inverse frames.
///
/// `frames` holds the frames `held_first ..`, `frame_stride` floats apart, each frame's `n_fft`
/// samples starting `frame_offset` floats into its stride (several stems can share one buffer);
/// `n_frames` is the signal's frame count. Every frame that covers an output sample must be held.
/// Each sample is the sum of its covering frames in ascending frame order (the order the shader's
/// gather uses and librosa's loop uses), divided by the window sum-square.
///
/// # Panics
/// If a covering frame is not held.
#[allow(clippy::too_many_arguments)]
pub fn overlap_add(
    frames: &[f32],
    frame_stride: usize,
    frame_offset: usize,
    held_first: usize,
    n_fft: usize,
    hop_length: usize,
    n_frames: usize,
    wss: &WindowSumSquare,
    out_start: u64,
    out: &mut [f32],
) {
    if out.is_empty() {
        return;
    }
    let held = frames.len() / frame_stride;
    out.fill(0.0);
    // Padded positions of the output run.
    let pos0 = out_start + (n_fft / 2) as u64;
    let pos1 = pos0 + out.len() as u64;
    let (t_first, _) = covering_frames(pos0, n_fft, hop_length);
    let t_last = ((pos1 - 1) / hop_length as u64).min(n_frames as u64 - 1);
    for t in t_first..=t_last {
        let local = (t as usize)
            .checked_sub(held_first)
            .filter(|&l| l < held)
            .expect("overlap_add: a covering frame is not held");
        let base = local * frame_stride + frame_offset;
        let frame = &frames[base..base + n_fft];
        let start = t * hop_length as u64;
        let lo = start.max(pos0);
        let hi = (start + n_fft as u64).min(pos1);
        if lo >= hi {
            continue;
        }
        let dst = &mut out[(lo - pos0) as usize..(hi - pos0) as usize];
        let src = &frame[(lo - start) as usize..(hi - start) as usize];
        for (d, &v) in dst.iter_mut().zip(src) {
            *d += v;
        }
    }
    wss.normalise(out_start, n_frames, out);
}
