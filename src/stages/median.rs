//! Stage `median`: the two median filters of HPSS, as `scipy.ndimage.median_filter` with
//! `mode='reflect'`. Twin of `shaders/median.wgsl`.
//!
//! * Boundary: half-sample symmetric (`d c b a | a b c d | d c b a`), repeated for windows wider
//!   than the signal.
//! * A window of `k` covers offsets `-(k/2) ..= k-1-(k/2)`; the result is element `k/2` of the
//!   sorted window, so even kernels take the upper of the two middle values.
//!
//! The fast path keeps each window sorted and slides it by one element at a time (remove the
//! outgoing value, insert the incoming one), which costs O(k) memory moves per output instead of a
//! sort; `crate::reference::median_filter` is the sort-based check on it.

/// Maps index `i` of the reflect-extended signal to an index of the `n`-long signal.
#[inline]
pub fn reflect_index(i: i64, n: usize) -> usize {
    let n = n as i64;
    let m = i.rem_euclid(2 * n);
    (if m < n { m } else { 2 * n - 1 - m }) as usize
}

/// First offset of a `k` window relative to its centre element: `-(k/2)`.
#[inline]
pub fn window_start(k: usize) -> i64 {
    -((k / 2) as i64)
}

/// Number of values in the window strictly below `v` (branch-free, so it vectorises).
#[inline]
fn count_below(window: &[f32], v: f32) -> usize {
    window.iter().map(|&x| (x < v) as usize).sum()
}

/// Sliding median over an already-extended sequence: `out[i] = median(ext[i .. i + k])` (upper
/// median for even `k`). `window` is scratch space.
///
/// # Panics
/// If `ext.len() != out.len() + k - 1`.
pub fn sliding_median(ext: &[f32], k: usize, out: &mut [f32], window: &mut Vec<f32>) {
    assert_eq!(ext.len(), out.len() + k - 1, "extended length must be out.len() + k - 1");
    if out.is_empty() {
        return;
    }
    let mid = k / 2;
    window.clear();
    window.extend_from_slice(&ext[..k]);
    window.sort_unstable_by(f32::total_cmp);
    out[0] = window[mid];
    for i in 1..out.len() {
        let old = ext[i - 1];
        let new = ext[i + k - 1];
        if old != new {
            let pos_old = count_below(window, old);
            let pos_new = count_below(window, new);
            if pos_new <= pos_old {
                window.copy_within(pos_new..pos_old, pos_new + 1);
                window[pos_new] = new;
            } else {
                window.copy_within(pos_old + 1..pos_new, pos_old);
                window[pos_new - 1] = new;
            }
        }
        out[i] = window[mid];
    }
}

/// Scratch buffers for the median filters, one set per worker thread.
#[derive(Default, Debug)]
pub struct MedianScratch {
    ext: Vec<f32>,
    window: Vec<f32>,
}

/// Median along a row with the reflect boundary: `out[j]` is the median of the window around row
/// element `first + j`, where `row` holds elements `0 .. n` of the full sequence starting at index
/// `row_offset` of the sequence (`row[i]` is element `row_offset + i`) and `n` is the full length.
/// Every index the windows touch (after reflection) must lie in the held part.
///
/// # Panics
/// If a window reaches an element outside the held part.
pub fn median_reflect(
    row: &[f32],
    row_offset: usize,
    n: usize,
    first: usize,
    k: usize,
    out: &mut [f32],
    scratch: &mut MedianScratch,
) {
    let start = first as i64 + window_start(k);
    scratch.ext.clear();
    scratch.ext.extend((0..out.len() + k - 1).map(|j| {
        let idx = reflect_index(start + j as i64, n);
        row[idx.checked_sub(row_offset).expect("median window reaches before the held frames")]
    }));
    sliding_median(&scratch.ext, k, out, &mut scratch.window);
}

/// Harmonic estimate: median along time (frames) for every bin, over a block of frames.
///
/// `mag_t` is bin-major (`mag_t[b * held + i]` = bin `b` of frame `held_offset + i`),
/// `n_frames` is the whole signal's frame count (for the boundary) and the result covers frames
/// `first .. first + out_frames`, written bin-major into `out_t` (`out_t[b * out_frames + j]`).
#[allow(clippy::too_many_arguments)]
pub fn median_time_rows(
    mag_t: &[f32],
    held: usize,
    held_offset: usize,
    n_frames: usize,
    first: usize,
    k: usize,
    out_t: &mut [f32],
    out_frames: usize,
    bins: std::ops::Range<usize>,
    scratch: &mut MedianScratch,
) {
    for (b, out_row) in bins.zip(out_t.chunks_exact_mut(out_frames)) {
        let row = &mag_t[b * held..(b + 1) * held];
        median_reflect(row, held_offset, n_frames, first, k, out_row, scratch);
    }
}

/// Percussive estimate: median along frequency (bins) of one frame's magnitudes.
pub fn median_freq(frame_mag: &[f32], k: usize, out: &mut [f32], scratch: &mut MedianScratch) {
    median_reflect(frame_mag, 0, frame_mag.len(), 0, k, out, scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_half_sample_symmetric_and_repeats() {
        // d c b a | a b c d | d c b a | a b ...
        let got: Vec<usize> = (-6..10).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![2, 3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0, 1]);
        assert_eq!(reflect_index(-1, 1), 0);
        assert_eq!(reflect_index(5, 1), 0);
    }

    #[test]
    fn even_kernel_takes_upper_median() {
        let ext = [4.0, 1.0, 3.0, 2.0];
        let mut out = [0.0];
        sliding_median(&ext, 4, &mut out, &mut Vec::new());
        assert_eq!(out[0], 3.0);
    }
}
