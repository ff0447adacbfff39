//! Stage `pitch`: the bass line and the predominant melody line, tracked on the harmonic part.
//!
//! 1. **Salience** by harmonic summation (in the spirit of Salamon & Gómez 2012): for each f0 on
//!    a log grid (quarter-semitone steps) the weighted sum of the harmonic magnitude at its first
//!    partials, from the spectral peaks of the sum of the channels (a centred source counts
//!    fully): the bass on the harmonic estimate, the melody on the magnitude itself, after the
//!    bass's partials are taken out (see `Separator::track_lines`).
//! 2. **Candidates**: the strongest local maxima of `S` per frame.
//! 3. **A continuity-constrained path** by Viterbi over the candidates, with a cost per semitone
//!    of jump, decided for each frame on a window of frames around it (fixed lag both ways), so a
//!    frame's decision does not depend on where a block starts: blocked equals whole-file.
//! 4. **Voicing**: a frame is voiced when the line's salience is a large enough share of the
//!    frame's harmonic magnitude in the line's register.
//!
//! This stage runs on the CPU in both engines: it works on a few hundred candidates per frame
//! (about 0.2 M operations per second of audio, next to ~60 M for the STFT and medians), its
//! Viterbi is sequential, and its output is two numbers per frame; on the GPU it would cost a
//! readback and a second submission per chunk for no gain.

/// How a line (bass or melody) is searched for and tracked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineParams {
    /// Lowest f0, Hz.
    pub lo_hz: f32,
    /// Highest f0, Hz.
    pub hi_hz: f32,
    /// Partials summed for the salience.
    pub harmonics: usize,
    /// Weight decay per partial (α).
    pub decay: f32,
    /// Path cost per semitone of jump between frames, in units of log-salience.
    pub jump_cost: f32,
    /// Frames each side of a frame that decide its point of the path.
    pub window: usize,
    /// Voicing: the line's salience over the register's summed magnitude must reach this.
    pub voicing: f32,
    /// Highest frequency the register's magnitude is summed to for voicing, Hz.
    pub register_hi_hz: f32,
    /// The salience at f0 is multiplied by `(f0 / lo_hz)^lift` (0: flat).
    pub lift: f32,
    /// Overtone check (0: off): a spectral peak at `(h − ½)`, `(h − ⅓)` or `(h − ⅔)` times an
    /// f0 (`h = 2 ..= harmonics`: between its partials, above its fundamental) takes this share
    /// of its vote `α^(h−1) · a_p` off that f0's salience. Such peaks are partials of `f0 / 2`
    /// or `f0 / 3` that `f0` itself lacks: they show that f0 is the 2nd or 3rd partial of a
    /// lower tone (a reed or a brass lead whose fundamental is weaker than its 2nd or 3rd
    /// partial), not a tone of its own. Peaks under f0 (at `f0 / 2`, `2 f0 / 3`) do not count:
    /// there they are more often the accompaniment, voiced under the tune, than a missing
    /// fundamental.
    pub overtone_penalty: f32,
}

impl LineParams {
    /// Bins of a magnitude row that [`LineTracker::candidates`] reads (the rest may be anything).
    pub fn bins_read(&self, bins: usize, bin_hz: f32) -> usize {
        let top = self.hi_hz.max(self.lo_hz) * self.harmonics as f32;
        let b_hi = ((top / bin_hz).ceil() as usize + 1).min(bins - 1);
        let register_hi = ((self.register_hi_hz / bin_hz).ceil() as usize + 1).min(bins);
        (b_hi + 1).max(register_hi).min(bins)
    }
}

/// Grid steps per semitone.
const STEPS_PER_SEMITONE: f32 = 4.0;
/// Spectral peaks that vote, per frame.
const MAX_PEAKS: usize = 30;
/// Candidates kept per frame.
const CANDIDATES: usize = 6;
/// Guard cells each side of the salience grid (the triangle reaches 4 steps out).
const SALIENCE_PAD: usize = 8;

/// A line's f0 grid and its per-frame candidates.
#[derive(Clone, Debug)]
pub struct LineTracker {
    params: LineParams,
    /// f0 of each grid point, Hz.
    grid: Vec<f32>,
    /// log2(h) for h = 1 ..= harmonics.
    log2_h: Vec<f32>,
    bin_hz: f32,
    bins: usize,
    /// `(f0 / lo_hz)^lift` for each grid point (`None` when `lift` is 0).
    lift: Option<Vec<f32>>,
    /// The overtone check's votes: (log2(d), share) for each `d = h − ⅔, h − ½, h − ⅓`
    /// (`h ≥ 2`), `d` ascending, share `overtone_penalty · α^(h−1)` (empty when the check is
    /// off).
    overtone: Vec<(f32, f32)>,
}

/// One frame's candidates: (grid index, salience), strongest first; and the voicing reference.
#[derive(Clone, Debug, Default)]
pub struct FrameCandidates {
    /// (f0 Hz, salience).
    pub points: Vec<(f32, f32)>,
    /// The same points as (semitones above 1 Hz, ln salience), for the path search.
    pub keys: Vec<(f32, f32)>,
    /// Summed magnitude of the register (for voicing).
    pub register: f32,
}

impl LineTracker {
    /// A tracker for spectra of `bins` bins of `bin_hz` each.
    pub fn new(params: LineParams, bins: usize, bin_hz: f32) -> Self {
        let semis = 12.0 * (params.hi_hz / params.lo_hz).log2();
        let n = (semis * STEPS_PER_SEMITONE).ceil().max(1.0) as usize + 1;
        let grid: Vec<f32> = (0..n)
            .map(|i| params.lo_hz * 2f32.powf(i as f32 / (12.0 * STEPS_PER_SEMITONE)))
            .collect();
        let lift = (params.lift != 0.0).then(|| {
            grid.iter()
                .map(|f| (f / params.lo_hz).powf(params.lift))
                .collect()
        });
        let mut overtone = Vec::new();
        if params.overtone_penalty != 0.0 {
            let mut share = params.overtone_penalty;
            for h in 1..=params.harmonics {
                if h >= 2 {
                    for d in [h as f32 - 2.0 / 3.0, h as f32 - 0.5, h as f32 - 1.0 / 3.0] {
                        overtone.push((d.log2(), share));
                    }
                }
                share *= params.decay;
            }
        }
        LineTracker {
            lift,
            overtone,
            log2_h: (1..=params.harmonics).map(|h| (h as f32).log2()).collect(),
            params,
            grid,
            bin_hz,
            bins,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &LineParams {
        &self.params
    }

    /// Salience of every grid f0 for one frame's magnitude `mag` (`bins` values), from its
    /// spectral peaks: each peak (frequency refined by parabolic interpolation of the log
    /// magnitude) votes for the f0s it could be partial `h` of, `f_p / h`, with weight
    /// `α^(h−1) · a_p`, spread over ±1 semitone of the grid with a triangular taper (after Salamon & Gómez
    /// 2012). Peaks rather than bins, so that a low f0, whose partials fall on every bin, does
    /// not collect the whole spectrum. With [`LineParams::overtone_penalty`] `λ`, each peak also
    /// takes `λ · α^(h−1) · a_p` off the f0s it lies between partials `h − 1` and `h` of
    /// (`h ≥ 2`), at `f_p / (h − ½)`, `f_p / (h − ⅓)` and `f_p / (h − ⅔)` (same taper; the
    /// salience may go negative there).
    pub fn salience(&self, mag: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.grid.len() + 2 * SALIENCE_PAD, 0.0);
        let last = self.bins - 1;
        let top = self.params.hi_hz.max(self.params.lo_hz) * self.params.harmonics as f32;
        let b_hi = ((top / self.bin_hz).ceil() as usize + 1).min(last);
        let b_lo = ((self.params.lo_hz * 0.9 / self.bin_hz).floor() as usize).max(1);
        // Peaks within 40 dB of the frame's largest, the strongest MAX_PEAKS of them.
        let floor = mag[b_lo..b_hi].iter().fold(0.0f32, |m, &v| m.max(v)) * 1e-2;
        let mut peaks: Vec<(usize, f32)> = Vec::with_capacity(64);
        for b in b_lo..b_hi {
            let (l, m, r) = (mag[b - 1], mag[b], mag[b + 1]);
            if m > floor && m >= l && m > r {
                peaks.push((b, m));
            }
        }
        if peaks.len() > MAX_PEAKS {
            // The strongest MAX_PEAKS, in order (the order is total: ties go to the lower bin).
            let order =
                |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            peaks.select_nth_unstable_by(MAX_PEAKS - 1, order);
            peaks.truncate(MAX_PEAKS);
            peaks.sort_unstable_by(order);
        }
        vote(self, &peaks, mag, out);
        // Move the grid's cells to the front.
        out.copy_within(SALIENCE_PAD..SALIENCE_PAD + self.grid.len(), 0);
        out.truncate(self.grid.len());
    }

    /// The strongest local maxima of one frame's salience (lifted by `(f0 / lo_hz)^lift`), and
    /// its register sum.
    pub fn candidates(&self, mag: &[f32], scratch: &mut Vec<f32>) -> FrameCandidates {
        self.salience(mag, scratch);
        if let Some(lift) = &self.lift {
            scratch.iter_mut().zip(lift).for_each(|(v, l)| *v *= l);
        }
        let points = self.strongest_maxima(scratch);
        let lo = ((self.params.lo_hz / self.bin_hz).floor() as usize).min(self.bins);
        let hi = ((self.params.register_hi_hz / self.bin_hz).ceil() as usize + 1).min(self.bins);
        let register = mag[lo..hi].iter().sum();
        let keys = points
            .iter()
            .map(|&(f, s)| (12.0 * f.log2(), s.max(1e-12).ln()))
            .collect();
        FrameCandidates {
            points,
            keys,
            register,
        }
    }

    /// The strongest [`CANDIDATES`] local maxima of the salience `s` on the grid, as (f0,
    /// salience), strongest first (ties: the lower f0 first). Kept in order as the grid is
    /// scanned upwards: a maximum goes after every kept one at least as strong.
    fn strongest_maxima(&self, s: &[f32]) -> Vec<(f32, f32)> {
        let mut points: Vec<(f32, f32)> = Vec::with_capacity(CANDIDATES + 1);
        for i in 0..s.len() {
            let peak =
                s[i] > 0.0 && (i == 0 || s[i] > s[i - 1]) && (i + 1 == s.len() || s[i] >= s[i + 1]);
            if !peak {
                continue;
            }
            let at = points.partition_point(|q| q.1.total_cmp(&s[i]).is_ge());
            if at < CANDIDATES {
                points.insert(at, (self.grid[i], s[i]));
                points.truncate(CANDIDATES);
            }
        }
        points
    }

    /// The line's f0 at frame `t` (0 when unvoiced), from the candidates of frames
    /// `t − window ..= t + window` (clipped to the frames that exist, `cands[0]` being frame
    /// `first`): the Viterbi path over the window, read at `t`.
    pub fn decide(
        &self,
        cands: &[FrameCandidates],
        first: usize,
        t: usize,
        n_frames: usize,
    ) -> f32 {
        let w = self.params.window;
        let lo = t.saturating_sub(w).max(first);
        let hi = (t + w + 1).min(n_frames).min(first + cands.len());
        debug_assert!(lo <= t && t < hi);
        let window = &cands[lo - first..hi - first];
        // Viterbi: score = Σ log(salience) − jump_cost · |Δ semitones|. At most CANDIDATES
        // states per frame, held in lanes of fixed arrays (padding lanes score −∞, so they never
        // win) that the compiler vectorises; one allocation for the back pointers.
        const NONE: u8 = u8::MAX;
        const LANES: usize = 8;
        const _: () = assert!(CANDIDATES <= LANES);
        let jump_cost = self.params.jump_cost;
        let mut score = [f32::NEG_INFINITY; LANES];
        // The previous frame's states' pitches (semitones).
        let mut pitch = [0.0f32; LANES];
        let mut n_score = 0;
        let mut back: Vec<[u8; CANDIDATES]> = Vec::with_capacity(window.len());
        for frame in window {
            let mut next = [f32::NEG_INFINITY; LANES];
            let mut from = [NONE; CANDIDATES];
            for (i, &(st, ls)) in frame.keys.iter().enumerate() {
                // The best predecessor: the first of the largest `score[j] − cost · |Δ|` (a
                // state scored −∞, and a padding lane, is none).
                let v: [f32; LANES] =
                    std::array::from_fn(|j| score[j] - jump_cost * (st - pitch[j]).abs());
                let best = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                if best == f32::NEG_INFINITY {
                    next[i] = 0.0 + ls; // a path may start at any frame (after an empty one)
                } else {
                    next[i] = best + ls;
                    from[i] = v.iter().position(|&x| x == best).expect("the largest") as u8;
                }
            }
            score = next;
            n_score = frame.keys.len();
            pitch = [0.0; LANES];
            for (p, &(st, _)) in pitch.iter_mut().zip(&frame.keys) {
                *p = st;
            }
            back.push(from);
        }
        let score = &score[..n_score];
        // Best end state, then back to frame t.
        let Some(mut state) = score
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
        else {
            // The last frame of the window has no candidates: decide on the frames up to t.
            return self.decide_prefix(window, t - lo);
        };
        let mut k = window.len() - 1;
        while k > t - lo {
            let from = back[k][state];
            if from == NONE {
                // The path starts after t: t is decided on its own frames up to t.
                return self.decide_prefix(window, t - lo);
            }
            state = from as usize;
            k -= 1;
        }
        self.voiced(&window[t - lo], state)
    }

    fn decide_prefix(&self, window: &[FrameCandidates], at: usize) -> f32 {
        let frame = &window[at];
        match frame.points.first() {
            Some(_) => self.voiced(frame, 0),
            None => 0.0,
        }
    }

    fn voiced(&self, frame: &FrameCandidates, state: usize) -> f32 {
        let (f, s) = frame.points[state];
        if s >= self.params.voicing * frame.register && frame.register > 0.0 {
            f
        } else {
            0.0
        }
    }
}

/// A smooth bump with the shape of a Gaussian of σ = 1 and compact support (|d| < 3):
/// `(1 − d²/9)⁴` (0.62 at 1σ, 0.10 at 2σ; a few multiplications instead of an `exp`).
#[inline]
pub fn bump(d: f32) -> f32 {
    let x = 1.0 - d * d / 9.0;
    if x <= 0.0 {
        0.0
    } else {
        let x2 = x * x;
        x2 * x2
    }
}

/// Comb weight in [0, 1] of frequency `f` for a line at `f0` (0: unvoiced): a [`bump`] around
/// the nearest partial `h·f0` (`h ≤ harmonics`) of σ `√((h·f0·ratio(cents))² + lobe_hz²)`.
pub fn comb_weight(f: f32, f0: f32, harmonics: usize, cents: f32, lobe_hz: f32) -> f32 {
    if f0 <= 0.0 || f < 0.5 * f0 {
        return 0.0;
    }
    let h = (f / f0).round().clamp(1.0, harmonics as f32);
    let centre = h * f0;
    let sigma = crate::production::comb_sigma(centre, 2f32.powf(cents / 1200.0) - 1.0, lobe_hz);
    bump((f - centre) / sigma)
}

/// Smooth low-register weight: 1 well below `cutoff_hz`, 0 well above, half at the cutoff, over
/// `width_semitones` (logistic in semitones).
pub fn low_weight(f: f32, cutoff_hz: f32, width_semitones: f32) -> f32 {
    if f <= 0.0 {
        return 1.0;
    }
    let st = 12.0 * (f / cutoff_hz).log2();
    1.0 / (1.0 + (st / width_semitones).exp())
}

simd_dispatch!(
    /// The votes of `peaks` (bin, magnitude) for the f0s they could be partials of, into `out`
    /// (the grid with `SALIENCE_PAD` guard cells each side); see [`LineTracker::salience`].
    fn vote(tracker: &LineTracker, peaks: &[(usize, f32)], mag: &[f32], out: &mut [f32]) {
        let (bin_hz, lo_hz, decay) = (tracker.bin_hz, tracker.params.lo_hz, tracker.params.decay);
        let grid_len = tracker.grid.len();
        let spread = STEPS_PER_SEMITONE; // ±1 semitone
        let steps_per_octave = 12.0 * STEPS_PER_SEMITONE;
        for &(b, m) in peaks {
            let (l, r) = (mag[b - 1], mag[b + 1]);
            let (la, lb, lc) = (l.max(1e-20).ln(), m.ln(), r.max(1e-20).ln());
            let den = la - 2.0 * lb + lc;
            let delta = if den < 0.0 {
                (0.5 * (la - lc) / den).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            let f_p = (b as f32 + delta) * bin_hz;
            // Grid position of f_p / h: one log2 per peak, log2(h) from a table.
            let g1 = steps_per_octave * (f_p / lo_hz).log2();
            let mut w = m;
            for lh in &tracker.log2_h {
                let g = g1 - steps_per_octave * lh;
                if g < -spread {
                    break;
                }
                // A triangle over ±1 semitone (cheaper than Salamon's cos², same support): the
                // grid points k with |k − g| < 4 are floor(g) − 3 ..= floor(g) + 4, written into
                // a buffer with SALIENCE_PAD guard cells each side so the 8 run branch-free.
                let k0 = g.floor() as isize - 3;
                if k0 >= grid_len as isize {
                    w *= decay;
                    continue;
                }
                let at = (k0 + SALIENCE_PAD as isize) as usize;
                let cells: &mut [f32; 8] = (&mut out[at..at + 8]).try_into().expect("8 cells");
                for (j, cell) in cells.iter_mut().enumerate() {
                    let d = (((k0 + j as isize) as f32 - g) / spread).abs();
                    *cell += w * (1.0 - d);
                }
                w *= decay;
            }
            // The overtone check: votes against the f0s this peak lies between partials of.
            for &(l2d, share) in &tracker.overtone {
                let g = g1 - steps_per_octave * l2d;
                if g < -spread {
                    break;
                }
                let k0 = g.floor() as isize - 3;
                if k0 >= grid_len as isize {
                    continue;
                }
                let at = (k0 + SALIENCE_PAD as isize) as usize;
                let cells: &mut [f32; 8] = (&mut out[at..at + 8]).try_into().expect("8 cells");
                let w = share * m;
                for (j, cell) in cells.iter_mut().enumerate() {
                    let d = (((k0 + j as isize) as f32 - g) / spread).abs();
                    *cell -= w * (1.0 - d);
                }
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// A harmonic tone's magnitude spectrum as a Hann-windowed STFT sees it: each partial's main
    /// lobe spread over the bins around its (fractional) position.
    fn tone_spectrum(f0: f32, partials: usize, bins: usize, bin_hz: f32) -> Vec<f32> {
        let lobe = |d: f32| {
            if d.abs() < 1e-6 {
                1.0
            } else if (d.abs() - 1.0).abs() < 1e-6 {
                0.5
            } else {
                let x = std::f32::consts::PI * d;
                (x.sin() / x / (1.0 - d * d)).abs()
            }
        };
        let mut mag = vec![0.0f32; bins];
        for h in 1..=partials {
            let p = h as f32 * f0 / bin_hz;
            let centre = p.floor() as usize;
            let lo = centre.saturating_sub(2);
            for (b, m) in mag
                .iter_mut()
                .enumerate()
                .take((centre + 4).min(bins))
                .skip(lo)
            {
                *m += lobe(b as f32 - p) / h as f32;
            }
        }
        mag
    }

    fn params() -> LineParams {
        LineParams {
            lo_hz: 100.0,
            hi_hz: 2000.0,
            harmonics: 8,
            decay: 0.8,
            jump_cost: 0.3,
            window: 4,
            voicing: 0.1,
            register_hi_hz: 8000.0,
            lift: 0.0,
            overtone_penalty: 0.0,
        }
    }

    #[test]
    fn candidates_are_the_strongest_maxima_in_order() {
        // Seeded random spectra (sparse peaks and dense noise, lifted and flat), and a salience
        // with tied maxima: the candidates against all the salience's local maxima sorted
        // (strongest first, the lower f0 first among equals) and cut to CANDIDATES.
        let bin_hz = 48000.0 / 2048.0;
        let mut rng = crate::rng::Rng::new(17);
        for (lift, dense) in [(0.0, false), (1.8 / 6.02, true), (0.0, true)] {
            let tracker = LineTracker::new(LineParams { lift, ..params() }, 1025, bin_hz);
            for _ in 0..20 {
                let mag: Vec<f32> = (0..1025)
                    .map(|_| {
                        let v = rng.uniform();
                        if dense || v > 0.97 {
                            v
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mut sal = Vec::new();
                tracker.salience(&mag, &mut sal);
                // A tie at the top: the strongest cell, and an equal maximum two cells up.
                let i = (1..sal.len() - 4)
                    .max_by(|&a, &b| sal[a].total_cmp(&sal[b]).then(b.cmp(&a)))
                    .expect("a grid");
                sal[i + 1] = 0.5 * sal[i];
                sal[i + 2] = sal[i];
                sal[i + 3] = 0.0;
                if let Some(l) = &tracker.lift {
                    sal.iter_mut().zip(l).for_each(|(v, l)| *v *= l);
                }
                let n = sal.len();
                let mut want: Vec<(f32, f32)> = (0..n)
                    .filter(|&i| {
                        sal[i] > 0.0
                            && (i == 0 || sal[i] > sal[i - 1])
                            && (i + 1 == n || sal[i] >= sal[i + 1])
                    })
                    .map(|i| (tracker.grid[i], sal[i]))
                    .collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.total_cmp(&b.0)));
                want.truncate(CANDIDATES);
                // The selection `candidates` makes, on that salience.
                let got = tracker.strongest_maxima(&sal);
                assert_eq!(got, want, "lift {lift}, dense {dense}");
            }
        }
    }

    #[test]
    fn salience_peaks_at_the_fundamental() {
        let bin_hz = 48000.0 / 2048.0;
        let tracker = LineTracker::new(params(), 1025, bin_hz);
        for f0 in [220.0f32, 330.0, 523.0, 880.0] {
            let mag = tone_spectrum(f0, 10, 1025, bin_hz);
            let c = tracker.candidates(&mag, &mut Vec::new());
            let (f, _) = c.points[0];
            let semis = 12.0 * (f / f0).log2();
            assert!(
                semis.abs() < 0.6,
                "f0 {f0}: found {f} ({semis:.2} semitones off)"
            );
        }
    }

    #[test]
    fn lift_scales_the_salience_by_f0() {
        // The strongest lifted candidate is the grid point that maximises the flat salience ×
        // (f0 / lo)^lift, with that value, for tones across the range.
        let bin_hz = 48000.0 / 2048.0;
        let flat = LineTracker::new(params(), 1025, bin_hz);
        let lifted = LineTracker::new(
            LineParams {
                lift: 0.3,
                ..params()
            },
            1025,
            bin_hz,
        );
        let spectra: Vec<Vec<f32>> = [150.0f32, 330.0, 523.0, 1500.0]
            .iter()
            .map(|&f0| tone_spectrum(f0, 10, 1025, bin_hz))
            .collect();
        for mag in &spectra {
            let mut s = Vec::new();
            flat.salience(mag, &mut s);
            let (i, want) = s
                .iter()
                .enumerate()
                .map(|(i, &v)| (i, v * (flat.grid[i] / 100.0).powf(0.3)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let (f, got) = lifted.candidates(mag, &mut Vec::new()).points[0];
            assert_eq!(f, flat.grid[i]);
            assert!((got - want).abs() <= 1e-5 * want, "{f}: {got} vs {want}");
        }
    }

    #[test]
    fn overtone_check_takes_its_votes_off_the_salience() {
        // One partial on a bin (its parabolic refinement is exact there): the check's votes, the
        // salience without the check less the salience with it, against the votes written out.
        let bin_hz = 48000.0 / 2048.0;
        let lambda = 0.3;
        let plain = LineTracker::new(params(), 1025, bin_hz);
        let checked = LineTracker::new(
            LineParams {
                overtone_penalty: lambda,
                ..params()
            },
            1025,
            bin_hz,
        );
        for b in [9usize, 23, 40, 77, 160] {
            let mut mag = vec![0.0f32; 1025];
            let m = 0.7f32;
            (mag[b - 1], mag[b], mag[b + 1]) = (0.5 * m, m, 0.5 * m);
            let (mut s0, mut s1) = (Vec::new(), Vec::new());
            plain.salience(&mag, &mut s0);
            checked.salience(&mag, &mut s1);
            let f_p = b as f32 * bin_hz;
            for (i, (a, c)) in s0.iter().zip(&s1).enumerate() {
                let mut want = 0.0f32;
                let mut share = lambda;
                for h in 1..=params().harmonics {
                    for d in [h as f32 - 2.0 / 3.0, h as f32 - 0.5, h as f32 - 1.0 / 3.0] {
                        let g = 12.0 * STEPS_PER_SEMITONE * (f_p / d / params().lo_hz).log2();
                        if h >= 2 {
                            want += share * m * (1.0 - (i as f32 - g).abs() / 4.0).max(0.0);
                        }
                    }
                    share *= params().decay;
                }
                let got = a - c;
                assert!(
                    (got - want).abs() <= 1e-5,
                    "peak at bin {b}, grid point {i} ({:.1} Hz): the check took {got}, want {want}",
                    plain.grid[i]
                );
            }
        }
    }

    #[test]
    fn a_reed_tone_is_tracked_at_its_f0_not_an_octave_up() {
        // A tone whose 2nd partial is four times its fundamental (an oboe's shape): the melody's
        // lifted salience alone puts it an octave up; with the overtone check it is at f0. A
        // tone with falling partials stays at f0 with the check.
        let bin_hz = 48000.0 / 2048.0;
        let melody = |penalty: f32| {
            LineTracker::new(
                LineParams {
                    lift: 1.8 / 6.0206,
                    overtone_penalty: penalty,
                    ..params()
                },
                1025,
                bin_hz,
            )
        };
        let (plain, checked) = (melody(0.0), melody(0.5));
        let reed = [0.25f32, 1.0, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1];
        let spectrum = |f0: f32, amps: &[f32]| {
            let mut mag = vec![0.0f32; 1025];
            for (h, a) in amps.iter().enumerate() {
                let one = tone_spectrum((h + 1) as f32 * f0, 1, 1025, bin_hz);
                mag.iter_mut().zip(one).for_each(|(m, v)| *m += a * v);
            }
            mag
        };
        let top = |t: &LineTracker, mag: &[f32]| t.candidates(mag, &mut Vec::new()).points[0].0;
        let st = |f: f32, f0: f32| 12.0 * (f / f0).log2();
        for f0 in [262.0f32, 330.0, 440.0, 587.0, 700.0] {
            let mag = spectrum(f0, &reed);
            let (p, c) = (top(&plain, &mag), top(&checked, &mag));
            assert!(
                (st(p, f0) - 12.0).abs() < 0.6,
                "the test needs a tone the plain salience puts an octave up: f0 {f0}, found {p}"
            );
            assert!(st(c, f0).abs() < 0.6, "f0 {f0}: the check found {c}");
            let falling: Vec<f32> = (1..=10).map(|h| 1.0 / h as f32).collect();
            let c = top(&checked, &spectrum(f0, &falling));
            assert!(
                st(c, f0).abs() < 0.6,
                "falling partials at f0 {f0}: found {c}"
            );
            // A flute-like tone over tones a fifth and an octave under it (peaks under f0 do not
            // count against it).
            let mut mag = spectrum(f0, &[1.0, 0.2, 0.1]);
            for (under, amps) in [(2.0 / 3.0, [0.5f32, 0.25, 0.12]), (0.5, [0.5, 0.25, 0.12])] {
                let tone = spectrum(under * f0, &amps);
                mag.iter_mut().zip(tone).for_each(|(m, v)| *m += v);
            }
            let c = top(&checked, &mag);
            assert!(
                st(c, f0).abs() < 0.6,
                "flute over a chord at f0 {f0}: found {c}"
            );
        }
    }

    #[test]
    fn the_path_is_continuous_and_decided_per_frame() {
        let bin_hz = 48000.0 / 2048.0;
        let tracker = LineTracker::new(params(), 1025, bin_hz);
        // A line at 440 Hz with one frame where a louder 1200 Hz tone appears: the path stays.
        let frames: Vec<FrameCandidates> = (0..20)
            .map(|t| {
                let mut mag = tone_spectrum(440.0, 8, 1025, bin_hz);
                if t == 10 {
                    for (m, o) in mag.iter_mut().zip(tone_spectrum(1200.0, 3, 1025, bin_hz)) {
                        *m += 1.3 * o;
                    }
                }
                tracker.candidates(&mag, &mut Vec::new())
            })
            .collect();
        for t in 0..20 {
            let f = tracker.decide(&frames, 0, t, 20);
            assert!((12.0 * (f / 440.0).log2()).abs() < 0.6, "frame {t}: {f}");
            // The same decision from a shorter slice that still holds the window.
            let lo = t.saturating_sub(4);
            let g = tracker.decide(&frames[lo..], lo, t, 20);
            assert_eq!(f.to_bits(), g.to_bits(), "frame {t}");
        }
    }

    /// The decision by a plain Viterbi over the same window (the scalar loop the lanes
    /// replaced): the reference for [`LineTracker::decide`].
    fn decide_reference(
        tracker: &LineTracker,
        cands: &[FrameCandidates],
        t: usize,
        n_frames: usize,
    ) -> f32 {
        let w = tracker.params.window;
        let (lo, hi) = (t.saturating_sub(w), (t + w + 1).min(n_frames));
        let window = &cands[lo..hi];
        let mut score: Vec<f32> = Vec::new();
        let mut back: Vec<Vec<Option<usize>>> = Vec::new();
        for (k, frame) in window.iter().enumerate() {
            let prev = if k > 0 { &window[k - 1].keys[..] } else { &[] };
            let mut next = Vec::new();
            let mut from = Vec::new();
            for &(st, ls) in &frame.keys {
                let mut best: Option<(f32, usize)> = None;
                for (j, &(pst, _)) in prev.iter().enumerate() {
                    if score[j] == f32::NEG_INFINITY {
                        continue;
                    }
                    let v = score[j] - tracker.params.jump_cost * (st - pst).abs();
                    if best.is_none_or(|(b, _)| v > b) {
                        best = Some((v, j));
                    }
                }
                next.push(best.map_or(0.0, |(b, _)| b) + ls);
                from.push(best.map(|(_, j)| j));
            }
            score = next;
            back.push(from);
        }
        let prefix = |at: usize| match window[at].points.first() {
            Some(_) => tracker.voiced(&window[at], 0),
            None => 0.0,
        };
        let Some(mut state) =
            (0..score.len()).max_by(|&a, &b| score[a].total_cmp(&score[b]).then(b.cmp(&a)))
        else {
            return prefix(t - lo);
        };
        for k in (t - lo + 1..window.len()).rev() {
            match back[k][state] {
                Some(j) => state = j,
                None => return prefix(t - lo),
            }
        }
        tracker.voiced(&window[t - lo], state)
    }

    #[test]
    fn decide_matches_a_plain_viterbi() {
        // Seeded random candidates: 0 to 6 per frame (empty frames start new paths), pitches on
        // a semitone grid and four salience levels, so that equal scores (ties between
        // predecessors, which go to the first) occur, and saliences around the voicing
        // threshold.
        let tracker = LineTracker::new(
            LineParams {
                window: 6,
                ..params()
            },
            1025,
            48000.0 / 2048.0,
        );
        let mut rng = crate::rng::Rng::new(0x5eed_11e5);
        for case in 0..40 {
            let n = 1 + rng.below(60);
            let cands: Vec<FrameCandidates> = (0..n)
                .map(|_| {
                    let k = rng.below(CANDIDATES + 1);
                    let points: Vec<(f32, f32)> = (0..k)
                        .map(|_| {
                            let f = 100.0 * 2f32.powf(rng.below(12) as f32 / 12.0);
                            (f, 0.25 * (1 + rng.below(4)) as f32)
                        })
                        .collect();
                    let keys = points
                        .iter()
                        .map(|&(f, s)| (12.0 * f.log2(), s.ln()))
                        .collect();
                    FrameCandidates {
                        points,
                        keys,
                        register: 4.0 * rng.uniform(),
                    }
                })
                .collect();
            for t in 0..n {
                let got = tracker.decide(&cands, 0, t, n);
                let want = decide_reference(&tracker, &cands, t, n);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "case {case}, frame {t} of {n}: decide {got}, reference {want}"
                );
            }
        }
    }

    #[test]
    fn silence_is_unvoiced() {
        let tracker = LineTracker::new(params(), 1025, 48000.0 / 2048.0);
        let frames = vec![tracker.candidates(&vec![0.0; 1025], &mut Vec::new()); 5];
        for t in 0..5 {
            assert_eq!(tracker.decide(&frames, 0, t, 5), 0.0);
        }
    }

    #[test]
    fn weights_are_in_unit_range() {
        for f in [0.0f32, 50.0, 100.0, 219.0, 220.0, 441.0, 5000.0] {
            let c = comb_weight(f, 220.0, 10, 50.0, 20.0);
            let l = low_weight(f, 120.0, 3.0);
            assert!(
                (0.0..=1.0).contains(&c) && (0.0..=1.0).contains(&l),
                "{f}: {c} {l}"
            );
        }
        assert!(comb_weight(440.0, 220.0, 10, 50.0, 20.0) > 0.99);
        assert!(low_weight(30.0, 120.0, 3.0) > 0.99 && low_weight(500.0, 120.0, 3.0) < 0.01);
    }
}
