//! Stage `median`: the two median filters of HPSS, as `scipy.ndimage.median_filter` with
//! `mode='reflect'`. Twin of `shaders/median.wgsl`.
//!
//! * Boundary: half-sample symmetric (`d c b a | a b c d | d c b a`), repeated for windows wider
//!   than the signal.
//! * A window of `k` covers offsets `-(k/2) ..= k-1-(k/2)`; the result is element `k/2` of the
//!   sorted window, so even kernels take the upper of the two middle values.
//!
//! The fast path keeps each window sorted and slides it by one element at a time (remove the
//! outgoing value, insert the incoming one) for eight sequences at once with branch-free
//! min/max/select, which vectorises (AVX2 where the CPU has it); `crate::reference::median_filter`
//! is the sort-based check on it.

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

/// Lanes processed together: adjacent bins (time median) or adjacent frames (frequency median).
pub const LANES: usize = 8;

/// Eight f32 lanes with the three operations the sliding median needs. Implemented with AVX
/// (where the CPU has it), with two SSE halves (every x86-64), and portably.
trait Lanes: Copy {
    fn load(v: &[f32; LANES]) -> Self;
    fn store(self) -> [f32; LANES];
    /// Per lane: `if cur >= old { next } else { cur }`.
    fn remove_step(cur: Self, next: Self, old: Self) -> Self;
    /// Per lane: `max(below, min(cur, new))`.
    fn insert_step(below: Self, cur: Self, new: Self) -> Self;
    fn min(a: Self, b: Self) -> Self;
    fn max(a: Self, b: Self) -> Self;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, LANES};
    use std::arch::x86_64::*;

    /// AVX lanes; only used inside functions compiled with `target_feature(enable = "avx2")`.
    #[derive(Clone, Copy)]
    pub(super) struct Avx(__m256);

    impl Lanes for Avx {
        #[inline(always)]
        fn load(v: &[f32; LANES]) -> Self {
            // SAFETY: reads 8 floats from a valid [f32; 8]; AVX is enabled in every caller.
            Avx(unsafe { _mm256_loadu_ps(v.as_ptr()) })
        }
        #[inline(always)]
        fn store(self) -> [f32; LANES] {
            let mut out = [0.0; LANES];
            // SAFETY: writes 8 floats into a valid [f32; 8].
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), self.0) };
            out
        }
        #[inline(always)]
        fn remove_step(cur: Self, next: Self, old: Self) -> Self {
            // SAFETY: AVX is enabled in every caller.
            unsafe {
                Avx(_mm256_blendv_ps(
                    cur.0,
                    next.0,
                    _mm256_cmp_ps::<_CMP_GE_OQ>(cur.0, old.0),
                ))
            }
        }
        #[inline(always)]
        fn insert_step(below: Self, cur: Self, new: Self) -> Self {
            // SAFETY: AVX is enabled in every caller.
            unsafe { Avx(_mm256_max_ps(below.0, _mm256_min_ps(cur.0, new.0))) }
        }
        #[inline(always)]
        fn min(a: Self, b: Self) -> Self {
            // SAFETY: AVX is enabled in every caller.
            unsafe { Avx(_mm256_min_ps(a.0, b.0)) }
        }
        #[inline(always)]
        fn max(a: Self, b: Self) -> Self {
            // SAFETY: AVX is enabled in every caller.
            unsafe { Avx(_mm256_max_ps(a.0, b.0)) }
        }
    }

    /// Two SSE halves: SSE2 is part of every x86-64 CPU.
    #[derive(Clone, Copy)]
    pub(super) struct Sse(__m128, __m128);

    impl Lanes for Sse {
        #[inline(always)]
        fn load(v: &[f32; LANES]) -> Self {
            // SAFETY: reads 2 × 4 floats from a valid [f32; 8].
            unsafe { Sse(_mm_loadu_ps(v.as_ptr()), _mm_loadu_ps(v.as_ptr().add(4))) }
        }
        #[inline(always)]
        fn store(self) -> [f32; LANES] {
            let mut out = [0.0; LANES];
            // SAFETY: writes 2 × 4 floats into a valid [f32; 8].
            unsafe {
                _mm_storeu_ps(out.as_mut_ptr(), self.0);
                _mm_storeu_ps(out.as_mut_ptr().add(4), self.1);
            }
            out
        }
        #[inline(always)]
        fn remove_step(cur: Self, next: Self, old: Self) -> Self {
            #[inline(always)]
            fn one(cur: __m128, next: __m128, old: __m128) -> __m128 {
                // SAFETY: SSE2 is baseline on x86-64.
                unsafe {
                    let m = _mm_cmpge_ps(cur, old);
                    _mm_or_ps(_mm_and_ps(m, next), _mm_andnot_ps(m, cur))
                }
            }
            Sse(one(cur.0, next.0, old.0), one(cur.1, next.1, old.1))
        }
        #[inline(always)]
        fn insert_step(below: Self, cur: Self, new: Self) -> Self {
            Self::max(below, Self::min(cur, new))
        }
        #[inline(always)]
        fn min(a: Self, b: Self) -> Self {
            // SAFETY: SSE2 is baseline on x86-64.
            unsafe { Sse(_mm_min_ps(a.0, b.0), _mm_min_ps(a.1, b.1)) }
        }
        #[inline(always)]
        fn max(a: Self, b: Self) -> Self {
            // SAFETY: SSE2 is baseline on x86-64.
            unsafe { Sse(_mm_max_ps(a.0, b.0), _mm_max_ps(a.1, b.1)) }
        }
    }
}

/// Portable lanes for other targets.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[derive(Clone, Copy)]
struct Portable([f32; LANES]);

impl Lanes for Portable {
    #[inline(always)]
    fn load(v: &[f32; LANES]) -> Self {
        Portable(*v)
    }
    #[inline(always)]
    fn store(self) -> [f32; LANES] {
        self.0
    }
    #[inline(always)]
    fn remove_step(cur: Self, next: Self, old: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if cur.0[l] >= old.0[l] {
                next.0[l]
            } else {
                cur.0[l]
            }
        }))
    }
    #[inline(always)]
    fn insert_step(below: Self, cur: Self, new: Self) -> Self {
        Self::max(below, Self::min(cur, new))
    }
    #[inline(always)]
    fn min(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if a.0[l] < b.0[l] {
                a.0[l]
            } else {
                b.0[l]
            }
        }))
    }
    #[inline(always)]
    fn max(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if a.0[l] > b.0[l] {
                a.0[l]
            } else {
                b.0[l]
            }
        }))
    }
}

/// Sliding median of `LANES` independent sequences at once, branch-free so it vectorises.
///
/// Element `j` of the extended sequences is `get(j)`, for `j` in `0 .. n_out + k - 1`; `put(i, m)`
/// receives the medians of windows `i .. i + k`. Each lane keeps its window sorted: a step removes
/// the outgoing value (`s[i] = s[i] >= old ? s[i+1] : s[i]`, which closes the gap at old's first
/// copy) and inserts the incoming one (`s[i] = max(s[i-1], min(s[i], new))`), both O(k) with no
/// branches and no data-dependent memory moves.
#[inline(always)]
fn sliding_median_lanes<V: Lanes>(
    k: usize,
    n_out: usize,
    get: impl Fn(usize) -> [f32; LANES],
    mut put: impl FnMut(usize, [f32; LANES]),
) {
    if n_out == 0 {
        return;
    }
    let mid = k / 2;
    // Start from a window of +inf and insert the first k values with the same update (removing
    // one +inf each time), so the sliding step is the only code path.
    let inf = V::load(&[f32::INFINITY; LANES]);
    let mut s: Vec<V> = vec![inf; k];
    for i in 0..n_out + k - 1 {
        let (old, new) = if i < k {
            (inf, V::load(&get(i)))
        } else {
            (V::load(&get(i - k)), V::load(&get(i)))
        };
        if k == 1 {
            s[0] = new;
        } else {
            // One pass over the window, in place: t[j] is the window with `old` removed
            // (from its first copy on, values move one place down) and the result is `new`
            // inserted into t: max(t[j-1], min(t[j], new)).
            let mut cur = s[0];
            let mut t_prev = V::remove_step(cur, s[1], old);
            s[0] = V::min(t_prev, new);
            cur = s[1];
            for j in 1..k - 1 {
                let next = s[j + 1];
                let t = V::remove_step(cur, next, old);
                s[j] = V::insert_step(t_prev, t, new);
                t_prev = t;
                cur = next;
            }
            s[k - 1] = V::max(t_prev, new);
        }
        if i + 1 >= k {
            put(i + 1 - k, s[mid].store());
        }
    }
}

#[cfg(target_arch = "x86_64")]
type DefaultLanes = x86::Sse;
#[cfg(not(target_arch = "x86_64"))]
type DefaultLanes = Portable;

/// Scratch buffers for the median filters, one set per worker thread.
#[derive(Default, Debug)]
pub struct MedianScratch {
    index: Vec<usize>,
}

/// Indices (into the held part) of the reflect-extended sequence for outputs centred on
/// `first, first + tap, ..` (`n_out` of them; windows of `k` taps `tap` apart) of an `n`-long
/// sequence whose held part starts at `held_offset`.
fn extended_index(
    index: &mut Vec<usize>,
    held_offset: usize,
    n: usize,
    (first, tap): (usize, usize),
    n_out: usize,
    k: usize,
) {
    let tap = tap as i64;
    let start = first as i64 + tap * window_start(k);
    index.clear();
    index.extend((0..n_out + k - 1).map(|j| {
        reflect_index(start + tap * j as i64, n)
            .checked_sub(held_offset)
            .expect("median window reaches before the held frames")
    }));
}

/// Core of [`median_time`], inlined into a plain and an AVX2 build.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn median_time_impl<V: Lanes>(
    mag: &[f32],
    bins: usize,
    held_offset: usize,
    n_frames: usize,
    (first, tap): (usize, usize),
    k: usize,
    out: &mut [f32],
    bin_range: std::ops::Range<usize>,
    scratch: &mut MedianScratch,
) {
    let n_out = out.len() / bins;
    let held = mag.len() / bins;
    // Outputs `phase, phase + tap, ..` slide one window over frames `tap` apart.
    for phase in 0..tap.min(n_out) {
        let count = (n_out - phase).div_ceil(tap);
        let index = &mut scratch.index;
        extended_index(index, held_offset, n_frames, (first + phase, tap), count, k);
        assert!(
            index.iter().all(|&i| i < held),
            "median window reaches past the held frames"
        );
        let mut b0 = bin_range.start;
        while b0 < bin_range.end {
            // The last group repeats its final bin in the unused lanes.
            let lane_bin = |l: usize| (b0 + l).min(bin_range.end - 1);
            sliding_median_lanes::<V>(
                k,
                count,
                |j| {
                    let row = &mag[index[j] * bins..];
                    std::array::from_fn(|l| row[lane_bin(l)])
                },
                |i, m| {
                    let at = (phase + i * tap) * bins + b0;
                    for (l, &v) in m.iter().enumerate().take(bin_range.end - b0) {
                        out[at + l] = v;
                    }
                },
            );
            b0 += LANES;
        }
    }
}

/// Harmonic estimate: median along time (frames) for the bins in `bin_range`.
///
/// `mag` is frame-major (`mag[i * bins + b]` = bin `b` of frame `held_offset + i`), `n_frames` is
/// the whole signal's frame count (for the boundary); `out` is frame-major too and receives frames
/// `first .. first + out.len() / bins`. Every frame the windows reach must be held.
///
/// # Panics
/// If a window reaches a frame that is not held.
#[allow(clippy::too_many_arguments)]
pub fn median_time(
    mag: &[f32],
    bins: usize,
    held_offset: usize,
    n_frames: usize,
    first: usize,
    k: usize,
    out: &mut [f32],
    bin_range: std::ops::Range<usize>,
    scratch: &mut MedianScratch,
) {
    median_time_tapped(
        mag,
        bins,
        held_offset,
        n_frames,
        (first, 1),
        k,
        out,
        bin_range,
        scratch,
    )
}

/// [`median_time`] over a window of `k` taps `tap` frames apart: the median of frames
/// `t + tap · o` for `o` in `-(k/2) ..= k-1-(k/2)` (reflected at the signal's ends), for each
/// output frame `t` of `first ..` (`(first, tap)`). It spans `tap · (k − 1) + 1` frames at the
/// cost of a `k` window: the production stems' harmonic estimate takes every 2nd frame of its
/// 0.5 s (STFT frames `n_fft / 4` apart overlap by three quarters, so their neighbours add
/// little to a median). `tap` 1 is [`median_time`].
///
/// # Panics
/// If a window reaches a frame that is not held, or `tap` is 0.
#[allow(clippy::too_many_arguments)]
pub fn median_time_tapped(
    mag: &[f32],
    bins: usize,
    held_offset: usize,
    n_frames: usize,
    (first, tap): (usize, usize),
    k: usize,
    out: &mut [f32],
    bin_range: std::ops::Range<usize>,
    scratch: &mut MedianScratch,
) {
    assert!(tap > 0, "median tap of 0 frames");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2(
            mag: &[f32],
            bins: usize,
            held_offset: usize,
            n_frames: usize,
            first: (usize, usize),
            k: usize,
            out: &mut [f32],
            bin_range: std::ops::Range<usize>,
            scratch: &mut MedianScratch,
        ) {
            median_time_impl::<x86::Avx>(
                mag,
                bins,
                held_offset,
                n_frames,
                first,
                k,
                out,
                bin_range,
                scratch,
            )
        }
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe {
            avx2(
                mag,
                bins,
                held_offset,
                n_frames,
                (first, tap),
                k,
                out,
                bin_range,
                scratch,
            )
        };
        return;
    }
    median_time_impl::<DefaultLanes>(
        mag,
        bins,
        held_offset,
        n_frames,
        (first, tap),
        k,
        out,
        bin_range,
        scratch,
    )
}

/// Core of [`median_freq`], inlined into a plain and an AVX2 build.
#[inline(always)]
fn median_freq_impl<V: Lanes>(
    mag: &[f32],
    bins: usize,
    k: usize,
    out: &mut [f32],
    scratch: &mut MedianScratch,
) {
    let frames = mag.len() / bins;
    let index = &mut scratch.index;
    extended_index(index, 0, bins, (0, 1), bins, k);
    let mut t0 = 0;
    while t0 < frames {
        let lane_row = |l: usize| (t0 + l).min(frames - 1) * bins;
        let rows: [usize; LANES] = std::array::from_fn(lane_row);
        sliding_median_lanes::<V>(
            k,
            bins,
            |j| std::array::from_fn(|l| mag[rows[l] + index[j]]),
            |i, m| {
                for (l, &v) in m.iter().enumerate().take(frames - t0) {
                    out[(t0 + l) * bins + i] = v;
                }
            },
        );
        t0 += LANES;
    }
}

/// Percussive estimate: median along frequency (bins) of every frame in `mag` (frame-major,
/// `bins` per frame), written frame-major into `out`.
pub fn median_freq(
    mag: &[f32],
    bins: usize,
    k: usize,
    out: &mut [f32],
    scratch: &mut MedianScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(
            mag: &[f32],
            bins: usize,
            k: usize,
            out: &mut [f32],
            scratch: &mut MedianScratch,
        ) {
            median_freq_impl::<x86::Avx>(mag, bins, k, out, scratch)
        }
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { avx2(mag, bins, k, out, scratch) };
        return;
    }
    median_freq_impl::<DefaultLanes>(mag, bins, k, out, scratch)
}

/// Median along one sequence with the reflect boundary: `out[j]` is the median of the window
/// around element `first + j` of an `n`-long sequence, of which `row` holds the elements from
/// `row_offset` on.
///
/// # Panics
/// If a window reaches an element that is not held.
pub fn median_reflect(
    row: &[f32],
    row_offset: usize,
    n: usize,
    first: usize,
    k: usize,
    out: &mut [f32],
    scratch: &mut MedianScratch,
) {
    median_time(row, 1, row_offset, n, first, k, out, 0..1, scratch);
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
        // Window of 4 around element 2 covers offsets -2 ..= 1: [4, 1, 3, 2] → sorted [1, 2, 3, 4] → 3.
        let x = [4.0, 1.0, 3.0, 2.0, 9.0];
        let mut out = [0.0];
        median_reflect(
            &x,
            0,
            x.len(),
            2,
            4,
            &mut out,
            &mut MedianScratch::default(),
        );
        assert_eq!(out[0], 3.0);
    }
}
