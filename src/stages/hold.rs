//! Stage `hold`: the harmony hold of the production stems. A chord or pad holds its tones for
//! beats while the bass and the melody move, and where one of their combs lands on a chord tone
//! it takes that bin's energy from the harmony stem. The hold gives the harmony stem back at
//! least its own mean amplitude at the bin over the nearby frames (±0.9 s by default): the bin's
//! harmonic share is split between bass, melody and harmony by their amplitudes, with the
//! harmony's amplitude raised to that floor. It only moves energy from the bass and the melody
//! to the harmony, and the three still sum to the harmonic share, so the stems still partition
//! unity.
//!
//! The floor is read on a grid of frames fixed to the signal (every `stride`-th frame, as the
//! spatial filter's sums) and within the frame's segment (the ~11 s grid of the bass profile),
//! so blocked output equals whole-file output. GPU twin: `shaders/hold.wgsl`.

/// The band the hold acts on, Hz: above it a harmony carries little energy, and its points
/// come from the spatial filter's pass (4 kHz, the filter's default band).
pub const HOLD_MAX_HZ: f32 = 4000.0;

/// Each grid point's floor over one segment: `floors[p] = ratio · mean(points[q])` over the
/// points `q` within `radius` of `p` in the segment (`points`, `floors`: `[point][bins]`, the
/// harmony stem's amplitude at the segment's grid frames). Each mean sums its rows in order, as
/// `naive_floors` in the tests does.
pub fn segment_floors(points: &[f32], bins: usize, radius: usize, ratio: f32, floors: &mut [f32]) {
    assert_eq!(
        points.len(),
        floors.len(),
        "points and floors have the same shape"
    );
    if bins == 0 {
        return;
    }
    let n = points.len() / bins;
    for (p, out) in floors.chunks_exact_mut(bins).enumerate() {
        let (lo, hi) = (p.saturating_sub(radius), (p + radius + 1).min(n));
        out.copy_from_slice(&points[lo * bins..(lo + 1) * bins]);
        for row in points[(lo + 1) * bins..hi * bins].chunks_exact(bins) {
            out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
        }
        let scale = ratio / (hi - lo) as f32;
        out.iter_mut().for_each(|o| *o *= scale);
    }
}

/// Applies the hold to one frame's line weights from bin `from` on, over `floor.len()` bins:
/// `bass_w`/`mel_w` the bass and melody weights of the production masks (bass `h · b`, melody
/// `h · (1 − b) · m`, harmony `h · (1 − b) · (1 − m)`), `h` the harmonic mask, `mag` the bin's
/// magnitude and `floor` the harmony's floor there. With `u = b`, `v = (1 − b) m` and
/// `w = (1 − b)(1 − m)` (the three shares of `h`) and `r = max(w, floor / (h · mag))`, the new
/// shares are `u / d`, `v / d` and the rest, `d = u + v + r`; the weights are rewritten to give
/// them. Bins without harmonic magnitude are left as they are.
pub fn apply_hold(
    bass_w: &mut [f32],
    mel_w: &mut [f32],
    h: &[f32],
    mag: &[f32],
    floor: &[f32],
    from: usize,
) {
    let to = floor.len().min(bass_w.len());
    if from >= to {
        return;
    }
    let r = from..to;
    hold_range(
        &mut bass_w[r.clone()],
        &mut mel_w[r.clone()],
        &h[r.clone()],
        &mag[r.clone()],
        &floor[r],
    );
}

simd_dispatch!(
    /// [`apply_hold`]'s loop over its bins, branch-free (it vectorises).
    fn hold_range(bass_w: &mut [f32], mel_w: &mut [f32], h: &[f32], mag: &[f32], floor: &[f32]) {
        let it = bass_w
            .iter_mut()
            .zip(mel_w.iter_mut())
            .zip(h)
            .zip(mag)
            .zip(floor);
        for ((((bw, mw), &h), &x), &f) in it {
            let hx = h * x;
            let held = hx > 0.0;
            let (u, m) = (*bw, *mw);
            let v = (1.0 - u) * m;
            let w = (1.0 - u) * (1.0 - m);
            let d = u + v + w.max(if held { f / hx } else { 0.0 });
            let u2 = u / d;
            let rest = 1.0 - u2;
            let m2 = if rest > 0.0 {
                (v / d / rest).min(1.0)
            } else {
                0.0
            };
            *bw = if held { u2 } else { u };
            *mw = if held { m2 } else { m };
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive_floors(points: &[f32], bins: usize, radius: usize, ratio: f32) -> Vec<f32> {
        let n = points.len() / bins;
        let mut out = vec![0.0f32; points.len()];
        for p in 0..n {
            for b in 0..bins {
                let qs = p.saturating_sub(radius)..(p + radius + 1).min(n);
                let count = qs.len();
                let mut sum = 0.0f32;
                for q in qs {
                    sum += points[q * bins + b];
                }
                out[p * bins + b] = sum * (ratio / count as f32);
            }
        }
        out
    }

    #[test]
    fn floors_are_the_windowed_means() {
        let mut rng = Rng::new(41);
        for (n, bins, radius) in [(1, 3, 0), (7, 5, 2), (30, 17, 11), (4, 9, 40)] {
            let points: Vec<f32> = (0..n * bins).map(|_| rng.uniform() * 3.0).collect();
            let mut got = vec![0.0f32; points.len()];
            segment_floors(&points, bins, radius, 1.3, &mut got);
            let want = naive_floors(&points, bins, radius, 1.3);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "n {n} bins {bins} radius {radius}: first difference at point {} bin {}: {g} vs {w}",
                    i / bins,
                    i % bins
                );
            }
        }
    }

    /// The three harmonic shares of the production masks from the weights.
    fn shares(bw: f32, mw: f32) -> [f32; 3] {
        [bw, (1.0 - bw) * mw, (1.0 - bw) * (1.0 - mw)]
    }

    #[test]
    fn the_hold_moves_energy_only_to_the_harmony_and_keeps_the_sum() {
        let mut rng = Rng::new(42);
        let bins = 400;
        let mut bw: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let mut mw: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        // Some bins wholly bass or melody, or without harmonic magnitude.
        for b in (0..bins).step_by(7) {
            bw[b] = 1.0;
        }
        for b in (3..bins).step_by(11) {
            mw[b] = 1.0;
        }
        let h: Vec<f32> = (0..bins)
            .map(|b| if b % 13 == 5 { 0.0 } else { rng.uniform() })
            .collect();
        let mag: Vec<f32> = (0..bins).map(|_| rng.uniform() * 2.0).collect();
        let floor: Vec<f32> = (0..bins - 20).map(|_| rng.uniform() * 0.8).collect();
        let (bw0, mw0) = (bw.clone(), mw.clone());
        let from = 10;
        apply_hold(&mut bw, &mut mw, &h, &mag, &floor, from);
        for b in 0..bins {
            let (before, after) = (shares(bw0[b], mw0[b]), shares(bw[b], mw[b]));
            let untouched = b < from || b >= floor.len() || h[b] * mag[b] <= 0.0;
            if untouched {
                assert_eq!((bw[b], mw[b]), (bw0[b], mw0[b]), "bin {b} changed");
                continue;
            }
            let sum: f32 = after.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "bin {b}: shares sum to {sum}");
            assert!(
                after.iter().all(|s| (0.0..=1.0 + 1e-6).contains(s)),
                "bin {b}: {after:?}"
            );
            // The harmony gains, the others lose in proportion.
            assert!(
                after[2] >= before[2] - 1e-6,
                "bin {b}: harmony {before:?} → {after:?}"
            );
            assert!(
                after[0] <= before[0] + 1e-6 && after[1] <= before[1] + 1e-6,
                "bin {b}"
            );
            // The split by amplitudes: with r the raised harmony share.
            let r = before[2].max(floor[b] / (h[b] * mag[b]));
            let d = before[0] + before[1] + r;
            for (k, s) in [before[0] / d, before[1] / d, r / d].iter().enumerate() {
                assert!(
                    (after[k] - s).abs() < 2e-6,
                    "bin {b} share {k}: {} vs {s}",
                    after[k]
                );
            }
        }
    }

    #[test]
    fn a_floor_under_the_harmony_changes_nothing() {
        let mut rng = Rng::new(43);
        let bins = 64;
        let mut bw: Vec<f32> = (0..bins).map(|_| rng.uniform() * 0.5).collect();
        let mut mw: Vec<f32> = (0..bins).map(|_| rng.uniform() * 0.5).collect();
        let h = vec![1.0f32; bins];
        let mag = vec![1.0f32; bins];
        // Each floor at most the harmony's amplitude now.
        let floor: Vec<f32> = (0..bins)
            .map(|b| shares(bw[b], mw[b])[2] * rng.uniform())
            .collect();
        let (bw0, mw0) = (bw.clone(), mw.clone());
        apply_hold(&mut bw, &mut mw, &h, &mag, &floor, 0);
        for b in 0..bins {
            let (x, y) = (shares(bw0[b], mw0[b]), shares(bw[b], mw[b]));
            for k in 0..3 {
                assert!(
                    (x[k] - y[k]).abs() < 1e-6,
                    "bin {b} share {k}: {} vs {}",
                    x[k],
                    y[k]
                );
            }
        }
    }
}
