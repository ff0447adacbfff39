//! The five production stems: masks partition unity at every bin (random spectra, with the
//! tonal shift); the stems sum back to the master (and to −120 dBFS at 24 bits through the CLI,
//! in `cli.rs`); blocked equals whole-file (the pitch lines, the steady estimate and the tonal
//! weights decide each frame on a fixed window); a separator reused across tracks (its pooled
//! frame scratch) equals a fresh one; silence in, silence out; and synthetic cases
//! with known answers — a bass line, a lead with vibrato, a chord pad and a click track, mixed —
//! each landing mostly (≥ 80 % of its energy) in its own stem. The known-answer mix is built so
//! that the ideal ratio mask gives every part 0.92 or more
//! (`scripts/evalset/synthetic_oracle.py`). The pad is the hard part: its notes C4 E4 G4 sit on
//! partials 4-6 of the C2 (and near partials of the other bass notes), which the bass comb's
//! power-law envelope leaves to the harmony, and its partials crowd the 350 Hz frequency median
//! so that it looks flat and steady there, which the tonal shift hands back to the harmonic side.
//! A harder mix (a bright bass 11 dB over a quiet pad, where the ideal ratio mask itself gives
//! the pad 0.52) is held to today's shares as floors. A melody's rest over a held chord, where the
//! line follows the chord's top voice, leaves the chord in the harmony (the melody floor). Struck
//! chords keep their attacks out of the drums, and noise hits stay there (the note sustain). See
//! the shares with
//! `cargo test --release --test production synthetic -- --nocapture`.

mod common;

use common::assert_identical;
use std::f32::consts::TAU;
use stemkit::production::production_masks;
use stemkit::rng::Rng;
use stemkit::stems::{Stem, PRODUCTION};
use stemkit::{SeparationSpec, Separator};

fn five(rate: u32, block_frames: usize) -> Separator {
    let spec = SeparationSpec {
        stems: "drums,bass,melody,harmony,fx".into(),
        block_frames,
        ..Default::default()
    };
    Separator::new(spec.resolve(rate).unwrap()).unwrap()
}

/// The five stems at 48 kHz with one change to the default production settings.
fn five_with(change: impl FnOnce(&mut stemkit::production::ProductionSpec)) -> Separator {
    let mut spec = SeparationSpec {
        stems: "drums,bass,melody,harmony,fx".into(),
        ..Default::default()
    };
    change(&mut spec.production);
    Separator::new(spec.resolve(48000).unwrap()).unwrap()
}

#[test]
fn masks_partition_unity_at_every_bin() {
    let mut rng = Rng::new(7);
    let bins = 1025;
    for margin in [1.0f32, 1.5, 3.0] {
        let hpss = stemkit::HpssParams {
            margin_harmonic: margin,
            margin_percussive: margin,
            ..Default::default()
        };
        // Random harmonic/percussive estimates (exact zeros included) and line weights.
        let harm: Vec<f32> = (0..bins)
            .map(|i| {
                if i % 17 == 0 {
                    0.0
                } else {
                    rng.uniform() * 10.0
                }
            })
            .collect();
        let perc: Vec<f32> = (0..bins)
            .map(|i| {
                if i % 13 == 0 {
                    0.0
                } else {
                    rng.uniform() * 10.0
                }
            })
            .collect();
        let bass_w: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let mel_w: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let (mut mh, mut mp) = (vec![0.0; bins], vec![0.0; bins]);
        stemkit::stages::mask::hpss_masks(&harm, &perc, &hpss, &mut mh, &mut mp);
        let mut masks = vec![0.0f32; 5 * bins];
        // The tonal shift (weights 0, 1 and between) keeps the partition.
        let tonal: Vec<f32> = (0..bins)
            .map(|i| match i % 3 {
                0 => 0.0,
                1 => 1.0,
                _ => rng.uniform(),
            })
            .collect();
        stemkit::production::tonal_shift(&tonal, &mut mh, &mp);
        // The comb alone is at most the bass weight (which is max(low register, comb)); the
        // drums take the rest of the harmonic share on the bins below the line.
        let comb: Vec<f32> = bass_w.iter().map(|w| w * rng.uniform()).collect();
        let below = bins / 2;
        production_masks(
            &PRODUCTION,
            &mh,
            &mp,
            &bass_w,
            &mel_w,
            (&comb, below),
            &mut masks,
        );
        for b in 0..bins {
            let sum: f32 = (0..5).map(|s| masks[s * bins + b]).sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "margin {margin} bin {b}: masks sum to {sum}"
            );
            assert!((0..5).all(|s| (0.0..=1.0 + 1e-6).contains(&masks[s * bins + b])));
        }
    }
}

/// Every channel of the stems `out` (`[stem][channel]`) sums to the master `x` within 1e-5.
fn assert_sums_to_master(out: &[Vec<Vec<f32>>], x: &[Vec<f32>], what: &str) {
    for (ch, master) in x.iter().enumerate() {
        let worst = (0..master.len())
            .map(|i| (out.iter().map(|s| s[ch][i]).sum::<f32>() - master[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{what}ch {ch}: Σ stems − master peaks at {worst}"
        );
    }
}

#[test]
fn stems_sum_to_the_master_and_blocks_do_not_matter() {
    let rate = 48000;
    let x = vec![
        common::mix(3, 3 * rate as usize + 123, rate as f32),
        common::mix(4, 3 * rate as usize + 123, rate as f32),
    ];
    let whole = five(rate, 100_000).separate(&x);
    assert_eq!(whole.len(), 5);
    assert_sums_to_master(&whole, &x, "");
    for block in [7usize, 64] {
        let out = five(rate, block).separate(&x);
        for s in 0..5 {
            for ch in 0..2 {
                assert_identical(
                    &format!("block {block} stem {s} ch {ch}"),
                    &out[s][ch],
                    &whole[s][ch],
                );
            }
        }
    }
}

#[test]
fn a_spatial_filter_under_the_other_bands_still_separates() {
    // `--spatial-max-freq` below the drum tail's, the note sustain's and the bass's bands: the
    // filter's masks are computed over its few bins only, which once indexed the sustain band
    // out of order (a panic). The stems must still sum to the master.
    let rate = 48000;
    let len = 2 * rate as usize + 31;
    let x = vec![
        common::mix(8, len, rate as f32),
        common::mix(9, len, rate as f32),
    ];
    for hz in [50.0f32, 100.0, 190.0] {
        let out = five_with(|p| p.spatial_max_hz = hz).separate(&x);
        assert_sums_to_master(&out, &x, &format!("{hz} Hz "));
    }
}

#[test]
fn a_separator_reused_across_tracks_gives_a_fresh_ones_stems() {
    // One separator, as a batch uses it: a stereo track (the spatial filter's path), a mono one
    // (the channel-by-channel path), then the stereo one again. Its frame scratch is pooled
    // across slabs, blocks and tracks; every track's stems must equal a fresh separator's bit
    // for bit.
    let rate = 48000;
    let len = 2 * rate as usize + 77;
    let stereo = vec![
        common::mix(5, len, rate as f32),
        common::mix(6, len, rate as f32),
    ];
    let mono = vec![common::mix(7, len + 500, rate as f32)];
    let shared = five(rate, 64);
    let runs = [
        ("stereo", shared.separate(&stereo), &stereo),
        ("mono", shared.separate(&mono), &mono),
        ("stereo again", shared.separate(&stereo), &stereo),
    ];
    for (what, got, input) in &runs {
        let want = five(rate, 64).separate(input);
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            for ch in 0..input.len() {
                assert_identical(&format!("{what}: stem {s} ch {ch}"), &g[ch], &w[ch]);
            }
        }
    }
}

#[test]
fn silence_in_silence_out() {
    let x = vec![vec![0.0f32; 48000]; 2];
    for (s, stem) in five(48000, 1024).separate(&x).iter().enumerate() {
        for ch in stem {
            assert!(ch.iter().all(|&v| v == 0.0), "stem {s} is not silent");
        }
    }
}

/// ⟨a, b⟩ in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Separates the mono `mix` with `sep`; the returned closure gives the share of a part's
/// energy in a stem, `⟨stem, part⟩ / ⟨part, part⟩`.
fn mono_shares(sep: Separator, mix: &[f32]) -> impl Fn(Stem, &[f32]) -> f64 {
    let stems = sep.separate(&[mix.to_vec()]);
    let order = sep.stems().to_vec();
    move |stem, part| {
        let i = order.iter().position(|&s| s == stem).unwrap();
        dot(&stems[i][0], part) / dot(part, part)
    }
}

/// A harmonic tone following `f0(t)` whose partial h has amplitude `amp / h^rolloff`.
fn tone(
    len: usize,
    rate: f32,
    partials: usize,
    amp: f32,
    rolloff: f32,
    f0: impl Fn(f32) -> f32,
) -> Vec<f32> {
    let mut phase = 0.0f32;
    let mut out = vec![0.0f32; len];
    for (i, o) in out.iter_mut().enumerate() {
        let t = i as f32 / rate;
        let f = f0(t);
        phase = (phase + TAU * f / rate) % (TAU * 64.0);
        *o = amp
            * (1..=partials)
                .filter(|&h| h as f32 * f < rate / 2.0)
                .map(|h| (h as f32 * phase).sin() / (h as f32).powf(rolloff))
                .sum::<f32>();
    }
    out
}

/// A C major triad around middle C (C4 E4 G4), each note 6 partials falling 6 dB per octave,
/// fundamentals of amplitude `amp`, held for `len` samples.
fn c_major_pad(len: usize, rate: f32, amp: f32) -> Vec<f32> {
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    [60.0f32, 64.0, 67.0]
        .iter()
        .map(|&n| tone(len, rate, 6, amp, 1.0, |_| midi(n)))
        .fold(vec![0.0f32; len], |mut acc, v| {
            acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            acc
        })
}

/// How a synthetic mix's bass and pad are made (the lead and the clicks are the same in both).
#[derive(Clone, Copy)]
struct Recipe {
    /// The bass's partial h has amplitude 0.3 / h^rolloff.
    bass_rolloff: f32,
    /// Amplitude of each pad note's fundamental.
    pad_amp: f32,
}

/// The known-answer mix: a round bass (partials falling 12 dB per octave, as a finger-played
/// bass guitar), a lead with vibrato, a C major pad as loud as the lead, a click track. The
/// ideal ratio mask gives each part 0.92 or more of its energy here
/// (`scripts/evalset/synthetic_oracle.py`), so 0.8 is a fair bar for a mask.
const KNOWN_ANSWER: Recipe = Recipe {
    bass_rolloff: 2.0,
    pad_amp: 0.08,
};

/// A harder mix: a bright bass (partials falling 6 dB per octave) 11 dB louder than a quiet pad
/// whose notes sit on its partials (C4 E4 G4 are partials 4-6 of the C2). The ideal ratio mask
/// itself gives the pad only 0.52 of its energy here, so it is held to floors, not to 0.8.
const DENSE: Recipe = Recipe {
    bass_rolloff: 1.0,
    pad_amp: 0.05,
};

/// The synthetic mix's parts and, for each, the share of its energy in every stem, as a report.
fn synthetic_shares(recipe: Recipe) -> (Vec<(Stem, f64)>, String) {
    synthetic_shares_with(recipe, five(48000, 1024))
}

/// [`synthetic_shares`] through `sep` (five stems at 48 kHz).
fn synthetic_shares_with(recipe: Recipe, sep: Separator) -> (Vec<(Stem, f64)>, String) {
    let rate = 48000.0f32;
    let len = (4.0 * rate) as usize;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    // Bass: a line of four notes (A1, C2, E2, G1), one a second.
    let bass = tone(len, rate, 8, 0.30, recipe.bass_rolloff, |t| {
        midi([33.0, 36.0, 40.0, 31.0][(t as usize).min(3)])
    });
    // Lead: E5 then A5, with a 5.5 Hz vibrato of ±30 cents.
    let lead = tone(len, rate, 10, 0.12, 1.0, |t| {
        let note = if t < 2.0 { 76.0 } else { 81.0 };
        midi(note) * 2f32.powf(0.3 / 12.0 * (TAU * 5.5 * t).sin())
    });
    // Pad: a sustained C major triad around middle C, with a slow fade in.
    let pad: Vec<f32> = c_major_pad(len, rate, recipe.pad_amp)
        .into_iter()
        .enumerate()
        .map(|(i, v)| v * (i as f32 / (0.2 * rate)).min(1.0))
        .collect();
    // Clicks: a short decaying noise burst every 250 ms.
    let mut rng = Rng::new(11);
    let clicks: Vec<f32> = (0..len)
        .map(|i| {
            let k = i % (rate as usize / 4);
            let env = (-(k as f32) / (0.004 * rate)).exp();
            0.8 * env * (rng.uniform() * 2.0 - 1.0)
        })
        .collect();
    let parts = [
        (Stem::Bass, &bass),
        (Stem::Melody, &lead),
        (Stem::Harmony, &pad),
        (Stem::Drums, &clicks),
    ];
    let mix: Vec<f32> = (0..len)
        .map(|i| bass[i] + lead[i] + pad[i] + clicks[i])
        .collect();
    let stems = sep.separate(std::slice::from_ref(&mix));
    let mut report = String::new();
    let mut own_shares = Vec::new();
    for (own, part) in parts {
        let energy = dot(part, part);
        // Share of the part's energy in each stem: ⟨stem, part⟩ / ⟨part, part⟩ (these sum to
        // ⟨mix, part⟩ / ⟨part, part⟩ ≈ 1, the parts being nearly uncorrelated).
        let shares: Vec<(Stem, f64)> = sep
            .stems()
            .iter()
            .zip(&stems)
            .map(|(&s, out)| (s, dot(&out[0], part) / energy))
            .collect();
        let mine = shares.iter().find(|(s, _)| *s == own).unwrap().1;
        report.push_str(&format!(
            "{}: {}\n",
            own.name(),
            shares
                .iter()
                .map(|(s, v)| format!("{} {:.2}", s.name(), v))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        own_shares.push((own, mine));
    }
    (own_shares, report)
}

#[test]
fn synthetic_parts_land_in_their_own_stems() {
    let (shares, report) = synthetic_shares(KNOWN_ANSWER);
    println!("{report}");
    for (stem, share) in &shares {
        assert!(
            *share >= 0.8,
            "{}: {share:.3} of its energy in its own stem, below 0.8:\n{report}",
            stem.name()
        );
    }
}

/// Where the parts of the harder mix land today, as floors against regressions (thirty-first
/// session: lead 0.85, clicks 0.94, bass 0.85, pad 0.55; without the harmony hold 0.88, 0.94,
/// 0.86, 0.55: the lead's ±30-cent vibrato leaves some of it in the harmony stem's mean at the
/// bins it sweeps, and the hold raises the harmony there; on the evaluation songs the hold gains
/// melody +0.18 dB all the same).
#[test]
fn dense_mix_parts_do_not_regress() {
    let (shares, report) = synthetic_shares(DENSE);
    println!("{report}");
    for (stem, floor) in [
        (Stem::Melody, 0.82),
        (Stem::Drums, 0.9),
        (Stem::Bass, 0.8),
        (Stem::Harmony, 0.5),
    ] {
        let got = shares.iter().find(|(s, _)| *s == stem).unwrap().1;
        assert!(
            got >= floor,
            "{}: {got:.3} of its energy in its own stem, below the floor {floor}:\n{report}",
            stem.name()
        );
    }
}

/// A subset of the production stems holds the same stems as the full set (to float rounding: the
/// inverse transforms pair stems differently), here on a mix with a held chord whose fx share
/// the tonal shift moves (so a subset without the shift would differ by far more).
#[test]
fn subsets_deliver_the_full_sets_stems() {
    let rate = 48000u32;
    let len = 2 * rate as usize + 77;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let noise = common::mix(5, len, rate as f32);
    let x: Vec<f32> = [48.0f32, 52.0, 55.0, 60.0]
        .iter()
        .map(|&n| tone(len, rate as f32, 6, 0.08, 1.0, |_| midi(n)))
        .fold(noise, |mut acc, v| {
            acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            acc
        });
    let run = |stems: &str, tonal: f32| {
        let spec = SeparationSpec {
            stems: stems.into(),
            block_frames: 64,
            production: stemkit::production::ProductionSpec {
                tonal_threshold: tonal,
                ..Default::default()
            },
            ..Default::default()
        };
        let sep = Separator::new(spec.resolve(rate).unwrap()).unwrap();
        let out = sep.separate(std::slice::from_ref(&x));
        sep.stems()
            .iter()
            .zip(out)
            .map(|(s, mut o)| (*s, o.remove(0)))
            .collect::<Vec<_>>()
    };
    let full = run("drums,bass,melody,harmony,fx", 0.8);
    let of = |set: &[(Stem, Vec<f32>)], stem: Stem| {
        set.iter().find(|(s, _)| *s == stem).unwrap().1.clone()
    };
    for (stems, kept) in [
        ("fx,rest", vec![Stem::Fx]),
        ("drums,fx,rest", vec![Stem::Drums, Stem::Fx]),
        ("harmony,rest", vec![Stem::Harmony]),
        ("drums,rest", vec![Stem::Drums]),
    ] {
        let sub = run(stems, 0.8);
        for stem in kept {
            let d = max_diff(&of(&sub, stem), &of(&full, stem));
            assert!(
                d < 1e-5,
                "--stems {stems}: {} differs from the full set's by {d}",
                stem.name()
            );
        }
    }
    // Without the tonal shift the fx stem is far from the full set's: the test above can fail.
    let off = run("fx,rest", 1.0);
    let d = max_diff(&of(&off, Stem::Fx), &of(&full, Stem::Fx));
    assert!(d > 1e-3, "the tonal shift moved only {d} of the fx stem");
}

/// The largest absolute difference between two signals.
fn max_diff(p: &[f32], q: &[f32]) -> f32 {
    p.iter()
        .zip(q)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max)
}

/// Two of `common::mix`'s parts (seeds `seeds`) panned apart, so the channels differ in more
/// than level.
fn panned_pair(seeds: (u64, u64), len: usize, rate: u32) -> Vec<Vec<f32>> {
    let (a, b) = (
        common::mix(seeds.0, len, rate as f32),
        common::mix(seeds.1, len, rate as f32),
    );
    let pan = |ga: f32, gb: f32| a.iter().zip(&b).map(|(a, b)| ga * a + gb * b).collect();
    vec![pan(0.8, 0.3), pan(0.2, 0.9)]
}

/// The spatial filter (`--spatial`) on a stereo mix: the stems still sum to the master, blocks of
/// any size (rounded up to whole segments) give the same bits, a subset delivers the full set's
/// stems, the filter does change the stems, and a mono signal passes through it unchanged.
#[test]
fn spatial_filter_keeps_the_sum_blocks_and_subsets() {
    let rate = 48000u32;
    let len = 3 * rate as usize + 321;
    let x = panned_pair((8, 9), len, rate);
    let run = |stems: &str, block_frames: usize, spatial: bool, x: &[Vec<f32>]| {
        let spec = SeparationSpec {
            stems: stems.into(),
            block_frames,
            production: stemkit::production::ProductionSpec {
                spatial,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut params = spec.resolve(rate).unwrap();
        if spatial {
            // Short segments (of two chunks of sums each): three per signal.
            params.production.spatial_frames = 128;
        }
        let sep = Separator::new(params).unwrap();
        let out = sep.separate(x);
        sep.stems().iter().copied().zip(out).collect::<Vec<_>>()
    };
    let five = "drums,bass,melody,harmony,fx";
    let whole = run(five, 100_000, true, &x);
    for ch in 0..2 {
        let worst = (0..len)
            .map(|i| (whole.iter().map(|(_, s)| s[ch][i]).sum::<f32>() - x[ch][i]).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "ch {ch}: Σ stems − master peaks at {worst}");
    }
    for block in [7usize, 130] {
        let out = run(five, block, true, &x);
        for ((stem, o), (_, w)) in out.iter().zip(&whole) {
            for ch in 0..2 {
                assert_identical(
                    &format!("block {block} {} ch {ch}", stem.name()),
                    &o[ch],
                    &w[ch],
                );
            }
        }
    }
    let sub = run("drums,melody,rest", 130, true, &x);
    for (i, stem) in [(0, Stem::Drums), (2, Stem::Melody)] {
        let got = &sub.iter().find(|(s, _)| *s == stem).unwrap().1;
        for (ch, (g, w)) in got.iter().zip(&whole[i].1).enumerate() {
            let d = max_diff(g, w);
            assert!(
                d < 1e-5,
                "drums,melody,rest: {} ch {ch} differs by {d}",
                stem.name()
            );
        }
    }
    let plain = run(five, 100_000, false, &x);
    let d = max_diff(&plain[0].1[0], &whole[0].1[0]);
    assert!(d > 1e-3, "the spatial filter moved the drums by only {d}");
    let mono = vec![x[0].clone()];
    let (m_on, m_off) = (run(five, 130, true, &mono), run(five, 130, false, &mono));
    for ((stem, on), (_, off)) in m_on.iter().zip(&m_off) {
        assert_identical(&format!("mono {}", stem.name()), &on[0], &off[0]);
    }
}

/// The spatial filter is a smooth function of its input: a change of the master at −120 dB moves
/// the stems by far less than the engines' 100 dB agreement. Short segments take their sums
/// from few frames, where a stem that holds a bin in none of them used to get a covariance
/// learnt from leakage alone (75–79 dB on this signal before the shrinkage towards the identity).
#[test]
fn spatial_stems_are_stable_under_tiny_changes_of_the_input() {
    for segment in [24usize, 40, 64] {
        let block = SeparationSpec::default().block_frames;
        let params = || common::spatial_params(segment, f32::INFINITY, block);
        let x = common::production_signal(2, 48_000 * 3 + 333, segment as u64);
        let mut rng = Rng::new(7);
        let nudged: Vec<Vec<f32>> = x
            .iter()
            .map(|c| c.iter().map(|v| v * (1.0 + 1e-6 * rng.signed())).collect())
            .collect();
        let want = Separator::new(params()).unwrap().separate(&x);
        let got = Separator::new(params()).unwrap().separate(&nudged);
        common::assert_stems_match(&format!("segment {segment}"), &got, &want, &x, 90.0);
    }
}

/// A kick's low body under a bass line: a 30 Hz sine decaying over 150 ms every 500 ms (an
/// 808-style kick, with a 3 ms noise click) under a bass line of G2, A2, C3, B2. The time median
/// calls most of the body harmonic, and below 100 Hz the low register gave every harmonic bin to
/// the bass; with `drums_below_line_oct` (1 octave: below half the line's f0, where no harmonic
/// source sounds) the drums take it where the bass comb does not hold the bin.
#[test]
fn kick_body_below_the_bass_line_goes_to_drums() {
    let rate = 48000.0f32;
    let len = (4.0 * rate) as usize;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let bass = tone(len, rate, 8, 0.25, 2.0, |t| {
        midi([43.0, 45.0, 48.0, 47.0][(t as usize).min(3)])
    });
    let mut rng = Rng::new(17);
    let kick: Vec<f32> = (0..len)
        .map(|i| {
            let k = i % (rate as usize / 2);
            let t = k as f32 / rate;
            let body = 0.6 * (-t / 0.15).exp() * (TAU * 30.0 * t).sin();
            let click = 0.3 * (-t / 0.003).exp() * (rng.uniform() * 2.0 - 1.0);
            body + click
        })
        .collect();
    let mix: Vec<f32> = (0..len).map(|i| bass[i] + kick[i]).collect();
    let shares = |octaves: f32| {
        let share = mono_shares(five_with(|p| p.drums_below_line_oct = octaves), &mix);
        (share(Stem::Drums, &kick), share(Stem::Bass, &bass))
    };
    let (kick_on, bass_on) = shares(1.0);
    let (kick_off, bass_off) = shares(0.0);
    let report = format!(
        "kick in drums {kick_on:.3} (off: {kick_off:.3}), bass in bass {bass_on:.3} (off: {bass_off:.3})"
    );
    println!("{report}");
    assert!(kick_on >= 0.8, "{report}");
    assert!(kick_on >= kick_off + 0.1, "{report}");
    assert!(bass_on >= 0.8 && bass_on >= bass_off - 0.02, "{report}");
}

/// A melody's rest: a lead (A5, 10 partials) plays for the first and last 2.5 s of 7 s over a
/// held C major pad (C4 E4 G4); in the rest between, the tracker follows the pad's top voice,
/// 14 semitones under the lead. With the melody floor (default: 12 semitones under the line's
/// median) the line is unvoiced there and the pad stays in the harmony stem; without it the
/// melody stem takes the pad's top voice.
#[test]
fn a_melody_rest_leaves_the_chord_in_the_harmony() {
    let rate = 48000.0f32;
    let len = (7.0 * rate) as usize;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let rest = (2.5 * rate) as usize..(4.5 * rate) as usize;
    let lead: Vec<f32> = tone(len, rate, 10, 0.12, 1.0, |_| midi(81.0))
        .into_iter()
        .enumerate()
        .map(|(i, v)| if rest.contains(&i) { 0.0 } else { v })
        .collect();
    let pad = c_major_pad(len, rate, 0.08);
    let mix: Vec<f32> = (0..len).map(|i| lead[i] + pad[i]).collect();
    // The middle of the rest, away from the lead's edges (0.5 s each side).
    let inner = rest.start + (0.5 * rate) as usize..rest.end - (0.5 * rate) as usize;
    let shares = |floor_st: f32| {
        let sep = five_with(|p| p.melody_floor_st = floor_st);
        let stems = sep.separate(std::slice::from_ref(&mix));
        let share = |stem: Stem, part: &[f32], span: std::ops::Range<usize>| {
            let i = sep.stems().iter().position(|&s| s == stem).unwrap();
            dot(&stems[i][0][span.clone()], &part[span.clone()])
                / dot(&part[span.clone()], &part[span])
        };
        (
            share(Stem::Harmony, &pad, inner.clone()),
            share(Stem::Melody, &pad, inner.clone()),
            share(Stem::Melody, &lead, 0..len),
        )
    };
    let (pad_on, pad_mel_on, lead_on) = shares(12.0);
    let (pad_off, pad_mel_off, lead_off) = shares(0.0);
    let report = format!(
        "in the rest: pad in harmony {pad_on:.3} (no floor: {pad_off:.3}), pad in melody \
         {pad_mel_on:.3} (no floor: {pad_mel_off:.3}); lead in melody {lead_on:.3} (no floor: \
         {lead_off:.3})"
    );
    println!("{report}");
    assert!(
        pad_mel_off >= 0.1,
        "the test needs a line on the pad: {report}"
    );
    assert!(pad_on >= 0.8 && pad_mel_on <= 0.02, "{report}");
    assert!(lead_on >= 0.8 && lead_on >= lead_off - 0.01, "{report}");
}

/// Plucked chords and hits: a C major chord (C4 E4 G4, 8 partials each) struck every 0.5 s
/// (1 ms attack, 0.4 s decay), and a noise hit (15 ms decay) between the strikes. The median
/// filters call each strike's attack percussive; with the note sustain (default: a bin holding
/// half its level 20-65 ms later is a note's) the chord keeps more of its energy out of the
/// drums, and the hits stay there.
#[test]
fn struck_notes_keep_their_attacks_out_of_the_drums() {
    let rate = 48000.0f32;
    let len = (4.0 * rate) as usize;
    let period = rate as usize / 2;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let chord: Vec<f32> = (0..len)
        .map(|i| {
            let t = (i % period) as f32 / rate;
            let env = (t / 0.001).min(1.0) * (-t / 0.4).exp();
            let ring: f32 = [60.0f32, 64.0, 67.0]
                .iter()
                .flat_map(|&n| (1..=8).map(move |h| (h as f32 * midi(n), 1.0 / h as f32)))
                .map(|(f, a)| a * (TAU * f * i as f32 / rate).sin())
                .sum();
            0.05 * env * ring
        })
        .collect();
    let mut rng = Rng::new(31);
    let hits: Vec<f32> = (0..len)
        .map(|i| {
            let k = (i + period / 2) % period;
            let t = k as f32 / rate;
            0.4 * (-t / 0.015).exp() * (rng.uniform() * 2.0 - 1.0)
        })
        .collect();
    let mix: Vec<f32> = (0..len).map(|i| chord[i] + hits[i]).collect();
    let shares = |ratio: f32| {
        let share = mono_shares(five_with(|p| p.note_sustain = ratio), &mix);
        (share(Stem::Drums, &chord), share(Stem::Drums, &hits))
    };
    let (chord_on, hits_on) = shares(0.5);
    let (chord_off, hits_off) = shares(0.0);
    let report = format!(
        "chord in drums {chord_on:.3} (off: {chord_off:.3}), hits in drums {hits_on:.3} (off: \
         {hits_off:.3})"
    );
    println!("{report}");
    assert!(
        chord_off >= 0.05,
        "the test needs attacks in the drums: {report}"
    );
    assert!(chord_on <= 0.5 * chord_off, "{report}");
    assert!(hits_on >= 0.8 && hits_on >= hits_off - 0.02, "{report}");
}

/// A reed lead (its 2nd partial four times its fundamental, as an oboe's) over a C major pad:
/// without the overtone check the melody line sits an octave up, on the lead's even partials,
/// and the fundamental and odd partials go to the harmony (0.73 of the lead in the melody);
/// with it (default) the lead lands in the melody stem (0.90).
#[test]
fn a_reed_lead_is_tracked_at_its_f0() {
    let rate = 48000.0f32;
    let len = (4.0 * rate) as usize;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let reed = [0.25f32, 1.0, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1];
    // A4, E5, D5, A4: one a second, each partial h a sine of amplitude 0.04 · reed[h − 1].
    let notes = [69.0f32, 76.0, 74.0, 69.0];
    let mut phase = 0.0f32;
    let lead: Vec<f32> = (0..len)
        .map(|i| {
            let f = midi(notes[(i as f32 / rate) as usize]);
            phase = (phase + TAU * f / rate) % (TAU * 64.0);
            reed.iter()
                .enumerate()
                .map(|(h, a)| 0.04 * a * ((h + 1) as f32 * phase).sin())
                .sum()
        })
        .collect();
    let pad = c_major_pad(len, rate, 0.03);
    let mix: Vec<f32> = (0..len).map(|i| lead[i] + pad[i]).collect();
    let shares = |penalty: f32| {
        let share = mono_shares(five_with(|p| p.melody_overtone_penalty = penalty), &mix);
        (share(Stem::Melody, &lead), share(Stem::Harmony, &pad))
    };
    let (lead_on, pad_on) = shares(0.5);
    let (lead_off, pad_off) = shares(0.0);
    let report = format!(
        "lead in melody {lead_on:.3} (no check: {lead_off:.3}); pad in harmony {pad_on:.3} (no \
         check: {pad_off:.3})"
    );
    println!("{report}");
    // An octave up the comb still holds the even partials, 0.67 of the lead's energy.
    assert!(
        lead_off <= 0.78,
        "the test needs a lead tracked an octave up without the check: {report}"
    );
    // The lead's partials at f0 meet some of the pad's (A4's 3rd is E4's 4th): the pad gives
    // up a little.
    assert!(lead_on >= 0.85 && pad_on >= 0.9, "{report}");
}

/// The harmony hold (`--harmony-hold`): a held E major pad (E4 G♯4 B4) under a lead, over a
/// bass that alternates A1 and D2 every half second. The A1's 6th and 9th partials lie on the E4
/// and the B4, and there the bass comb takes part of the pad; under the D2 the pad is alone. The
/// hold gives the pad back at least its mean level over ±0.9 s, so its share in the harmony stem
/// rises and its share in the bass falls, and the bass and the lead stay in their stems.
/// Measured: pad in harmony 0.766 → 0.775, in bass 0.063 → 0.055; bass 0.877 → 0.863, lead
/// 0.903 → 0.878. The bass comb's caps already leave this pad most of its bins; on music the
/// hold's gain is in the SDR (README, *The harmony hold*).
#[test]
fn the_harmony_hold_gives_a_held_pad_back() {
    let rate = 48000.0f32;
    let len = (4.0 * rate) as usize;
    let midi = |n: f32| 440.0 * 2f32.powf((n - 69.0) / 12.0);
    let bass = tone(len, rate, 8, 0.3, 1.0, |t| {
        midi(if ((t * 2.0) as usize).is_multiple_of(2) {
            33.0
        } else {
            38.0
        })
    });
    let lead = tone(len, rate, 10, 0.12, 1.0, |t| {
        midi(81.0) * 2f32.powf(0.3 / 12.0 * (TAU * 5.5 * t).sin())
    });
    let pad = [64.0f32, 68.0, 71.0]
        .iter()
        .map(|&n| tone(len, rate, 6, 0.05, 1.0, |_| midi(n)))
        .fold(vec![0.0f32; len], |mut acc, v| {
            acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            acc
        });
    let mix: Vec<f32> = (0..len).map(|i| bass[i] + lead[i] + pad[i]).collect();
    let shares = |sep: Separator| {
        let out = sep.separate(std::slice::from_ref(&mix));
        let of = |stem: Stem, part: &[f32]| {
            let i = sep.stems().iter().position(|s| *s == stem).unwrap();
            dot(&out[i][0], part) / dot(part, part)
        };
        [
            of(Stem::Harmony, &pad),
            of(Stem::Bass, &pad),
            of(Stem::Bass, &bass),
            of(Stem::Melody, &lead),
        ]
    };
    let off = shares(five_with(|p| p.harmony_hold_ms = 0.0));
    let on = shares(five(48000, 1024));
    let report = format!(
        "pad in harmony {:.3} → {:.3}, pad in bass {:.3} → {:.3}, bass in bass {:.3} → {:.3}, \
         lead in melody {:.3} → {:.3}",
        off[0], on[0], off[1], on[1], off[2], on[2], off[3], on[3]
    );
    println!("{report}");
    assert!(on[0] >= off[0] + 0.005, "the pad's harmony share: {report}");
    assert!(on[1] <= off[1] - 0.005, "the pad's bass share: {report}");
    assert!(on[2] >= 0.85 && on[3] >= 0.85, "bass and lead: {report}");
}

/// The harmony hold keeps what the stems promise: they sum to the master; blocks of any size give
/// the same bits (its floors are read within segments fixed to the signal), with the spatial
/// filter (whose pass takes the hold's points) and without it (its own pass), stereo and mono; a
/// subset delivers the full set's stems; and the hold does change the stems.
#[test]
fn harmony_hold_keeps_the_sum_blocks_and_subsets() {
    let rate = 48000u32;
    let len = 3 * rate as usize + 321;
    let x = panned_pair((12, 13), len, rate);
    let run = |stems: &str, block_frames: usize, hold: f32, spatial: bool, x: &[Vec<f32>]| {
        let spec = SeparationSpec {
            stems: stems.into(),
            block_frames,
            production: stemkit::production::ProductionSpec {
                harmony_hold_ms: hold,
                spatial,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut params = spec.resolve(rate).unwrap();
        // Short segments: three per signal, so floors are cut at segment edges inside it.
        params.production.spatial_frames = 128 * usize::from(spatial);
        params.production.profile_frames = 128;
        params.production.melody_floor_frames = 128;
        params.production.hold_frames = 128 * usize::from(hold > 0.0);
        let sep = Separator::new(params).unwrap();
        let out = sep.separate(x);
        sep.stems().iter().copied().zip(out).collect::<Vec<_>>()
    };
    let five = "drums,bass,melody,harmony,fx";
    let mono = vec![x[0].clone()];
    for (what, spatial, x) in [
        ("stereo", true, &x),
        ("stereo without the filter", false, &x),
        ("mono", true, &mono),
    ] {
        let whole = run(five, 100_000, 900.0, spatial, x);
        let outs: Vec<Vec<Vec<f32>>> = whole.iter().map(|(_, o)| o.clone()).collect();
        assert_sums_to_master(&outs, x, &format!("{what}: "));
        for block in [7usize, 130] {
            let out = run(five, block, 900.0, spatial, x);
            for ((stem, o), (_, w)) in out.iter().zip(&whole) {
                for ch in 0..x.len() {
                    assert_identical(
                        &format!("{what}: block {block} {} ch {ch}", stem.name()),
                        &o[ch],
                        &w[ch],
                    );
                }
            }
        }
        for (stems, kept) in [
            (
                "bass,harmony,rest",
                vec![(1, Stem::Bass), (3, Stem::Harmony)],
            ),
            ("melody,rest", vec![(2, Stem::Melody)]),
        ] {
            let sub = run(stems, 130, 900.0, spatial, x);
            for (i, stem) in kept {
                let got = &sub.iter().find(|(s, _)| *s == stem).unwrap().1;
                for (ch, (g, w)) in got.iter().zip(&whole[i].1).enumerate() {
                    let d = max_diff(g, w);
                    assert!(
                        d < 1e-5,
                        "{what}: {stems}: {} ch {ch} differs by {d}",
                        stem.name()
                    );
                }
            }
        }
        let off = run(five, 100_000, 0.0, spatial, x);
        let d = max_diff(&off[3].1[0], &whole[3].1[0]);
        assert!(d > 1e-3, "{what}: the hold moved the harmony by only {d}");
    }
}
