//! Stage `mask`: HPSS soft masks as `librosa.util.softmask`, and their application to the
//! spectrum. Twin of `shaders/mask.wgsl`.
//!
//! mask_H = softmask(H, margin_h · P), mask_P = softmask(P, margin_p · H), with
//! `split_zeros = (margin_h == 1 && margin_p == 1)`. With margin 1 and finite power the two masks
//! sum to one; otherwise the residual X − H − P carries the rest, so stems always sum to X.

use crate::params::HpssParams;
use realfft::num_complex::Complex32;

/// `x^p` with numpy's fast paths for p = 1 and p = 2 (so results match numpy bit for bit there),
/// and two multiplies for p = 4 (within an ulp or two of `powf`).
#[inline]
fn pow(x: f32, p: f32) -> f32 {
    if p == 2.0 {
        x * x
    } else if p == 1.0 {
        x
    } else if p == 4.0 {
        let x2 = x * x;
        x2 * x2
    } else {
        x.powf(p)
    }
}

/// `librosa.util.softmask` for one element, in f32.
#[inline]
pub fn softmask(x: f32, x_ref: f32, power: f32, split_zeros: bool) -> f32 {
    if power.is_infinite() {
        // Hard mask: strict comparison, so ties give 0 to both components.
        return if x > x_ref { 1.0 } else { 0.0 };
    }
    softmask_with(x, x_ref, split_zeros, |v| pow(v, power))
}

/// Harmonic and percussive masks of one frame (or any run of bins) from the two median estimates.
pub fn hpss_masks(
    harm: &[f32],
    perc: &[f32],
    params: &HpssParams,
    mask_h: &mut [f32],
    mask_p: &mut [f32],
) {
    let split = params.split_zeros();
    let (p, mh, mp) = (
        params.power,
        params.margin_harmonic,
        params.margin_percussive,
    );
    let n = harm
        .len()
        .min(perc.len())
        .min(mask_h.len())
        .min(mask_p.len());
    let (harm, perc, mask_h, mask_p) = (&harm[..n], &perc[..n], &mut mask_h[..n], &mut mask_p[..n]);
    // One loop per power, each branch-free per element so it vectorises.
    macro_rules! masks {
        ($pow:expr) => {
            for i in 0..n {
                let (h, q) = (harm[i], perc[i]);
                mask_h[i] = softmask_with(h, q * mh, split, $pow);
                mask_p[i] = softmask_with(q, h * mp, split, $pow);
            }
        };
    }
    if p.is_infinite() {
        for i in 0..n {
            let (h, q) = (harm[i], perc[i]);
            mask_h[i] = if h > q * mh { 1.0 } else { 0.0 };
            mask_p[i] = if q > h * mp { 1.0 } else { 0.0 };
        }
    } else if p == 2.0 {
        masks!(|x: f32| x * x)
    } else if p == 1.0 {
        masks!(|x: f32| x)
    } else if p == 4.0 {
        // The production stems' default: two multiplies instead of `powf`.
        masks!(|x: f32| {
            let x2 = x * x;
            x2 * x2
        })
    } else {
        masks!(|x: f32| x.powf(p))
    }
}

simd_dispatch!(
    /// The production stems' steady gate: `mask_p[i] *= softmask(perc[i], margin · steady[i])` at
    /// `power` (no split of zeros: a bin with no percussive estimate keeps none), so the drums keep a
    /// bin's percussive share only where the percussive estimate stands above its own steady level
    /// (`steady`: its median along time). `margin` ≤ 0: no gate. Twin of `steady_gate` in
    /// `shaders/common.wgsl` (applied by `shaders/production.wgsl`).
    pub fn steady_gate(perc: &[f32], steady: &[f32], margin: f32, power: f32, mask_p: &mut [f32]) {
        if margin <= 0.0 {
            return;
        }
        let n = perc.len().min(steady.len()).min(mask_p.len());
        let (perc, steady, mask_p) = (&perc[..n], &steady[..n], &mut mask_p[..n]);
        macro_rules! gate {
            ($pow:expr) => {
                for i in 0..n {
                    mask_p[i] *= softmask_with(perc[i], margin * steady[i], false, $pow);
                }
            };
        }
        if power.is_infinite() {
            for i in 0..n {
                mask_p[i] *= if perc[i] > margin * steady[i] {
                    1.0
                } else {
                    0.0
                };
            }
        } else if power == 4.0 {
            gate!(|x: f32| {
                let x2 = x * x;
                x2 * x2
            })
        } else {
            gate!(|x: f32| pow(x, power))
        }
    }
);

/// `softmask` for finite power, written with selects instead of branches.
#[inline(always)]
fn softmask_with(x: f32, x_ref: f32, split_zeros: bool, pow: impl Fn(f32) -> f32) -> f32 {
    let z = if x > x_ref { x } else { x_ref };
    let bad = z < f32::MIN_POSITIVE;
    let z = if bad { 1.0 } else { z };
    let m = pow(x / z);
    let r = pow(x_ref / z);
    let mask = m / (m + r);
    if bad {
        if split_zeros {
            0.5
        } else {
            0.0
        }
    } else {
        mask
    }
}

simd_dispatch!(
    /// Multiplies `spectrum` by `mask` into `out`: one stem's spectrum.
    pub fn apply_mask(spectrum: &[Complex32], mask: &[f32], out: &mut [Complex32]) {
        for ((o, z), &m) in out.iter_mut().zip(spectrum).zip(mask) {
            *o = Complex32::new(z.re * m, z.im * m);
        }
    }
);

/// The remainder stem: `spectrum − Σ stems`, so that all stems sum exactly to the spectrum.
pub fn remainder(spectrum: &[Complex32], stems: &[&[Complex32]], out: &mut [Complex32]) {
    out.copy_from_slice(spectrum);
    for stem in stems {
        for (o, s) in out.iter_mut().zip(stem.iter()) {
            *o -= *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourth_power_fast_path_matches_powf() {
        // The p = 4 loop (two multiplies) against softmask's generic formula with powf.
        let mut rng = crate::rng::Rng::new(5);
        let n = 4096;
        let harm: Vec<f32> = (0..n)
            .map(|i| {
                if i % 11 == 0 {
                    0.0
                } else {
                    rng.uniform() * 50.0
                }
            })
            .collect();
        let perc: Vec<f32> = (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    0.0
                } else {
                    rng.uniform() * 50.0
                }
            })
            .collect();
        let p = HpssParams {
            power: 4.0,
            margin_harmonic: 1.2,
            margin_percussive: 1.1,
            ..Default::default()
        };
        let (mut mh, mut mp) = (vec![0.0; n], vec![0.0; n]);
        hpss_masks(&harm, &perc, &p, &mut mh, &mut mp);
        for i in 0..n {
            let want_h = softmask_with(harm[i], perc[i] * 1.2, false, |x| x.powf(4.0));
            let want_p = softmask_with(perc[i], harm[i] * 1.1, false, |x| x.powf(4.0));
            assert!(
                (mh[i] - want_h).abs() <= 1e-6 && (mp[i] - want_p).abs() <= 1e-6,
                "bin {i}: ({}, {}) vs powf ({want_h}, {want_p}) for h={} p={}",
                mh[i],
                mp[i],
                harm[i],
                perc[i]
            );
        }
    }

    #[test]
    fn steady_gate_is_the_softmask_of_the_steady_level() {
        let mut rng = crate::rng::Rng::new(9);
        let n = 2048;
        let perc: Vec<f32> = (0..n)
            .map(|i| {
                if i % 13 == 0 {
                    0.0
                } else {
                    rng.uniform() * 8.0
                }
            })
            .collect();
        let steady: Vec<f32> = (0..n)
            .map(|i| {
                if i % 17 == 0 {
                    0.0
                } else {
                    rng.uniform() * 8.0
                }
            })
            .collect();
        let start: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
        for power in [1.0, 2.0, 4.0, 3.0, f32::INFINITY] {
            let mut mp = start.clone();
            steady_gate(&perc, &steady, 1.5, power, &mut mp);
            for i in 0..n {
                let want = start[i] * softmask(perc[i], 1.5 * steady[i], power, false);
                assert!(
                    (mp[i] - want).abs() <= 1e-6,
                    "power {power}, bin {i}: {} vs {want} (perc {}, steady {})",
                    mp[i],
                    perc[i],
                    steady[i]
                );
            }
        }
        let mut mp = start.clone();
        steady_gate(&perc, &steady, 0.0, 4.0, &mut mp);
        assert_eq!(mp, start, "margin 0 turns the gate off");
    }

    #[test]
    fn softmask_matches_librosa_cases() {
        assert_eq!(softmask(0.0, 0.0, 2.0, true), 0.5);
        assert_eq!(softmask(0.0, 0.0, 2.0, false), 0.0);
        assert_eq!(softmask(3.0, 4.0, 2.0, true), 9.0 / 25.0);
        assert_eq!(softmask(1.0, 1.0, f32::INFINITY, true), 0.0);
        assert_eq!(softmask(2.0, 1.0, f32::INFINITY, true), 1.0);
    }
}
