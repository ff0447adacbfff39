//! The five production stems as masks that partition unity at every bin:
//!
//! ```text
//! drums   = M_P · g                  (HPSS percussive mask, librosa softmask with margins,
//!                                     times the steady gate g)
//! fx      = 1 − M_H − M_P · g        (neither harmonic nor percussive: the margin residual,
//!                                     and steady broadband sound)
//! bass    = M_H · b                  (b: the bass line's partials and a smooth low register)
//! melody  = M_H · (1 − b) · m        (m: a comb on the predominant line's partials)
//! harmony = M_H · (1 − b) · (1 − m)  (the harmonic remainder: chords, pads)
//! ```
//!
//! Before the split, the tonal shift moves the fx share of steady tones to the harmonic side:
//! `M_H ← M_H + x·(1 − M_H − M_P·g)`, `x` rising from 0 to 1 as the bin's tonal stability (the
//! mean over ±`tonal_ms` of `min(|X|, H) / max(|X|, H)`) goes from θ to θ + [`TONAL_SOFT`].
//! A held organ or synth chord crowds its partials so closely that the frequency median reads
//! them as broadband; its magnitude then still sits on its own time median frame after frame,
//! which neither noise (Rayleigh-distributed from frame to frame) nor a riser does.
//!
//! The steady gate `g = softmask(P, γ·S)` takes from the drums what is as loud in the
//! percussive estimate `P` (the frequency median) half a second around as it is now: `S` is the
//! median of `P` along time. A drum hit stands out of its own surroundings (`P ≫ S`); a noise
//! swell, a riser or a steady hiss does not (`P ≈ S`), and goes to fx.
//!
//! Settings come in musical units ([`ProductionSpec`]: Hz, cents, ms) and are resolved at a
//! track's rate into [`ProductionParams`].

use crate::error::{Error, Result};
use crate::params::{Kernel, StftParams};
use crate::stages::pitch::{FrameCandidates, LineParams, LineTracker};

/// Production-stem settings in musical units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProductionSpec {
    /// Range of the bass line's f0, Hz (30–200 by default: up to about G3, the 12th fret of a
    /// bass's top string, where bass lines stay; a chord voiced from C3 puts its low tones at
    /// 130–250 Hz, and up to 260 Hz the line sat above every bass note of the evaluation set in
    /// 10 % of its voiced frames).
    pub bass_range_hz: (f32, f32),
    /// Range of the melody's f0, Hz.
    pub melody_range_hz: (f32, f32),
    /// Below this the harmonic part is bass whatever the line does (smooth, over ±3 semitones).
    pub bass_cutoff_hz: f32,
    /// The bass stem's share of the bass line's partials fades out around this frequency, Hz
    /// (half at it, smooth over ±3 semitones): above it a bass's partials are weak and a chord's
    /// or a lead's are not.
    pub bass_comb_fade_hz: f32,
    /// Width (σ) of the comb around each partial, cents.
    pub comb_cents: f32,
    /// Each side of a frame, the span of frames whose candidates decide its point of a line, ms.
    pub track_ms: f32,
    /// Melody voicing threshold: line salience over the register's summed magnitude.
    pub melody_voicing: f32,
    /// The melody's salience is lifted by this many dB per octave of f0: of two lines that the
    /// spectrum supports alike, the higher is taken (a melody is usually the top voice, and a
    /// line's upper partials also vote for f0s an octave or a fifth below it).
    pub melody_lift_db: f32,
    /// The melody tracker's overtone check (see [`LineParams::overtone_penalty`]): peaks between
    /// a candidate's partials, at `(h − ½)` and `(h − ⅓)`, `(h − ⅔)` times its f0 (`h ≥ 2`),
    /// count against it with this share of their vote, so that a lead whose fundamental is
    /// weaker than its 2nd or 3rd partial (oboe, clarinet, saxophone) is tracked at its f0, not
    /// an octave or a twelfth above (0.5 by default; 0: off).
    pub melody_overtone_penalty: f32,
    /// Bass voicing threshold, likewise.
    pub bass_voicing: f32,
    /// HPSS margins used for the production stems (the fx stem is their residual).
    pub margin: (f32, f32),
    /// Soft-mask power of the HPSS masks used for the production stems.
    pub power: f32,
    /// Harmonic (time) median length for the production stems: the span its taps cover.
    pub harmonic_kernel: Kernel,
    /// Frames between the production stems' harmonic median taps (2: every 2nd frame of the
    /// span, half the work of every frame for the same estimate; see
    /// [`crate::stages::median::median_time_tapped`]).
    pub harmonic_tap: usize,
    /// Length of the steady estimate: the median along time of the percussive estimate, ms.
    pub steady_ms: f32,
    /// Steady-gate margin γ: the drums keep a bin's percussive share only where the percussive
    /// estimate stands above γ times its steady level (soft, at the HPSS mask power); 0: no gate.
    pub steady_margin: f32,
    /// Percussive (frequency) median length for the production stems.
    pub percussive_kernel: Kernel,
    /// Each side of a frame, the span its tonal stability is averaged over, ms.
    pub tonal_ms: f32,
    /// Tonal stability θ above which a bin's fx share moves to the harmonic side (all of it from
    /// θ + [`TONAL_SOFT`]); 1: off.
    pub tonal_threshold: f32,
    /// Below this frequency a drum's decay is held in the drums (see [`drum_tail`]), Hz; 0: off.
    pub drum_tail_hz: f32,
    /// How far back a drum's decay is followed, ms.
    pub drum_tail_ms: f32,
    /// The fastest decay still followed, dB per second.
    pub drum_tail_decay_db_s: f32,
    /// Stereo input: refine the stems with a multichannel Wiener filter
    /// ([`crate::stages::spatial`]), each stem's place between the speakers learnt per segment
    /// (on by default).
    pub spatial: bool,
    /// The spatial filter acts on the bins up to this frequency, Hz (infinite: all of them);
    /// above it the masks stand as they are. Most of its gain lies below 4 kHz (the default)
    /// and part of its cost grows with the bins: all bins give melody about +0.08 dB and drums
    /// +0.02 dB for a fifth more of the five stems' CPU time.
    pub spatial_max_hz: f32,
    /// Cap the bass comb's partials by the bass's partial profile learnt per segment from the
    /// mix ([`bass_profile`]; on by default).
    pub bass_profile: bool,
    /// Harmonic energy more than this many octaves below the bass line's f0 goes to the drums
    /// instead of the bass (no harmonic source sounds below its fundamental: what the harmonic
    /// estimate holds there is a kick's low body); 0: off. See [`drums_below_bins`].
    pub drums_below_line_oct: f32,
    /// The harmonic margin in the low mids ([`ProductionSpec::mid_band_hz`]) instead of
    /// `margin.0` (1 by default: there the harmonic and percussive masks meet with no margin
    /// residual between them, and a chord's or a bass's low-mid energy that the fx stem took
    /// stays harmonic). See [`hpss_masks_banded`].
    pub mid_margin: f32,
    /// The band of [`ProductionSpec::mid_margin`], Hz (`lo ≤ f < hi`; 150–1000 by default;
    /// `(0, 0)`: none).
    pub mid_band_hz: (f32, f32),
    /// The bass profile's rests, dB: a voiced frame of the bass line whose harmonic estimate at
    /// the line's f0 lies more than this under its largest within ±[`PROFILE_REST_MS`] is taken
    /// for a rest of the bass (the line held through it on a chord tone or a tail) and left out
    /// of the profile's medians (15 by default; 0: off). See [`profile_rests`].
    pub profile_rest_db: f32,
    /// The melody's floor, semitones: a frame whose melody line lies more than this below the
    /// median of the line's voiced f0 over its segment (the bass profile's ~11 s grid) is
    /// unvoiced (12 by default; 0: off). See [`melody_floor`].
    pub melody_floor_st: f32,
    /// The note sustain's ratio: a bin from [`SUSTAIN_MIN_HZ`] to [`SUSTAIN_MAX_HZ`] whose
    /// magnitude stays at least this share of its present level over the next
    /// [`SUSTAIN_FROM_MS`] to [`SUSTAIN_TO_MS`] is a note going on, not a hit: its percussive
    /// share moves to the harmonic part (0.5 by default; 0: off). See [`sustain_weight`].
    pub note_sustain: f32,
    /// The harmony hold, ms: at each bin under [`crate::stages::hold::HOLD_MAX_HZ`] the bass,
    /// melody and harmony split the harmonic share by their amplitudes, the harmony's taken as
    /// at least its own mean over this many ms each side (within its segment) (900 by default;
    /// 0: off). See [`crate::stages::hold`].
    pub harmony_hold_ms: f32,
}

impl Default for ProductionSpec {
    fn default() -> Self {
        ProductionSpec {
            bass_range_hz: (30.0, 200.0),
            melody_range_hz: (100.0, 2000.0),
            bass_cutoff_hz: 100.0,
            bass_comb_fade_hz: 600.0,
            comb_cents: 50.0,
            track_ms: 100.0,
            melody_voicing: 0.02,
            melody_lift_db: 1.8,
            melody_overtone_penalty: 0.5,
            bass_voicing: 0.10,
            margin: (1.2, 1.0),
            power: 4.0,
            harmonic_kernel: Kernel::Seconds(0.5),
            harmonic_tap: 2,
            steady_ms: 500.0,
            steady_margin: 1.5,
            percussive_kernel: Kernel::Hertz(350.0),
            tonal_ms: 170.0,
            tonal_threshold: 0.8,
            drum_tail_hz: 200.0,
            drum_tail_ms: 120.0,
            drum_tail_decay_db_s: 130.0,
            spatial: true,
            spatial_max_hz: 4000.0,
            bass_profile: true,
            drums_below_line_oct: 1.0,
            mid_margin: 1.0,
            mid_band_hz: (150.0, 1000.0),
            profile_rest_db: 15.0,
            melody_floor_st: 12.0,
            note_sustain: 0.5,
            harmony_hold_ms: 900.0,
        }
    }
}

/// Production settings resolved at a sample rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProductionParams {
    /// The rate they were resolved at.
    pub sample_rate: u32,
    /// Bass line tracking.
    pub bass: LineParams,
    /// Melody tracking.
    pub melody: LineParams,
    /// See [`ProductionSpec::bass_cutoff_hz`].
    pub bass_cutoff_hz: f32,
    /// See [`ProductionSpec::comb_cents`].
    pub comb_cents: f32,
    /// Partials of the bass line given to the bass stem (at most).
    pub bass_partials: usize,
    /// See [`ProductionSpec::bass_comb_fade_hz`].
    pub bass_comb_fade_hz: f32,
    /// Partials of the melody given to the melody stem.
    pub melody_partials: usize,
    /// Steady estimate length in points of its grid, [`STEADY_STEP`] frames apart (odd; see
    /// [`ProductionSpec::steady_ms`]).
    pub steady_kernel: usize,
    /// See [`ProductionSpec::steady_margin`].
    pub steady_margin: f32,
    /// Frames each side of a frame in its tonal stability ([`ProductionSpec::tonal_ms`], at most
    /// [`MAX_TONAL_WINDOW`]).
    pub tonal_window: usize,
    /// See [`ProductionSpec::tonal_threshold`].
    pub tonal_threshold: f32,
    /// Bins whose percussive estimate follows a drum's decay ([`drum_tail`]; 0: off).
    pub tail_bins: usize,
    /// Frames back that [`drum_tail`] reads (at most [`MAX_TAIL_FRAMES`]).
    pub tail_frames: usize,
    /// The decay factor per frame that [`drum_tail`] allows.
    pub tail_rho: f32,
    /// Frames per segment of the spatial filter ([`crate::stages::spatial::segment_frames`];
    /// 0: off).
    pub spatial_frames: usize,
    /// Bins the spatial filter acts on, from bin 0 (the others keep their masks).
    pub spatial_bins: usize,
    /// Frames per segment of the bass profile ([`bass_profile`]; the spatial filter's segment
    /// grid; 0: off).
    pub profile_frames: usize,
    /// Frames each side of a frame in the bass profile's floor ([`PROFILE_FLOOR_MS`]).
    pub profile_floor: usize,
    /// `2^−drums_below_line_oct` ([`ProductionSpec::drums_below_line_oct`]); 0: off.
    pub drums_below_ratio: f32,
    /// See [`ProductionSpec::mid_margin`].
    pub mid_margin: f32,
    /// The bins `lo .. hi` of [`ProductionSpec::mid_band_hz`] (empty: none).
    pub mid_bins: (usize, usize),
    /// Frames each side of a frame in [`profile_rests`]' maximum ([`PROFILE_REST_MS`]).
    pub profile_rest_window: usize,
    /// `10^(−profile_rest_db / 20)` ([`ProductionSpec::profile_rest_db`]); 0: off.
    pub profile_rest_ratio: f32,
    /// Frames per segment of the melody's floor ([`melody_floor`]; the bass profile's grid;
    /// 0: off).
    pub melody_floor_frames: usize,
    /// `2^(−melody_floor_st / 12)` ([`ProductionSpec::melody_floor_st`]).
    pub melody_floor_ratio: f32,
    /// See [`ProductionSpec::note_sustain`] (0: off).
    pub sustain_ratio: f32,
    /// Frames ahead `from ..= to` whose smallest magnitude is the sustain ([`SUSTAIN_FROM_MS`],
    /// [`SUSTAIN_TO_MS`]).
    pub sustain_frames: (usize, usize),
    /// The bins `lo .. hi` the note sustain acts on ([`SUSTAIN_MIN_HZ`] to [`SUSTAIN_MAX_HZ`]).
    pub sustain_bins: (usize, usize),
    /// Frames per segment of the harmony hold ([`crate::stages::hold`]; the bass profile's
    /// grid; 0: off).
    pub hold_frames: usize,
    /// Frames between the hold's grid points ([`crate::stages::spatial::stats_stride`]).
    pub hold_stride: usize,
    /// Grid points each side of a point in the hold's mean ([`ProductionSpec::harmony_hold_ms`]).
    pub hold_radius: usize,
    /// Bins the hold acts on, from bin 0 ([`crate::stages::hold::HOLD_MAX_HZ`]).
    pub hold_bins: usize,
}

impl ProductionSpec {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad range or width.
    pub fn validate(&self) -> Result<()> {
        for (what, (lo, hi)) in [
            ("--bass-range", self.bass_range_hz),
            ("--melody-range", self.melody_range_hz),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo >= 20.0 && hi > lo * 1.06 && hi <= 8000.0) {
                return Err(Error::param(
                    what,
                    format!("expected LO-HI in Hz with 20 ≤ LO < HI ≤ 8000, got {lo}-{hi}"),
                ));
            }
        }
        if !(self.comb_cents.is_finite() && (1.0..=600.0).contains(&self.comb_cents)) {
            return Err(Error::param(
                "--comb-width",
                format!("expected 1 to 600 cents, got {}", self.comb_cents),
            ));
        }
        if !(self.bass_comb_fade_hz.is_finite()
            && (20.0..=8000.0).contains(&self.bass_comb_fade_hz))
        {
            return Err(Error::param(
                "--bass-comb-fade",
                format!("expected 20 to 8000 Hz, got {}", self.bass_comb_fade_hz),
            ));
        }
        if !(self.drums_below_line_oct.is_finite()
            && (0.0..=4.0).contains(&self.drums_below_line_oct))
        {
            return Err(Error::param(
                "--drums-below-line",
                format!("expected 0 to 4 octaves, got {}", self.drums_below_line_oct),
            ));
        }
        if !(self.mid_margin.is_finite() && self.mid_margin >= 1.0) {
            return Err(Error::param(
                "--mid-margin",
                format!("expected a margin ≥ 1, got {}", self.mid_margin),
            ));
        }
        let (lo, hi) = self.mid_band_hz;
        if !((lo == 0.0 && hi == 0.0) || (lo.is_finite() && hi.is_finite() && lo >= 0.0 && hi > lo))
        {
            return Err(Error::param(
                "--mid-band",
                format!("expected LO-HI in Hz with 0 ≤ LO < HI, or off, got {lo}-{hi}"),
            ));
        }
        if !(self.profile_rest_db.is_finite() && (0.0..=120.0).contains(&self.profile_rest_db)) {
            return Err(Error::param(
                "--profile-rest",
                format!("expected 0 to 120 dB, or off, got {}", self.profile_rest_db),
            ));
        }
        if !(self.melody_floor_st.is_finite() && (0.0..=48.0).contains(&self.melody_floor_st)) {
            return Err(Error::param(
                "--melody-floor",
                format!(
                    "expected 0 to 48 semitones, or off, got {}",
                    self.melody_floor_st
                ),
            ));
        }
        if !(self.harmony_hold_ms.is_finite() && (0.0..=10000.0).contains(&self.harmony_hold_ms)) {
            return Err(Error::param(
                "--harmony-hold",
                format!(
                    "expected 0 to 10000 ms, or off, got {}",
                    self.harmony_hold_ms
                ),
            ));
        }
        if !(self.note_sustain.is_finite() && (0.0..=1.0).contains(&self.note_sustain)) {
            return Err(Error::param(
                "--note-sustain",
                format!("expected 0 to 1, or off, got {}", self.note_sustain),
            ));
        }
        if !(self.steady_ms.is_finite() && (10.0..=5000.0).contains(&self.steady_ms)) {
            return Err(Error::param(
                "--steady-window",
                format!("expected 10 to 5000 ms, got {}", self.steady_ms),
            ));
        }
        if !(self.steady_margin.is_finite() && (0.0..=100.0).contains(&self.steady_margin)) {
            return Err(Error::param(
                "--steady-margin",
                format!("expected 0 (off) to 100, got {}", self.steady_margin),
            ));
        }
        if !(self.tonal_ms.is_finite() && (10.0..=1000.0).contains(&self.tonal_ms)) {
            return Err(Error::param(
                "--tonal-window",
                format!("expected 10 to 1000 ms, got {}", self.tonal_ms),
            ));
        }
        if !(self.tonal_threshold.is_finite() && (0.0..=1.0).contains(&self.tonal_threshold)) {
            return Err(Error::param(
                "--tonal-threshold",
                format!("expected 0 to 1 (1: off), got {}", self.tonal_threshold),
            ));
        }
        if !(self.melody_lift_db.is_finite() && (-12.0..=12.0).contains(&self.melody_lift_db)) {
            return Err(Error::param(
                "--melody-lift",
                format!(
                    "expected -12 to 12 dB per octave, got {}",
                    self.melody_lift_db
                ),
            ));
        }
        if !(self.melody_overtone_penalty.is_finite()
            && (0.0..=1.0).contains(&self.melody_overtone_penalty))
        {
            return Err(Error::param(
                "--melody-overtones",
                format!(
                    "expected a share from 0 to 1 (0: off), got {}",
                    self.melody_overtone_penalty
                ),
            ));
        }
        for (what, v, hi) in [
            ("--drum-tail", self.drum_tail_hz, 1000.0),
            ("--drum-tail-window", self.drum_tail_ms, 300.0),
            ("--drum-tail-decay", self.drum_tail_decay_db_s, 10000.0),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(Error::param(what, format!("expected 0 to {hi}, got {v}")));
            }
        }
        if self.spatial_max_hz.is_nan() || self.spatial_max_hz <= 0.0 {
            return Err(Error::param(
                "--spatial-max-freq",
                format!(
                    "expected a frequency above 0 Hz, got {}",
                    self.spatial_max_hz
                ),
            ));
        }
        if !(self.track_ms.is_finite() && (0.0..=2000.0).contains(&self.track_ms)) {
            return Err(Error::param(
                "--track-window",
                format!("expected 0 to 2000 ms, got {}", self.track_ms),
            ));
        }
        Ok(())
    }

    /// The settings at `sample_rate` for the STFT `stft`.
    pub fn resolve(&self, sample_rate: u32, stft: &StftParams) -> ProductionParams {
        let nyquist = sample_rate as f32 / 2.0;
        let hold_stride = crate::stages::spatial::stats_stride(
            crate::stages::spatial::segment_frames(stft.n_fft),
            stft.n_fft,
            stft.hop_length,
        );
        let window =
            (self.track_ms / 1000.0 * sample_rate as f32 / stft.hop_length as f32).round() as usize;
        let line = |range: (f32, f32), harmonics, voicing, register_hi: f32| LineParams {
            lo_hz: range.0.min(nyquist / 2.0),
            hi_hz: range.1.min(nyquist / 1.5),
            harmonics,
            decay: 0.8,
            jump_cost: 0.35,
            window,
            voicing,
            register_hi_hz: register_hi.min(nyquist),
            lift: 0.0,
            overtone_penalty: 0.0,
        };
        ProductionParams {
            sample_rate,
            bass: line(self.bass_range_hz, 6, self.bass_voicing, 1200.0),
            melody: LineParams {
                lift: self.melody_lift_db / LIFT_DB_PER_UNIT,
                overtone_penalty: self.melody_overtone_penalty,
                ..line(self.melody_range_hz, 10, self.melody_voicing, 8000.0)
            },
            bass_cutoff_hz: self.bass_cutoff_hz,
            comb_cents: self.comb_cents,
            bass_partials: 8,
            bass_comb_fade_hz: self.bass_comb_fade_hz,
            melody_partials: 30,
            steady_kernel: ((Kernel::Seconds(self.steady_ms as f64 / 1000.0)
                .resolve(sample_rate, stft) as f64
                / STEADY_STEP as f64)
                .round() as usize
                | 1)
            .min(crate::params::MAX_KERNEL),
            steady_margin: self.steady_margin,
            tonal_window: (self.tonal_ms / 1000.0 * sample_rate as f32 / stft.hop_length as f32)
                .round()
                .clamp(1.0, MAX_TONAL_WINDOW as f32) as usize,
            tonal_threshold: self.tonal_threshold,
            tail_bins: if self.drum_tail_hz > 0.0 && self.drum_tail_ms > 0.0 {
                ((self.drum_tail_hz / (sample_rate as f32 / stft.n_fft as f32)).ceil() as usize)
                    .min(stft.n_bins())
            } else {
                0
            },
            tail_frames:
                ((self.drum_tail_ms / 1000.0 * sample_rate as f32 / stft.hop_length as f32).round()
                    as usize)
                    .min(MAX_TAIL_FRAMES),
            tail_rho: 10f32.powf(
                -self.drum_tail_decay_db_s * stft.hop_length as f32 / sample_rate as f32 / 20.0,
            ),
            spatial_frames: if self.spatial {
                crate::stages::spatial::segment_frames(stft.n_fft)
            } else {
                0
            },
            spatial_bins: crate::stages::spatial::band_bins(
                self.spatial_max_hz,
                sample_rate as f32 / stft.n_fft as f32,
                stft.n_bins(),
            ),
            profile_frames: if self.bass_profile {
                crate::stages::spatial::segment_frames(stft.n_fft)
            } else {
                0
            },
            profile_floor: (PROFILE_FLOOR_MS / 1000.0 * sample_rate as f32 / stft.hop_length as f32)
                .round() as usize,
            drums_below_ratio: if self.drums_below_line_oct > 0.0 {
                (-self.drums_below_line_oct).exp2()
            } else {
                0.0
            },
            mid_margin: self.mid_margin,
            mid_bins: band_bins_between(
                self.mid_band_hz,
                sample_rate as f32 / stft.n_fft as f32,
                stft.n_bins(),
            ),
            profile_rest_window: (PROFILE_REST_MS / 1000.0 * sample_rate as f32
                / stft.hop_length as f32)
                .round() as usize,
            profile_rest_ratio: if self.profile_rest_db > 0.0 {
                10f32.powf(-self.profile_rest_db / 20.0)
            } else {
                0.0
            },
            melody_floor_frames: if self.melody_floor_st > 0.0 {
                crate::stages::spatial::segment_frames(stft.n_fft)
            } else {
                0
            },
            melody_floor_ratio: (-self.melody_floor_st / 12.0).exp2(),
            sustain_ratio: self.note_sustain,
            sustain_frames: {
                let frames = |ms: f32| {
                    ((ms / 1000.0 * sample_rate as f32 / stft.hop_length as f32).round() as usize)
                        .max(1)
                };
                (
                    frames(SUSTAIN_FROM_MS),
                    frames(SUSTAIN_TO_MS).max(frames(SUSTAIN_FROM_MS)),
                )
            },
            sustain_bins: band_bins_between(
                (SUSTAIN_MIN_HZ, SUSTAIN_MAX_HZ),
                sample_rate as f32 / stft.n_fft as f32,
                stft.n_bins(),
            ),
            hold_frames: if self.harmony_hold_ms > 0.0 {
                crate::stages::spatial::segment_frames(stft.n_fft)
            } else {
                0
            },
            hold_stride,
            hold_radius: (self.harmony_hold_ms / 1000.0 * sample_rate as f32
                / stft.hop_length as f32
                / hold_stride as f32)
                .round() as usize,
            hold_bins: crate::stages::spatial::band_bins(
                crate::stages::hold::HOLD_MAX_HZ,
                sample_rate as f32 / stft.n_fft as f32,
                stft.n_bins(),
            ),
        }
    }
}

impl ProductionParams {
    /// Frames after a frame that the note sustain reads (0 when it is off).
    pub fn sustain_reach(&self) -> usize {
        if self.sustain_ratio > 0.0 {
            self.sustain_frames.1
        } else {
            0
        }
    }

    /// Frames each side of a frame that the tonal shift reads (0 when it is off).
    pub fn tonal_reach(&self) -> usize {
        if self.tonal_threshold < 1.0 {
            self.tonal_window
        } else {
            0
        }
    }
}

impl Default for ProductionParams {
    fn default() -> Self {
        ProductionSpec::default().resolve(48000, &StftParams::default())
    }
}

/// The most frames back that [`drum_tail`] reads.
pub const MAX_TAIL_FRAMES: usize = 64;

/// The median of the `k`-bin window around bin `b` of a magnitude row, with the reflect
/// boundary: one value of `stages::median::median_freq` (exact selection, so the same value).
pub fn freq_median_at(row: &[f32], b: usize, k: usize, scratch: &mut Vec<f32>) -> f32 {
    scratch.clear();
    scratch.extend((0..k as i64).map(|o| {
        row[crate::stages::median::reflect_index(b as i64 + o - (k / 2) as i64, row.len())]
    }));
    let mid = k / 2;
    *scratch.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// The bins `lo .. hi` whose centre frequency `k · bin_hz` lies in `lo_hz ≤ f < hi_hz`, at most
/// `bins` (empty for an empty band).
pub fn band_bins_between((lo_hz, hi_hz): (f32, f32), bin_hz: f32, bins: usize) -> (usize, usize) {
    if hi_hz.partial_cmp(&lo_hz) != Some(std::cmp::Ordering::Greater) {
        return (0, 0);
    }
    let edge = |f: f32| ((f / bin_hz).ceil().max(0.0) as usize).min(bins);
    (edge(lo_hz), edge(hi_hz))
}

/// Stage `hpss` of the production stems (twin of the masks in `stem_weights` in
/// `shaders/production.wgsl`): [`crate::stages::mask::hpss_masks`] of the first `mask_h.len()`
/// bins, with the harmonic margin [`ProductionParams::mid_margin`] on the bins
/// [`ProductionParams::mid_bins`] instead of `hpss.margin_harmonic`. Measured (twentieth and
/// twenty-first sessions, 174 songs): with 1.0 at 150–1000 Hz instead of 1.2 the fx stem holds
/// 2.2 dB less of the other sources, harmony +0.04 dB, drums +0.02.
pub fn hpss_masks_banded(
    harm: &[f32],
    perc: &[f32],
    hpss: &crate::params::HpssParams,
    production: &ProductionParams,
    mask_h: &mut [f32],
    mask_p: &mut [f32],
) {
    hpss_masks_banded_range(harm, perc, 0, hpss, production, mask_h, mask_p);
}

/// [`hpss_masks_banded`] of the bins `first .. first + mask_h.len()` of a row (the slices hold
/// those bins only): each bin's masks are the same as in a whole row.
pub fn hpss_masks_banded_range(
    harm: &[f32],
    perc: &[f32],
    first: usize,
    hpss: &crate::params::HpssParams,
    production: &ProductionParams,
    mask_h: &mut [f32],
    mask_p: &mut [f32],
) {
    use crate::stages::mask::hpss_masks;
    let n = mask_h.len();
    // The band in the slices' own bins.
    let (lo, hi) = production.mid_bins;
    let (lo, hi) = (
        lo.saturating_sub(first).min(n),
        hi.saturating_sub(first).min(n),
    );
    if lo >= hi || production.mid_margin == hpss.margin_harmonic {
        hpss_masks(harm, perc, hpss, mask_h, mask_p);
        return;
    }
    let mid = crate::params::HpssParams {
        margin_harmonic: production.mid_margin,
        ..*hpss
    };
    // Below, in and above the band: each bin's masks computed once.
    for (range, params) in [(0..lo, hpss), (lo..hi, &mid), (hi..n, hpss)] {
        hpss_masks(
            &harm[range.clone()],
            &perc[range.clone()],
            params,
            &mut mask_h[range.clone()],
            &mut mask_p[range],
        );
    }
}

/// The drum tail (twin of the tail in `production` in `shaders/production.wgsl`): a bin's
/// percussive estimate `q` held up along a drum's decay. A kick's low body rings for 100–300 ms
/// and, being narrow in frequency, stands only a little above its frequency median, so once its
/// attack has passed the time median (the harmonic estimate) takes it and it goes to the bass.
/// Here each earlier frame's percussive estimate `prev[k − 1]` (`None` before the signal),
/// decayed by `rho^k`, also counts, up to the bin's magnitude `x`:
/// `q' = max(q, max_k min(rho^k · P[t − k], x))`, and of the gain only the share `1 − bass`
/// is taken, `bass` being the bass line's comb at the bin, so a held bass note keeps its own.
pub fn drum_tail(
    q: f32,
    x: f32,
    prev: impl Iterator<Item = Option<f32>>,
    rho: f32,
    bass: f32,
) -> f32 {
    let mut best = q;
    let mut g = 1.0f32;
    for p in prev {
        g *= rho;
        if let Some(p) = p {
            best = best.max((g * p).min(x));
        }
    }
    q + (best - q) * (1.0 - bass)
}

/// Frames between the points of the steady estimate's grid: it is taken every `STEADY_STEP`
/// frames (frames `0, 4, 8, …`, a grid fixed to the signal, so blocks do not change it), as the
/// median of the percussive estimate at `steady_kernel` points around, and each frame reads the
/// nearest point. A level over half a second needs no finer grid, and it costs a sixteenth of a
/// median at every frame over every frame.
pub const STEADY_STEP: usize = 4;

/// Where the steady estimate of output frames `start .. end` (of `n_frames`) comes from: points
/// `first .. first + rows` of the grid, their median reading the percussive estimate at points
/// `lo .. hi` (reflected at the signal's ends, as the HPSS medians).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteadyGrid {
    /// Points of the whole signal's grid: frames `0, STEADY_STEP, …` below `n_frames`.
    pub n_points: usize,
    /// The first point the output frames read.
    pub first: usize,
    /// Points the output frames read.
    pub rows: usize,
    /// First point whose percussive estimate the medians read.
    pub lo: usize,
    /// One past the last such point.
    pub hi: usize,
}

impl SteadyGrid {
    /// The grid for output frames `start .. end` (non-empty) of an `n_frames`-frame signal and a
    /// median of `kernel` points.
    pub fn new(start: usize, end: usize, n_frames: usize, kernel: usize) -> Self {
        let n_points = n_frames.div_ceil(STEADY_STEP);
        let point = |t: usize| ((t + STEADY_STEP / 2) / STEADY_STEP).min(n_points - 1);
        let (first, last) = (point(start), point(end - 1));
        let (lo, hi) = crate::stream::reach(first, last + 1, n_points, kernel);
        SteadyGrid {
            n_points,
            first,
            rows: last + 1 - first,
            lo,
            hi,
        }
    }

    /// The row (point − `first`) that frame `t` reads: its nearest point.
    pub fn row(&self, t: usize) -> usize {
        ((t + STEADY_STEP / 2) / STEADY_STEP).min(self.n_points - 1) - self.first
    }

    /// Frames before and after a frame that its steady estimate reads (a median of `kernel`
    /// points).
    pub fn halo(kernel: usize) -> (usize, usize) {
        let (before, after) = crate::stream::halo(kernel);
        (
            STEADY_STEP * before + STEADY_STEP / 2 - 1,
            STEADY_STEP * after + STEADY_STEP / 2,
        )
    }
}

/// Frequency-only part of the weights: the low register `b_low(f)` per bin.
pub fn low_register(params: &ProductionParams, bins: usize, bin_hz: f32) -> Vec<f32> {
    (0..bins)
        .map(|b| crate::stages::pitch::low_weight(b as f32 * bin_hz, params.bass_cutoff_hz, 3.0))
        .collect()
}

/// A comb bump's σ relative to its partial's frequency: `2^(cents/1200) − 1`.
pub fn comb_ratio(cents: f32) -> f32 {
    2f32.powf(cents / 1200.0) - 1.0
}

/// The spread of a steady partial over the STFT's bins, in bins: a Hann window's main lobe holds
/// a sinusoid in the bins within ±2 of it (the nearest two or three carry ~95 % of its power),
/// whatever its frequency. A comb bump's σ is `√((f·ratio)² + (COMB_LOBE_BINS·bin_hz)²)`: the
/// pitch spread (vibrato, detuning) in cents and this window spread in bins, combined.
pub const COMB_LOBE_BINS: f32 = 1.5;

/// The window spread of the melody comb's bumps, in bins (the bass comb's is
/// [`COMB_LOBE_BINS`]), with their σ at least [`MELODY_MIN_SIGMA_BINS`]. The melody comb takes
/// whole bins with no amplitude cap, so its bumps' flanks take the chord tones and other
/// partials a bin or two beside the melody's. Measured in the seventeenth session against 1.5
/// bins on 46 songs (seeds 8, 10, 14, 16): 1.0 / 0.75 / 0.5 / 0.25 / 0 bins gave melody +0.12 /
/// +0.17 / +0.23 / +0.29 / +0.35 dB and harmony +0.04 / +0.07 / +0.10 / +0.14 / +0.16; but the
/// evaluation's melodies start at C5, and a steady tone at 110–200 Hz (where the pitch spread is
/// a fraction of a bin) keeps only 0.70–0.74 of its energy in a 0.5-bin comb (0.94 at 1.5 bins),
/// hence the floor.
pub const MELODY_LOBE_BINS: f32 = 0.5;

/// The melody comb's least σ, in bins: a steady tone keeps ≥ 0.87 of its energy in the comb at
/// any pitch (0.88 at 110 Hz, 0.90 at 523 Hz, 0.93 at 800 Hz; 0.94–0.97 with the old 1.5-bin
/// window term). With [`MELODY_LOBE_BINS`] 0.5: melody +0.16, harmony +0.07 on the 46 songs.
pub const MELODY_MIN_SIGMA_BINS: f32 = 1.0;

/// The bass line's envelope model: its partial h is at most this many times the smallest
/// magnitude of partials 1 … h − 1. A partial that stands above that (a chord tone on the bass's
/// 4th to 6th partials, say) is shared: see [`add_comb`]. (1.5 until the eighth session: picked
/// and finger basses often have a 2nd or 3rd partial twice their fundamental, and lost them to
/// the harmony.)
pub const BASS_ENVELOPE_GROWTH: f32 = 2.5;

/// The bass envelope model's power-law bound: from partial 3 on, partial h is at most this many
/// times `max(m_1, m_2) · h^(−α)`, the power law through the model's first two partials
/// (`α = log2(m_1 / m_2)`, at least 0: a bass whose 2nd partial is the stronger, as picked and
/// finger basses often have, gets a flat law at that 2nd partial's level, not at its weaker
/// fundamental's). A chord tone a semitone from the bass's 3rd partial, or exactly on its 4th to
/// 6th, stands far above that law and is mostly left to the harmony.
pub const BASS_POWER_LAW_GROWTH: f32 = 1.2;

/// The bass comb's bound on its upper partials: from partial 4 on, partial h is also at most
/// [`BASS_POWER_LAW_GROWTH`]` · max(m_1, m_2) · (h − 2)^(−`this`)`, whatever the slope of the
/// first two (a bright bass, 2nd partial the stronger, gets a flat power law at α = 0, and with it
/// took the chord tones that sit on its 4th to 6th partials when the bass plays the root). Only
/// the comb's envelope ([`Envelope::comb`], [`add_comb`]) has it, not [`clear_line`]'s.
/// Measured in the fourteenth session: where the comb gave the bass the whole bin on its partials
/// 4 / 5 / 6, the true bass share was 0.45 / 0.32 / 0.10 (seeds 8 and 10); with the bound the
/// harmony gains 0.15 dB over seeds 1–6 and 0.12 dB over seeds 8 and 10 (on the fresh seed 13 it
/// loses 0.04 dB; +0.10 dB over all 114 songs). A bass whose 3rd partial is its peak
/// ([`BASS_THIRD_PEAK`]) has the bound `· max(m_1, m_2, m_3) · (h − 3)^(−this)` instead.
pub const BASS_UPPER_EXPONENT: f32 = 2.0;

/// A bass whose 3rd partial reaches this share of the stronger of its first two has its
/// spectral peak at the 3rd (a bright picked bass, partials 2 to 4 all above its fundamental):
/// the upper-partial bounds ([`BASS_UPPER_EXPONENT`], [`PROFILE_UPPER_EXPONENT`]) then fall from
/// the 3rd partial instead of the 2nd (see [`upper_anchor`]). Measured in the twenty-third
/// session: the bound from the 2nd partial held a picked bass's 4th partial (true level 0.6 of
/// its 3rd, median over 38 songs) to a quarter of its 2nd, and its upper partials went to the
/// harmony. Over 234 songs bass +0.08, harmony +0.03, melody +0.02 (picked-bass songs: bass
/// +0.49, harmony +0.24; finger-bass songs harmony −0.08); at 0.7 / 1.0 the picked songs gained
/// +0.26 / +0.10 and the finger songs lost −0.13 / −0.02.
pub const BASS_THIRD_PEAK: f32 = 0.8;

/// The anchor and origin of the upper-partial bound `anchor · (h − origin)^(−e)` on partials
/// `h ≥ 4`, from the levels of partials 1 to 3: `(max(m_1, m_2), 2)`, or
/// `(max(m_1, m_2, m_3), 3)` where `m_3 ≥ `[`BASS_THIRD_PEAK`]` · max(m_1, m_2)`.
#[inline]
pub fn upper_anchor(m1: f32, m2: f32, m3: f32) -> (f32, f32) {
    let top = m1.max(m2);
    if m3 >= BASS_THIRD_PEAK * top {
        (top.max(m3), 3.0)
    } else {
        (top, 2.0)
    }
}

/// Partials the bass profile covers (1 ..= this): the bass comb's partials above them keep the
/// envelope model alone.
pub const PROFILE_PARTIALS: usize = 8;

/// A segment's bass partial profile: per partial `h` (index `h − 1`) the ratio `c_h` such that
/// the bass comb takes at most `c_h · a_1` of partial `h` (`a_1` the frame's fundamental), or a
/// negative value where there is none ([`NO_PROFILE`]; always for `h = 1`).
pub type BassProfile = [f32; PROFILE_PARTIALS];

/// No profile: the comb keeps its envelope model.
pub const NO_PROFILE: BassProfile = [-1.0; PROFILE_PARTIALS];

/// The bass profile's floor: each side of a frame, the span whose minimum of a partial's
/// amplitude is taken as what does not come and go with the bass's notes (a held chord tone).
pub const PROFILE_FLOOR_MS: f32 = 250.0;

/// The bass profile's margin: the cap is this many times the estimated ratio (an underestimate
/// hands the bass's own partial to the harmony, an overestimate is bounded by the envelope
/// model anyway). Chosen among 1, 1.5, 2, 3 on seeds 6, 8, 9, 10.
pub const PROFILE_SCALE: f32 = 1.5;

/// From the 4th partial on the profile is at most
/// [`BASS_POWER_LAW_GROWTH`]` · max(1, ρ_2) · (h − 2)^(−this)`: the floor-subtracted ratios of
/// the upper partials, where chord tones come and go too, run high. 2 since the twenty-second
/// session (3 before): with the bass's rests out of the medians ([`profile_rests`]) the upper
/// partials' estimates no longer take the chords' ratios, and the looser bound gave over 174
/// songs bass +0.08, harmony +0.05, melody +0.01 (seeds 18–22: +0.08 / +0.06 / +0.02). Where
/// `ρ_3 ≥ `[`BASS_THIRD_PEAK`]` · max(1, ρ_2)` the bound is `· max(1, ρ_2, ρ_3) · (h − 3)^(−this)`
/// ([`upper_anchor`]).
pub const PROFILE_UPPER_EXPONENT: f32 = 2.0;

/// Partials below this keep the envelope model alone: there the bass owns the bins.
pub const PROFILE_MIN_HZ: f32 = 150.0;

/// A segment whose bass fundamental moves less than this (the median over its voiced frames of
/// `E_1 / a_1`, see [`bass_profile`]) has no profile: a bass held at one level (a sustained
/// synth bass) looks like a chord tone to the floor, and its partials would be lost. Plucked and
/// struck basses decay within their notes: 0.53–1.0 over the 126 evaluation songs (seeds 1–13
/// and the low-bass set), against 0.04 for the held bass of the dense synthetic mix.
pub const PROFILE_MIN_MOTION: f32 = 0.3;

/// Fundamental amplitudes at or below this do not count in the profile (silence).
pub const PROFILE_MIN_AMP: f32 = 1e-6;

/// The window of [`profile_rests`]: each side of a frame, the span whose largest harmonic
/// estimate at the bass line's f0 a frame is measured against.
pub const PROFILE_REST_MS: f32 = 1000.0;

/// The bass line's rests within one segment of frames: a voiced frame (`f0 > 0`) is a rest where
/// `x_j`, the harmonic estimate `harm(j, k)` at the line's nearest bin `k`, is under `ratio`
/// times the largest `x` of the segment's frames within ±`window` of it (the unvoiced ones count
/// 0). The tracker holds the line through the bass's rests and the ends of its tails, on a chord
/// tone or the last note's decay, where the mix's partials are not the bass's: such frames would
/// teach [`bass_profile`] a chord's ratios. Measured on the evaluation songs (twenty-first
/// session; a rest being where the true bass stem is 30 dB under its peak): at 15 dB and ±1 s
/// it finds 76 % of the rest frames the line holds and 2.4 % of its note frames (the harmonic
/// estimate alone separates them with a ROC area of 0.955). `ratio` 0: none. Taken within the
/// segment, so that blocks do not change it.
pub fn profile_rests(
    f0: &[f32],
    harm: impl Fn(usize, usize) -> f32,
    bin_hz: f32,
    window: usize,
    ratio: f32,
) -> Vec<bool> {
    let n = f0.len();
    if ratio <= 0.0 {
        return vec![false; n];
    }
    let x: Vec<f32> = f0
        .iter()
        .enumerate()
        .map(|(j, &f)| {
            if f > 0.0 {
                harm(j, (f / bin_hz).round() as usize)
            } else {
                0.0
            }
        })
        .collect();
    (0..n)
        .map(|j| {
            let span = &x[j.saturating_sub(window)..(j + window + 1).min(n)];
            let top = span.iter().fold(0.0f32, |m, &v| m.max(v));
            f0[j] > 0.0 && x[j] < ratio * top
        })
        .collect()
}

/// Stage `bass_profile`: the bass's partial profile over one segment of frames, from the bass
/// line `f0` (0: unvoiced), `amp(j, k)`, the channel-summed magnitude of frame `j` at bin `k`, and
/// `harm(j, k)`, its channel-summed harmonic estimate (for [`profile_rests`], with `rest` =
/// (window, ratio)).
///
/// For each frame and partial `h ≤` [`PROFILE_PARTIALS`], `a_h` is the magnitude at the partial's
/// nearest bin (0 when unvoiced or past the top); `E_h = max(a_h − min over ±floor frames of
/// a_h, 0)`, what rises and falls with the notes (a held chord tone on the same bin stays in the
/// floor); `ρ_h` = the median over the voiced frames with `a_1 >` [`PROFILE_MIN_AMP`] that are
/// not rests of `E_h / a_1` (the upper median of an even count). From `h = 4` on `ρ_h` is
/// bounded by [`PROFILE_UPPER_EXPONENT`], then every ratio is scaled by [`PROFILE_SCALE`].
/// Without such a frame, or when the fundamental's own `E_1 / a_1` has a median below
/// [`PROFILE_MIN_MOTION`], the segment has [`NO_PROFILE`]. Both engines run it on the host, on
/// the same sums the lines are tracked on. Measured on the evaluation songs (fifteenth session):
/// with the true profile the bass share at the partials' bins has half the error of the envelope
/// model alone.
pub fn bass_profile(
    f0: &[f32],
    amp: impl Fn(usize, usize) -> f32,
    harm: impl Fn(usize, usize) -> f32,
    bins: usize,
    bin_hz: f32,
    floor: usize,
    rest: (usize, f32),
) -> BassProfile {
    let n = f0.len();
    let mut a = vec![0.0f32; PROFILE_PARTIALS * n];
    for (j, &f) in f0.iter().enumerate() {
        if f <= 0.0 {
            continue;
        }
        for h in 1..=PROFILE_PARTIALS {
            let k = (h as f32 * f / bin_hz).round() as usize;
            if k >= bins {
                break;
            }
            a[(h - 1) * n + j] = amp(j, k);
        }
    }
    let rests = profile_rests(f0, harm, bin_hz, rest.0, rest.1);
    let voiced: Vec<usize> = (0..n)
        .filter(|&j| a[j] > PROFILE_MIN_AMP && !rests[j])
        .collect();
    if voiced.is_empty() {
        return NO_PROFILE;
    }
    // The median over the voiced frames of E_h / a_1 (the upper median of an even count).
    let mut ratios = Vec::with_capacity(voiced.len());
    let mut median_ratio = |h: usize| {
        let row = &a[(h - 1) * n..h * n];
        ratios.clear();
        ratios.extend(voiced.iter().map(|&j| {
            let span = &row[j.saturating_sub(floor)..(j + floor + 1).min(n)];
            let low = span.iter().fold(f32::INFINITY, |m, &v| m.min(v));
            (row[j] - low).max(0.0) / a[j]
        }));
        let mid = ratios.len() / 2;
        *ratios.select_nth_unstable_by(mid, |x, y| x.total_cmp(y)).1
    };
    // The fundamental's own motion: a bass held at one level has none to learn from.
    if median_ratio(1) < PROFILE_MIN_MOTION {
        return NO_PROFILE;
    }
    let mut rho = [1.0f32; PROFILE_PARTIALS];
    for (h, r) in rho.iter_mut().enumerate().skip(1) {
        *r = median_ratio(h + 1);
    }
    let (top, origin) = upper_anchor(1.0, rho[1], rho[2]);
    let mut out = NO_PROFILE;
    for h in 2..=PROFILE_PARTIALS {
        let mut r = rho[h - 1];
        if h >= 4 {
            let bound = (h as f32 - origin).powf(-PROFILE_UPPER_EXPONENT);
            r = r.min(BASS_POWER_LAW_GROWTH * top * bound);
        }
        out[h - 1] = PROFILE_SCALE * r;
    }
    out
}

/// Stage `melody_floor`: the melody's floor over one segment of frames, `ratio` times the median
/// of the melody line's voiced f0 `lines[j].1` (the upper median of an even count; 0 when no
/// frame is voiced).
///
/// Where the melody rests the tracker still finds a predominant pitch, and it is an
/// accompaniment's: a chord's top voice, an octave or two under the tune, whose partials the
/// melody comb then takes from the harmony. A melody keeps to its register (a tune spans about
/// an octave or so around its centre), so a line more than an octave under its own median is
/// taken for such a rest and unvoiced ([`unvoice_below`]). Measured (twenty-fourth session; a
/// frame is a rest where the true melody is 30 dB under its peak): over 36 songs of seeds 10,
/// 13 and 22 the line lay more than an octave under the true melody's median in 6 % of the
/// frames, every one of them a rest or a wrong pitch, and the melody stem took 1.9 % of the
/// harmony's energy there; in no frame where the line had the melody's pitch.
pub fn melody_floor(lines: &[(f32, f32)], ratio: f32) -> f32 {
    let mut f0: Vec<f32> = lines.iter().map(|l| l.1).filter(|&f| f > 0.0).collect();
    if f0.is_empty() {
        return 0.0;
    }
    let mid = f0.len() / 2;
    ratio * *f0.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// [`melody_floor`] and [`unvoice_below`] on each segment of `segment` frames of `lines` (which
/// start on the segments' grid); returns the last segment's floor (`None` for no frames).
pub fn apply_melody_floors(lines: &mut [(f32, f32)], segment: usize, ratio: f32) -> Option<f32> {
    let mut last = None;
    for seg in lines.chunks_mut(segment) {
        let floor = melody_floor(seg, ratio);
        unvoice_below(seg, floor);
        last = Some(floor);
    }
    last
}

/// Unvoices the melody line (`lines[j].1 = 0`) in the frames where it lies under `floor` Hz
/// ([`melody_floor`]).
pub fn unvoice_below(lines: &mut [(f32, f32)], floor: f32) {
    for l in lines.iter_mut().filter(|l| l.1 < floor) {
        l.1 = 0.0;
    }
}

/// Most frames each side of a frame in its tonal stability (10 s at 48 kHz and hop 512; only tiny
/// hops reach it): bounds the harmonic context a block holds and the GPU's loop per bin.
pub const MAX_TONAL_WINDOW: usize = 1024;

/// Width of the tonal shift's ramp in stability: none of a bin's fx share moves at stability θ,
/// all of it from θ + `TONAL_SOFT` (linear between).
pub const TONAL_SOFT: f32 = 0.05;

/// Fixed-point scale of the tonal ratios (`round(ratio · TONAL_ONE)` as u32): sums over any
/// window are exact, so a frame's stability does not depend on where its block starts, and both
/// engines get the same sums from the same ratios.
pub const TONAL_ONE: f32 = 1_048_576.0;

simd_dispatch!(
    /// Stage `tonal_ratio` (the ratio read by `tonal_weight` in `shaders/production.wgsl`): one
    /// frame's `round(min(m, h) / max(m, h) · TONAL_ONE)` per bin (0 where both are 0), from its
    /// magnitude `mag` and harmonic estimate `harm`.
    pub fn tonal_ratio(mag: &[f32], harm: &[f32], out: &mut [u32]) {
        for ((o, &m), &h) in out.iter_mut().zip(mag).zip(harm) {
            *o = tonal_ratio_q(m, h);
        }
    }
);

/// One bin of [`tonal_ratio`].
#[inline(always)]
pub fn tonal_ratio_q(m: f32, h: f32) -> u32 {
    let hi = m.max(h);
    let r = if hi > 0.0 { m.min(h) / hi } else { 0.0 };
    let q = r * TONAL_ONE + 0.5;
    // `q` is in [0.5, TONAL_ONE + 0.5], or NaN for ∞/∞, which gives 0 (as `as u32` does).
    let q = if q >= 0.5 {
        q.min(TONAL_ONE + 0.5)
    } else {
        0.0
    };
    // SAFETY: `q` is finite and in [0, 2^20 + 0.5], whose integer part an i32 holds (a checked
    // `as` conversion does not vectorise).
    unsafe { q.to_int_unchecked::<i32>() as u32 }
}

/// The tonal shift's weight of a bin whose ratios over its window sum to `sum` over `n` frames:
/// its stability `sum / (n · TONAL_ONE)` mapped through the ramp from `threshold` to
/// `threshold + TONAL_SOFT`.
#[inline(always)]
pub fn tonal_weight(sum: u32, n: u32, threshold: f32) -> f32 {
    let stability = sum as f32 / (n as f32 * TONAL_ONE);
    ((stability - threshold) * (1.0 / TONAL_SOFT)).clamp(0.0, 1.0)
}

/// Stage `tonal` (twin of the tonal weight in `shaders/production.wgsl`): the tonal weights of
/// output frames `first .. first + out.len() / bins` of an `n_frames` signal, each averaging the
/// ratio rows of frames within ±`window` of it (and inside the signal). `ratios` holds the ratio
/// rows ([`tonal_ratio`]) of frames `ratios_first ..`, which must cover every frame read. Running
/// integer sums (exact), one per bin.
///
/// # Panics
/// If a window reaches a frame `ratios` does not hold.
#[allow(clippy::too_many_arguments)]
pub fn tonal_weights(
    ratios: &[u32],
    ratios_first: usize,
    bins: usize,
    n_frames: usize,
    first: usize,
    window: usize,
    threshold: f32,
    out: &mut [f32],
    sum: &mut Vec<u32>,
) {
    let frames = out.len() / bins;
    if frames == 0 {
        return;
    }
    let row = |t: usize| {
        let r = t
            .checked_sub(ratios_first)
            .expect("tonal window reaches before the ratio rows");
        &ratios[r * bins..(r + 1) * bins]
    };
    sum.clear();
    sum.resize(bins, 0);
    let (mut lo, mut hi) = (first.saturating_sub(window), first.saturating_sub(window));
    for (j, out) in out.chunks_exact_mut(bins).enumerate() {
        let t = first + j;
        let (want_lo, want_hi) = (t.saturating_sub(window), (t + window + 1).min(n_frames));
        while hi < want_hi {
            sum.iter_mut().zip(row(hi)).for_each(|(s, &q)| *s += q);
            hi += 1;
        }
        while lo < want_lo {
            sum.iter_mut().zip(row(lo)).for_each(|(s, &q)| *s -= q);
            lo += 1;
        }
        tonal_weight_row(sum, (hi - lo) as u32, threshold, out);
    }
}

simd_dispatch!(
    /// [`tonal_weight`] of every bin's window sum.
    fn tonal_weight_row(sum: &[u32], n: u32, threshold: f32, out: &mut [f32]) {
        for (o, &s) in out.iter_mut().zip(sum) {
            *o = tonal_weight(s, n, threshold);
        }
    }
);

simd_dispatch!(
    /// The tonal shift: each bin's fx share `max(1 − M_H − M_P, 0)` (with `mask_p` already gated)
    /// moves to the harmonic mask in proportion `tonal`; the three still partition unity.
    pub fn tonal_shift(tonal: &[f32], mask_h: &mut [f32], mask_p: &[f32]) {
        for ((h, &p), &x) in mask_h.iter_mut().zip(mask_p).zip(tonal) {
            *h += x * (1.0 - *h - p).max(0.0);
        }
    }
);

/// The note sustain's lowest frequency, Hz: below it a kick's body rings on like a note.
pub const SUSTAIN_MIN_HZ: f32 = 150.0;
/// The note sustain's highest frequency, Hz.
pub const SUSTAIN_MAX_HZ: f32 = 16000.0;
/// The note sustain's window starts this long after the frame, ms (past the frame's own
/// window, so that a hit's decay has begun).
pub const SUSTAIN_FROM_MS: f32 = 20.0;
/// The note sustain's window ends this long after the frame, ms.
pub const SUSTAIN_TO_MS: f32 = 65.0;
/// Width of the note sustain's ramp: none of a bin's percussive share moves at the ratio, all
/// of it from the ratio + this (linear between).
pub const SUSTAIN_SOFT: f32 = 0.2;

/// Stage `sustain` (twin of the note sustain in `shaders/production.wgsl`): the share of a bin's
/// percussive mask that moves to the harmonic one, from its magnitude `m` now and `ahead`, the
/// smallest of its magnitudes over the frames [`ProductionParams::sustain_frames`] ahead (0 past
/// the signal's end): `clamp((ahead / m − ratio) / `[`SUSTAIN_SOFT`]`, 0, 1)`, 0 where `m` is 0.
///
/// The median filters call a note's attack percussive: the frame where a piano, a plucked bass or
/// a pad starts stands out of the time median as a drum hit does (and with power-4 masks mostly
/// goes to the drums). A hit decays at once, a note goes on: a bin that still holds half its level
/// 20–65 ms later is a note's. Measured (twenty-fifth session, seeds 10 and 16): in bins where the
/// tonal sources outweigh drums and fx by 30 dB the drums stem took tonal energy worth 0.9 % of
/// the drums' own, two thirds of it within 4 frames of a tonal onset; with the sustain at 0.5
/// over 246 songs drums +0.38 dB, bass +0.15, melody and harmony −0.01. From 150 Hz: below, a
/// kick's body rings for 100 ms and more (over all bins: drums −0.5).
#[inline(always)]
pub fn sustain_weight(m: f32, ahead: f32, ratio: f32) -> f32 {
    // A select, not a branch (the row loop vectorises): 0 / 0 is NaN, which it drops.
    let w = ((ahead / m - ratio) * (1.0 / SUSTAIN_SOFT)).clamp(0.0, 1.0);
    if m > 0.0 {
        w
    } else {
        0.0
    }
}

simd_dispatch!(
    /// `acc[i] = min(acc[i], row[i])` (`f32::min`): the note sustain's smallest magnitude over
    /// the frames ahead, one frame at a time.
    pub fn min_into(acc: &mut [f32], row: &[f32]) {
        for (a, &m) in acc.iter_mut().zip(row) {
            *a = a.min(m);
        }
    }
);

/// The note sustain on one frame's HPSS masks, on the bins `lo .. hi`: `mag` the frame's
/// magnitude, `ahead` the smallest magnitude per bin over the frames ahead ([`sustain_weight`]);
/// the moved share of `mask_p` is added to `mask_h` (the two still sum as before).
pub fn sustain_shift(
    mag: &[f32],
    ahead: &[f32],
    ratio: f32,
    (lo, hi): (usize, usize),
    mask_h: &mut [f32],
    mask_p: &mut [f32],
) {
    let hi = hi.min(mask_h.len());
    if lo < hi {
        sustain_rows(
            &mag[lo..hi],
            &ahead[lo..hi],
            ratio,
            &mut mask_h[lo..hi],
            &mut mask_p[lo..hi],
        );
    }
}

simd_dispatch!(
    /// [`sustain_shift`] on whole rows (branch-free: it vectorises).
    fn sustain_rows(
        mag: &[f32],
        ahead: &[f32],
        ratio: f32,
        mask_h: &mut [f32],
        mask_p: &mut [f32],
    ) {
        let rows = mask_h.iter_mut().zip(mask_p.iter_mut()).zip(mag).zip(ahead);
        for (((h, p), &m), &a) in rows {
            let moved = sustain_weight(m, a, ratio) * *p;
            *p -= moved;
            *h += moved;
        }
    }
);

/// The Hann window's main lobe as an amplitude, `d` bins from a steady partial:
/// `cos²(π·d/4)` for `d < 2`, else 0 (equal to the exact `sinc(d) / (1 − d²)` at 0, 1 and 2 bins,
/// within 0.03 between; a polynomial-free twin of the shader's, without the exact form's 0/0).
#[inline]
pub fn window_lobe(d: f32) -> f32 {
    if d < 2.0 {
        let c = (std::f32::consts::FRAC_PI_4 * d).cos();
        c * c
    } else {
        0.0
    }
}

/// σ of the comb bump around a partial at `centre` Hz.
#[inline]
pub fn comb_sigma(centre: f32, ratio: f32, lobe_hz: f32) -> f32 {
    let c = centre * ratio;
    (c * c + lobe_hz * lobe_hz).sqrt()
}

/// The bass line's falling envelope model, fed its partials' magnitudes `a_1, a_2, …` in order:
/// `model_1 = a_1`, `model_h = min(a_h, g · min(a_1 … a_{h−1}))` with `g` =
/// [`BASS_ENVELOPE_GROWTH`]; from partial 3 on also at most
/// [`BASS_POWER_LAW_GROWTH`]` · max(model_1, model_2) · h^(−α)`,
/// `α = max(log2(model_1 / model_2), 0)`; the comb's ([`Envelope::comb`]) from partial 4 on also
/// at most [`BASS_POWER_LAW_GROWTH`]` · max(model_1, model_2) · (h − 2)^(−`[`BASS_UPPER_EXPONENT`]`)`,
/// or `· max(model_1, model_2, model_3) · (h − 3)^(−…)` where the 3rd partial is the peak
/// ([`upper_anchor`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Envelope {
    h: usize,
    run: f32,
    m1: f32,
    m2: f32,
    alpha: f32,
    m3: f32,
    upper: bool,
}

impl Envelope {
    /// The bass comb's model: with the upper-partial bound ([`BASS_UPPER_EXPONENT`]).
    pub fn comb() -> Self {
        Envelope {
            upper: true,
            ..Envelope::default()
        }
    }

    /// The model of the next partial, whose magnitude is `a`.
    #[inline]
    pub fn next(&mut self, a: f32) -> f32 {
        self.h += 1;
        let h = self.h;
        let mut model = if h == 1 {
            a
        } else {
            a.min(BASS_ENVELOPE_GROWTH * self.run)
        };
        if h > 2 && self.m2 > 0.0 {
            model = model
                .min(BASS_POWER_LAW_GROWTH * self.m1.max(self.m2) * (h as f32).powf(-self.alpha));
        }
        if self.upper && h >= 4 && self.m2 > 0.0 {
            let (top, origin) = upper_anchor(self.m1, self.m2, self.m3);
            model = model
                .min(BASS_POWER_LAW_GROWTH * top * (h as f32 - origin).powf(-BASS_UPPER_EXPONENT));
        }
        match h {
            1 => self.m1 = model,
            2 => {
                self.m2 = model;
                if model > 0.0 {
                    self.alpha = (self.m1 / model).log2().max(0.0);
                }
            }
            3 => self.m3 = model,
            _ => {}
        }
        self.run = if h == 1 { a } else { self.run.min(a) };
        model
    }
}

/// Weight of a comb partial at `centre` Hz that fades out around `fade_hz`: the
/// [`crate::stages::pitch::low_weight`] boundary (half there, over ±3 semitones); `fade_hz` ≤ 0:
/// no fade.
#[inline]
pub fn comb_fade(centre: f32, fade_hz: f32) -> f32 {
    if fade_hz > 0.0 {
        crate::stages::pitch::low_weight(centre, fade_hz, 3.0)
    } else {
        1.0
    }
}

/// Stage `drums_below` (twin of `drums_below_bins` in `shaders/production.wgsl`): the bins
/// `0 .. n` below `ratio · f0` (`ceil`), whose harmonic share the drums take instead of the bass
/// where the bass comb does not hold it: the drums' mask there is `P + H · (b − c)` and the bass's
/// `H · c`, with `b = max(b_low, c)` the bass weight and `c` the comb alone. 0 when the line is
/// unvoiced or the ratio is 0. Measured (sixteenth session, seeds 1–15): drums +0.2 dB and bass
/// +0.1 dB (a kick's sub body, which the time median calls harmonic, had gone to the bass); on the
/// low-bass set (bass 33–117 Hz) drums −0.24 and bass −0.34, where a line tracked an octave or a
/// twelfth above a low bass puts its true fundamental below the line.
#[inline]
pub fn drums_below_bins(f0: f32, ratio: f32, bin_hz: f32) -> usize {
    if f0 > 0.0 && ratio > 0.0 {
        ((ratio * f0) / bin_hz).ceil() as usize
    } else {
        0
    }
}

simd_dispatch!(
    /// Adds a comb on the partials of `f0` (0: none) into `w` (max-combined), up to `partials`,
    /// each partial weighted by [`comb_fade`] of `fade_hz`; a bump's σ is
    /// `max(√((f·ratio)² + (lobe_bins·bin_hz)²), min_sigma_bins·bin_hz)` (`ratio` from `cents`;
    /// see [`COMB_LOBE_BINS`], [`MELODY_LOBE_BINS`] and [`MELODY_MIN_SIGMA_BINS`]).
    ///
    /// With `harm` (the frame's harmonic magnitude), each partial's weight is limited by a
    /// falling envelope model of the line: `model_1 = a_1`,
    /// `model_h = min(a_h, g · min(a_1 … a_{h−1}))` with `g` = [`BASS_ENVELOPE_GROWTH`] and `a_h`
    /// the partial's harmonic magnitude; from partial 3 on also at most
    /// [`BASS_POWER_LAW_GROWTH`]` · max(m_1, m_2) · h^(−α)`, `α = max(log2(m_1 / m_2), 0)`, and
    /// from partial 4 on at most [`BASS_POWER_LAW_GROWTH`]` · max(m_1, m_2) · (h − 2)^(−2)`
    /// ([`BASS_UPPER_EXPONENT`]; from the 3rd partial where it is the peak, [`upper_anchor`]).
    /// From the 2nd partial the line's amplitude at each bin is predicted as
    /// `pred = model_h · `[`window_lobe`]`(d)`, `d` the bin's distance from the partial in bins
    /// less the pitch spread (`cents` at the partial): where another source sits on or beside a
    /// partial (chord tones on the bass's upper partials), a bin whose harmonic magnitude stands
    /// above `pred` gives the line only the share `(pred / harm[b])²` of it (power, as a Wiener
    /// mask); the fundamental keeps its bump. With a `profile` ([`bass_profile`]), partials
    /// `2 ..=` [`PROFILE_PARTIALS`] from [`PROFILE_MIN_HZ`] up are also capped at `c_h · a_1`,
    /// and there a bin above the prediction gives the line the share
    /// `pred² / (pred² + (harm[b] − pred)²)` (the bin's amplitude split into the line's and the
    /// rest's). The lobe in place of the bump (sixteenth session): a bump wider than the window's
    /// main lobe gave the bass up to 0.4 of a chord tone two bins off its partial, where the
    /// partial itself has no energy; over 138 songs harmony +0.05 dB.
    #[allow(clippy::too_many_arguments)]
    pub fn add_comb(
        w: &mut [f32],
        harm: Option<&[f32]>,
        f0: f32,
        partials: usize,
        fade_hz: f32,
        cents: f32,
        lobe_bins: f32,
        min_sigma_bins: f32,
        bin_hz: f32,
        profile: Option<&BassProfile>,
    ) {
        if f0 <= 0.0 {
            return;
        }
        let bins = w.len();
        let ratio = comb_ratio(cents);
        let lobe_hz = lobe_bins * bin_hz;
        // Partial amplitudes (only where a share is taken): the larger of the two bins around h·f0.
        let amp = |h: usize| -> f32 {
            let lo = (h as f32 * f0 / bin_hz).floor() as usize;
            match harm {
                Some(harm) if h > 0 && lo + 1 < bins => harm[lo].max(harm[lo + 1]),
                _ => 0.0,
            }
        };
        let mut envelope = Envelope::comb();
        for h in 1..=partials {
            let centre = h as f32 * f0;
            let sigma = comb_sigma(centre, ratio, lobe_hz).max(min_sigma_bins * bin_hz);
            let lo = ((centre - 3.0 * sigma) / bin_hz).ceil().max(0.0) as usize;
            if lo >= bins {
                break;
            }
            let hi = (((centre + 3.0 * sigma) / bin_hz).floor() as usize).min(bins - 1);
            let fade = comb_fade(centre, fade_hz);
            // Bins of the bump above `cap` give the line the share (cap / harm[b])².
            let mut cap = if harm.is_some() {
                let model = envelope.next(amp(h));
                if h > 1 {
                    model
                } else {
                    f32::INFINITY
                }
            } else {
                f32::INFINITY
            };
            // The profile's cap on partials 2 ..= PROFILE_PARTIALS from PROFILE_MIN_HZ, with the
            // share of a bin split as amplitudes (the bass `cap`, the rest `harm[b] − cap`).
            let mut profiled = false;
            if let Some(c) = profile.and_then(|p| p.get(h - 1)) {
                if h > 1 && *c >= 0.0 && cap.is_finite() && centre >= PROFILE_MIN_HZ {
                    cap = cap.min(c * amp(1));
                    profiled = true;
                }
            }
            // The bump of `comb_weight` around this partial (bins within 3σ of it).
            // Branch-free (it vectorises): `bump` with its zero outside ±3σ as a max.
            let inv = 1.0 / sigma;
            let bump = |i: usize| {
                let d = ((lo + i) as f32 * bin_hz - centre) * inv;
                let x = (1.0 - d * d / 9.0).max(0.0);
                let x2 = x * x;
                x2 * x2
            };
            match harm {
                // From the 2nd partial: the line's predicted amplitude at each bin, the cap times
                // the window's main lobe `d` bins from the partial ([`window_lobe`], its top
                // widened by the pitch spread); a bin above it gives the line the share
                // `(pred / harm[b])²`, or with the profile `pred² / (pred² + (harm[b] − pred)²)`.
                Some(harm) if cap.is_finite() => {
                    let spread = centre * ratio / bin_hz;
                    let c0 = centre / bin_hz;
                    // Only the lobe's bins (within spread + 2 of the partial) can take a share:
                    // the bump's ±3σ range is wider.
                    let l_lo = ((c0 - spread - 2.0).ceil().max(0.0) as usize).max(lo);
                    let l_hi = ((c0 + spread + 2.0).floor().max(0.0) as usize).min(hi);
                    if l_lo > l_hi {
                        continue;
                    }
                    let ws = w[l_lo..=l_hi].iter_mut().zip(&harm[l_lo..=l_hi]);
                    for (i, (v, &hb)) in ws.enumerate() {
                        let d = (((l_lo + i) as f32 - c0).abs() - spread).max(0.0);
                        let pred = cap * window_lobe(d);
                        // Nothing predicted, nothing taken (a bin without harmonic magnitude
                        // included).
                        let r2 = if pred <= 0.0 {
                            0.0
                        } else if hb <= pred {
                            1.0
                        } else if profiled {
                            let e = hb - pred;
                            (pred * pred) / (pred * pred + e * e)
                        } else {
                            (pred / hb) * (pred / hb)
                        };
                        *v = v.max(fade * r2);
                    }
                }
                _ => {
                    for (i, v) in w[lo..=hi].iter_mut().enumerate() {
                        *v = v.max(fade * bump(i));
                    }
                }
            }
        }
    }
);

/// The production masks of one frame, `[stem][bin]` for `stems` (a remainder stem is skipped:
/// it is taken in the time domain). `mask_h`/`mask_p` are the HPSS masks; `bass_w`/`mel_w` the
/// line weights.
///
/// `comb` is the bass comb alone (without the low register) and `below` the bins that
/// [`drums_below_bins`] gives the drums: there the drums' mask is `P + H · (b − c)` and the
/// bass's `H · c`.
pub fn production_masks(
    stems: &[crate::stems::Stem],
    mask_h: &[f32],
    mask_p: &[f32],
    bass_w: &[f32],
    mel_w: &[f32],
    (comb, below): (&[f32], usize),
    out: &mut [f32],
) {
    production_masks_wide(stems, mask_h, mask_p, bass_w, mel_w, comb, below, out);
}

simd_dispatch!(
    /// [`production_masks`]' loops, compiled for AVX2 where the CPU has it.
    #[allow(clippy::too_many_arguments)]
    fn production_masks_wide(
        stems: &[crate::stems::Stem],
        mask_h: &[f32],
        mask_p: &[f32],
        bass_w: &[f32],
        mel_w: &[f32],
        comb: &[f32],
        below: usize,
        out: &mut [f32],
    ) {
        use crate::stems::Stem;
        let bins = mask_h.len();
        for (stem, o) in stems.iter().zip(out.chunks_exact_mut(bins)) {
            let (h, p, bw, mw) = (
                &mask_h[..bins],
                &mask_p[..bins],
                &bass_w[..bins],
                &mel_w[..bins],
            );
            // One loop per stem, so each vectorises.
            match stem {
                Stem::Drums => o.copy_from_slice(p),
                Stem::Fx => (0..bins).for_each(|b| o[b] = (1.0 - h[b] - p[b]).max(0.0)),
                Stem::Bass => (0..bins).for_each(|b| o[b] = h[b] * bw[b]),
                Stem::Melody => (0..bins).for_each(|b| o[b] = h[b] * (1.0 - bw[b]) * mw[b]),
                Stem::Harmony => {
                    (0..bins).for_each(|b| o[b] = h[b] * (1.0 - bw[b]) * (1.0 - mw[b]))
                }
                _ => o.fill(0.0),
            }
            let below = below.min(bins);
            match stem {
                Stem::Drums => (0..below).for_each(|b| o[b] = p[b] + h[b] * (bw[b] - comb[b])),
                Stem::Bass => (0..below).for_each(|b| o[b] = h[b] * comb[b]),
                _ => {}
            }
        }
    }
);

/// Stage `line_input` (twin of `line_input` in `shaders/production.wgsl`): `sum` = Σ `rows`, in
/// channel order (the pitch lines are tracked on the channels' sum).
pub fn line_input<'a>(mut rows: impl Iterator<Item = &'a [f32]>, sum: &mut [f32]) {
    let n = sum.len();
    match rows.next() {
        Some(first) => sum.copy_from_slice(&first[..n]),
        None => sum.fill(0.0),
    }
    for row in rows {
        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
}

/// The bass-register candidates (strongest first, on the magnitude) taken out of the melody's
/// input: the bass line and, often, its octave or the chord's root, whose upper partials would
/// otherwise vote for f0s in the melody's range.
pub const CLEARED_BASS_CANDIDATES: usize = 2;

/// Bins each side of a partial that [`clear_line`] clears: a Hann window's main lobe.
pub const CLEAR_REACH_BINS: usize = 2;

/// dB per octave of [`ProductionSpec::melody_lift_db`] per unit of [`LineParams::lift`] (the
/// exponent of f0): `20 · log10(2)`.
pub const LIFT_DB_PER_UNIT: f32 = 6.0206;

/// Takes the line at `f0` out of the magnitude row `mag`: from the bins within `reach` of each of
/// its first `partials` partials, the partial's [`Envelope`] model (floored at 0). What stands
/// above the model (a melody's fundamental on the bass's 6th partial, say) stays.
pub fn clear_line(mag: &mut [f32], f0: f32, partials: usize, reach: usize, bin_hz: f32) {
    let bins = mag.len();
    let mut envelope = Envelope::default();
    for h in 1..=partials {
        let at = h as f32 * f0 / bin_hz;
        let lo = at.floor() as usize;
        if lo + 1 >= bins {
            break;
        }
        let model = envelope.next(mag[lo].max(mag[lo + 1]));
        let centre = at.round() as usize;
        for v in &mut mag[centre.saturating_sub(reach)..(centre + reach + 1).min(bins)] {
            *v = (*v - model).max(0.0);
        }
    }
}

/// One frame's bass and melody candidates from its channel-summed harmonic estimate
/// `harm_sum` and magnitude `mag_sum` (which it overwrites): the bass on the harmonic estimate
/// (steady); the melody on the magnitude itself (the time median smooths away notes shorter than
/// half its kernel, and a melody is made of such notes), searched for in what the bass leaves:
/// the partials of the magnitude's [`CLEARED_BASS_CANDIDATES`] strongest bass candidates are
/// taken out first, each down to its envelope model ([`clear_line`]; else the bass's upper
/// partials read as a melody an octave or two above it, and zeroing them outright would also
/// take a melody's fundamental that sits on one). Both engines run this on the CPU.
pub fn line_candidates(
    trackers: (&LineTracker, &LineTracker),
    params: &ProductionParams,
    bin_hz: f32,
    harm_sum: &[f32],
    mag_sum: &mut [f32],
    scratch: &mut Vec<f32>,
) -> (FrameCandidates, FrameCandidates) {
    let (bass, melody) = trackers;
    let b = bass.candidates(harm_sum, scratch);
    let on_mag = bass.candidates(mag_sum, scratch);
    for &(fb, _) in on_mag.points.iter().take(CLEARED_BASS_CANDIDATES) {
        clear_line(mag_sum, fb, params.bass_partials, CLEAR_REACH_BINS, bin_hz);
    }
    (b, melody.candidates(mag_sum, scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustain_shift_moves_the_percussive_share_of_notes_that_go_on() {
        // Against the formula written out, on seeded random magnitudes and masks (zeros and
        // bins outside the band included); the two masks keep their sum.
        let mut rng = crate::rng::Rng::new(41);
        let bins = 300;
        let (lo, hi) = (20, 250);
        for ratio in [0.3f32, 0.5, 0.8] {
            let mag: Vec<f32> = (0..bins)
                .map(|k| if k % 13 == 0 { 0.0 } else { rng.uniform() })
                .collect();
            let ahead: Vec<f32> = mag.iter().map(|&m| m * 1.5 * rng.uniform()).collect();
            let mask_p: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
            let mask_h: Vec<f32> = mask_p.iter().map(|&p| (1.0 - p) * rng.uniform()).collect();
            let (mut h, mut p) = (mask_h.clone(), mask_p.clone());
            sustain_shift(&mag, &ahead, ratio, (lo, hi), &mut h, &mut p);
            for k in 0..bins {
                let w = if (lo..hi).contains(&k) && mag[k] > 0.0 {
                    ((ahead[k] / mag[k] - ratio) / SUSTAIN_SOFT).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let want = (mask_h[k] + w * mask_p[k], mask_p[k] - w * mask_p[k]);
                assert!(
                    (h[k] - want.0).abs() <= 1e-6 && (p[k] - want.1).abs() <= 1e-6,
                    "bin {k} (ratio {ratio}): got ({}, {}), want {want:?}",
                    h[k],
                    p[k]
                );
                assert!(
                    (h[k] + p[k] - mask_h[k] - mask_p[k]).abs() <= 1e-6,
                    "bin {k}"
                );
            }
        }
        // A hit that has gone (nothing ahead) keeps its share; a held note loses all of it.
        assert_eq!(sustain_weight(1.0, 0.0, 0.5), 0.0);
        assert_eq!(sustain_weight(1.0, 0.9, 0.5), 1.0);
        assert_eq!(sustain_weight(0.0, 1.0, 0.5), 0.0);
    }

    #[test]
    fn melody_floor_unvoices_a_line_an_octave_under_its_median() {
        let mut rng = crate::rng::Rng::new(24);
        let ratio = ProductionSpec::default().resolve(48000, &StftParams::default());
        let ratio = ratio.melody_floor_ratio;
        assert!(
            (ratio - 0.5).abs() < 1e-6,
            "12 semitones: half the median, got {ratio}"
        );
        for case in 0..50 {
            let n = 1 + (rng.uniform() * 300.0) as usize;
            // Voiced frames between 100 and 1600 Hz (log-uniform), a third unvoiced.
            let lines: Vec<(f32, f32)> = (0..n)
                .map(|_| {
                    let f = if rng.uniform() < 0.33 {
                        0.0
                    } else {
                        100.0 * 16f32.powf(rng.uniform())
                    };
                    (rng.uniform() * 200.0, f)
                })
                .collect();
            // Naive reference: sort the voiced f0, take the upper median.
            let mut voiced: Vec<f32> = lines.iter().map(|l| l.1).filter(|&f| f > 0.0).collect();
            voiced.sort_by(f32::total_cmp);
            let want = voiced.get(voiced.len() / 2).map_or(0.0, |m| ratio * m);
            let floor = melody_floor(&lines, ratio);
            assert_eq!(floor, want, "case {case}: floor");
            let mut out = lines.clone();
            unvoice_below(&mut out, floor);
            for (j, (a, b)) in lines.iter().zip(&out).enumerate() {
                let keep = a.1 >= floor || a.1 == 0.0;
                let expect = if keep { *a } else { (a.0, 0.0) };
                assert_eq!(*b, expect, "case {case} frame {j}: floor {floor}");
            }
        }
        // Per segment: each segment's own floor, the last one returned.
        let lines: Vec<(f32, f32)> = (0..100).map(|j| (0.0, 100.0 + 13.0 * j as f32)).collect();
        let mut got = lines.clone();
        let last = apply_melody_floors(&mut got, 32, 0.5);
        let mut want = lines.clone();
        let mut floors = Vec::new();
        for seg in want.chunks_mut(32) {
            floors.push(melody_floor(seg, 0.5));
            unvoice_below(seg, *floors.last().unwrap());
        }
        assert_eq!(got, want);
        assert_eq!(last, floors.last().copied());
        assert_eq!(floors.len(), 4);
        assert_eq!(apply_melody_floors(&mut [], 32, 0.5), None);
        // No voiced frame: no floor, nothing changes.
        let mut quiet = vec![(55.0, 0.0); 8];
        assert_eq!(melody_floor(&quiet, 0.5), 0.0);
        unvoice_below(&mut quiet, 0.0);
        assert_eq!(quiet, vec![(55.0, 0.0); 8]);
    }

    #[test]
    fn mid_band_bins_hold_the_band() {
        // 48 kHz, n_fft 2048: 23.4375 Hz bins; 150 Hz lies in bin 6.4, 1000 Hz in bin 42.7.
        let p = ProductionSpec::default().resolve(48000, &StftParams::default());
        assert_eq!(p.mid_bins, (7, 43));
        assert_eq!(band_bins_between((0.0, 0.0), 23.4375, 1025), (0, 0));
        assert_eq!(band_bins_between((1000.0, 1e9), 23.4375, 1025), (43, 1025));
    }

    #[test]
    fn hpss_masks_banded_use_the_mid_margin_in_the_band_only() {
        let mut rng = crate::rng::Rng::new(21);
        let bins = 200;
        let harm: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let perc: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
        let hpss = crate::params::HpssParams {
            power: 4.0,
            margin_harmonic: 1.2,
            margin_percussive: 1.0,
            ..Default::default()
        };
        let mut p = ProductionParams::default();
        (p.mid_margin, p.mid_bins) = (1.0, (30, 90));
        let (mut mh, mut mp) = (vec![0.0; 150], vec![0.0; 150]);
        hpss_masks_banded(&harm, &perc, &hpss, &p, &mut mh, &mut mp);
        let mid = crate::params::HpssParams {
            margin_harmonic: 1.0,
            ..hpss
        };
        let (mut wh, mut wp) = (vec![0.0; bins], vec![0.0; bins]);
        let (mut oh, mut op) = (vec![0.0; bins], vec![0.0; bins]);
        crate::stages::mask::hpss_masks(&harm, &perc, &hpss, &mut wh, &mut wp);
        crate::stages::mask::hpss_masks(&harm, &perc, &mid, &mut oh, &mut op);
        for b in 0..150 {
            let (want_h, want_p) = if (30..90).contains(&b) {
                (oh[b], op[b])
            } else {
                (wh[b], wp[b])
            };
            assert_eq!((mh[b], mp[b]), (want_h, want_p), "bin {b}");
        }
        // The margins differ where it counts: the band's harmonic masks are larger, and in the
        // band harmonic plus percussive is 1 (no residual) at margins 1, 1.
        assert!(
            (30..90).all(|b| mh[b] > wh[b]),
            "the mid margin changed nothing"
        );
        assert!((30..90).all(|b| (mh[b] + mp[b] - 1.0).abs() < 1e-6));
    }

    #[test]
    fn window_lobe_follows_the_hann_windows_spectrum() {
        // The periodic Hann window's DTFT amplitude d bins off a partial, in f64, normalised to
        // the partial's own bin: the exact main lobe the comb's prediction stands for.
        let n = 2048;
        let w = crate::stages::frame::hann_periodic(n);
        let exact = |d: f64| {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (k, &x) in w.iter().enumerate() {
                let ph = -std::f64::consts::TAU * d * k as f64 / n as f64;
                re += x as f64 * ph.cos();
                im += x as f64 * ph.sin();
            }
            (re * re + im * im).sqrt() / w.iter().map(|&x| x as f64).sum::<f64>()
        };
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..=60 {
            let d = i as f64 / 20.0;
            let want = if d < 2.0 { exact(d) } else { 0.0 };
            let err = (window_lobe(d as f32) as f64 - want).abs();
            if err > worst.0 {
                worst = (err, d);
            }
        }
        assert!(
            worst.0 < 0.03,
            "window_lobe off by {} at {} bins",
            worst.0,
            worst.1
        );
        for d in [0.0f32, 1.0] {
            let e = (window_lobe(d) as f64 - exact(d as f64)).abs();
            assert!(e < 1e-3, "window_lobe({d}) off the exact lobe by {e}");
        }
    }

    #[test]
    fn tonal_weights_match_a_direct_mean() {
        // Random ratios (exact 0 and 1 included) and windows; every output frame against the
        // direct mean of its window's ratios inside the signal, in f64.
        let mut rng = crate::rng::Rng::new(5);
        let bins = 37;
        for case in 0..300 {
            let n_frames = 1 + (rng.uniform() * 90.0) as usize;
            let window = 1 + (rng.uniform() * 20.0) as usize;
            let first = (rng.uniform() * n_frames as f32) as usize % n_frames;
            let frames =
                1 + (rng.uniform() * (n_frames - first) as f32) as usize % (n_frames - first);
            let threshold = [0.0, 0.5, 0.85, 0.97][case % 4];
            let lo = first.saturating_sub(window);
            let hi = (first + frames + window).min(n_frames);
            let ratio_f: Vec<f32> = (0..(hi - lo) * bins)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => 1.0,
                    _ => rng.uniform(),
                })
                .collect();
            let mut q = vec![0u32; ratio_f.len()];
            tonal_ratio(&ratio_f, &vec![1.0; ratio_f.len()], &mut q);
            let mut out = vec![f32::NAN; frames * bins];
            tonal_weights(
                &q,
                lo,
                bins,
                n_frames,
                first,
                window,
                threshold,
                &mut out,
                &mut Vec::new(),
            );
            for j in 0..frames {
                let t = first + j;
                let (a, b) = (t.saturating_sub(window), (t + window + 1).min(n_frames));
                for k in 0..bins {
                    let mean = (a..b)
                        .map(|u| ratio_f[(u - lo) * bins + k] as f64)
                        .sum::<f64>()
                        / (b - a) as f64;
                    let want = ((mean - threshold as f64) / TONAL_SOFT as f64).clamp(0.0, 1.0);
                    let got = out[j * bins + k] as f64;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "case {case} frame {t} bin {k} (window {window}, {n_frames} frames): \
                         {got} vs direct {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn tonal_ratio_is_the_smaller_over_the_larger() {
        assert_eq!(tonal_ratio_q(0.0, 0.0), 0);
        assert_eq!(tonal_ratio_q(0.0, 2.0), 0);
        assert_eq!(tonal_ratio_q(3.0, 3.0), TONAL_ONE as u32);
        assert_eq!(tonal_ratio_q(1.0, 4.0), tonal_ratio_q(4.0, 1.0));
        assert_eq!(tonal_ratio_q(1.0, 4.0), (TONAL_ONE / 4.0) as u32);
    }

    #[test]
    fn the_melody_comb_holds_a_steady_tone_at_any_pitch() {
        // A Hann-windowed tone of 10 partials (1/h) at pitches from 110 Hz to 1.2 kHz, a third
        // of a bin off the grid: the melody comb's weights hold ≥ 0.85 of its energy (0.87-0.93
        // with the one-bin floor; without it, at 0.5 bins, 0.70 at 110 Hz), and less than the
        // old 1.5-bin window term's 0.94-0.97 (the flanks it no longer takes).
        use realfft::RealFftPlanner;
        let (rate, n) = (48000.0f32, 2048usize);
        let bin_hz = rate / n as f32;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        for f0 in [110.0f32, 165.0, 220.0, 440.0, 523.0, 1200.0] {
            let f0 = f0 + bin_hz / 3.0;
            let mut frame: Vec<f32> = (0..n)
                .map(|i| {
                    let t = i as f32 / rate;
                    let w = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
                    w * (1..=10)
                        .map(|h| (std::f32::consts::TAU * h as f32 * f0 * t).sin() / h as f32)
                        .sum::<f32>()
                })
                .collect();
            let mut spec = fft.make_output_vec();
            fft.process(&mut frame, &mut spec).unwrap();
            let power: Vec<f32> = spec.iter().map(|z| z.norm_sqr()).collect();
            let held = |lobe: f32, floor: f32| {
                let mut w = vec![0.0f32; power.len()];
                add_comb(&mut w, None, f0, 30, 0.0, 50.0, lobe, floor, bin_hz, None);
                let total: f32 = power.iter().sum();
                w.iter().zip(&power).map(|(w, p)| w * p).sum::<f32>() / total
            };
            let now = held(MELODY_LOBE_BINS, MELODY_MIN_SIGMA_BINS);
            let before = held(COMB_LOBE_BINS, 0.0);
            assert!(now >= 0.85, "{f0} Hz: the melody comb holds {now:.3}");
            assert!(
                now < before,
                "{f0} Hz: {now:.3} against {before:.3} at 1.5 bins"
            );
        }
    }

    #[test]
    fn tonal_ratio_rows_match_the_checked_conversion() {
        // The vectorised row (unchecked i32 conversion after a clamp) against the plain
        // `as u32` of the ratio, bit for bit: seeded random magnitudes over 12 decades, exact
        // ties, zeros, subnormals, infinities and NaN.
        let checked = |m: f32, h: f32| {
            let hi = m.max(h);
            let r = if hi > 0.0 { m.min(h) / hi } else { 0.0 };
            (r * TONAL_ONE + 0.5) as u32
        };
        let mut rng = crate::rng::Rng::new(17);
        let special = [
            0.0,
            f32::MIN_POSITIVE / 8.0,
            1.0,
            3.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut mag = Vec::new();
        let mut harm = Vec::new();
        for &a in &special {
            for &b in &special {
                mag.push(a);
                harm.push(b);
            }
        }
        for _ in 0..10_000 {
            let m = 10f32.powf(rng.uniform() * 12.0 - 9.0);
            let h = if rng.uniform() < 0.1 {
                m
            } else {
                10f32.powf(rng.uniform() * 12.0 - 9.0)
            };
            mag.push(m);
            harm.push(h);
        }
        let mut out = vec![0u32; mag.len()];
        tonal_ratio(&mag, &harm, &mut out);
        for (i, ((&m, &h), &got)) in mag.iter().zip(&harm).zip(&out).enumerate() {
            assert_eq!(got, checked(m, h), "bin {i}: m {m:e}, h {h:e}");
            assert_eq!(tonal_ratio_q(m, h), got, "bin {i}: scalar vs row");
        }
    }

    #[test]
    fn bass_comb_leaves_a_chord_tone_above_its_power_law() {
        // A bass at 65.4 Hz whose partials fall 12 dB per octave (a_h = h^−2), on one bin each,
        // and a chord tone 8 times its 4th partial sitting on that partial: partials 1-3 and 5-6
        // keep their whole bump, the 4th keeps only the share of the power law times
        // BASS_POWER_LAW_GROWTH (the growth bound alone, 2.5 × a_3, would have kept 14 times more).
        let (bins, bin_hz) = (1025, 1.0);
        let f0 = 65.0;
        let mut harm = vec![0.0f32; bins];
        for h in 1..=6 {
            let b = (h as f32 * f0) as usize;
            harm[b] = 1.0 / (h * h) as f32;
        }
        harm[260] += 8.0 / 16.0;
        let mut w = vec![0.0f32; bins];
        add_comb(
            &mut w,
            Some(&harm),
            f0,
            6,
            0.0,
            1.0,
            COMB_LOBE_BINS,
            0.0,
            bin_hz,
            None,
        );
        for h in [1usize, 2, 3, 5, 6] {
            let v = w[h * 65];
            assert!((v - 1.0).abs() < 1e-3, "partial {h}: weight {v}");
        }
        let model = BASS_POWER_LAW_GROWTH / 16.0;
        let want = (model / (9.0 / 16.0)).powi(2);
        assert!(
            (w[260] - want).abs() < 1e-3 * want,
            "partial 4 under a chord tone: weight {} vs {want}",
            w[260]
        );
    }

    #[test]
    fn clearing_a_line_keeps_a_melody_on_its_partial() {
        // The same bass (a_h = h^−2 on one bin each, 65 Hz on 1 Hz bins) with a melody's
        // fundamental, 8 times the bass's 6th partial, on that partial, and a neighbour bin on
        // each side of every partial: the bass's bins are cleared to 0, the melody's bin keeps its
        // excess over the envelope model (the power law: a_6 = 1.2 · 6^−2), bins farther than the
        // reach are untouched.
        let (bins, bin_hz, f0) = (1025, 1.0, 65.0);
        let mut mag = vec![0.0f32; bins];
        for h in 1..=8 {
            let b = h * 65;
            mag[b] = 1.0 / (h * h) as f32;
            mag[b - 1] = 0.5 * mag[b];
            mag[b + 1] = 0.5 * mag[b];
        }
        mag[390] += 8.0 / 36.0;
        mag[700] = 0.3; // far from every partial
        let before = mag.clone();
        clear_line(&mut mag, f0, 8, CLEAR_REACH_BINS, bin_hz);
        for h in 1..=8usize {
            for (b, &v) in mag.iter().enumerate().skip(h * 65 - 1).take(3) {
                if b != 390 {
                    assert_eq!(v, 0.0, "partial {h}, bin {b}: {v} left");
                }
            }
        }
        let model = BASS_POWER_LAW_GROWTH / 36.0;
        let want = before[390] - model;
        assert!(
            (mag[390] - want).abs() < 1e-6,
            "melody on partial 6: {} left, want {want}",
            mag[390]
        );
        assert_eq!(mag[700], 0.3);
        // The model of each partial is the comb's: the envelope fed a_1, a_2, … in order.
        let mut e = Envelope::default();
        let models: Vec<f32> = [1.0f32, 0.25, 1.0, 0.02]
            .iter()
            .map(|&a| e.next(a))
            .collect();
        assert_eq!(models[..2], [1.0, 0.25]);
        let law3 = BASS_POWER_LAW_GROWTH * 3f32.powf(-2.0);
        assert!((models[2] - law3).abs() < 1e-6, "{models:?}");
        assert_eq!(models[3], 0.02);
        // A bright bass (2nd partial twice the fundamental): the law is flat at the 2nd
        // partial's level, so a 3rd partial as strong as the 2nd stays whole, and a 4th that
        // leaps above it is held to the smaller bound: 1.2 × the flat law, under 2.5 × a_1.
        let mut e = Envelope::default();
        let models: Vec<f32> = [0.5f32, 1.0, 1.1, 3.0].iter().map(|&a| e.next(a)).collect();
        assert_eq!(models[..3], [0.5, 1.0, 1.1], "{models:?}");
        let cap4 = (BASS_ENVELOPE_GROWTH * 0.5).min(BASS_POWER_LAW_GROWTH * 1.0);
        assert!((models[3] - cap4).abs() < 1e-6, "{models:?} vs {cap4}");
    }

    /// Frames of a bass line for [`bass_profile`]: notes of `note` frames cycling through four
    /// f0s, each partial `h` at `rho[h − 1] · env(t)` on its nearest bin, `gap` unvoiced frames
    /// between notes; plus `chord` (bin, level) held at every frame. Returns (f0, magnitudes).
    fn bass_frames(
        rho: &[f32; PROFILE_PARTIALS],
        note: usize,
        gap: usize,
        env: impl Fn(usize) -> f32,
        chord: Option<(usize, f32)>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (bins, bin_hz) = (1025, 48000.0 / 2048.0);
        let f0s = [55.0f32, 65.4, 82.4, 49.0];
        let (mut f0, mut mag) = (Vec::new(), Vec::new());
        for i in 0..12 {
            for t in 0..note + gap {
                let mut row = vec![0.0f32; bins];
                if let Some((b, level)) = chord {
                    row[b] += level;
                }
                let f = if t < note { f0s[i % 4] } else { 0.0 };
                if f > 0.0 {
                    for (h, r) in rho.iter().enumerate() {
                        let k = ((h + 1) as f32 * f / bin_hz).round() as usize;
                        row[k] += r * env(t);
                    }
                }
                f0.push(f);
                mag.extend(row);
            }
        }
        (f0, mag)
    }

    /// `p` is `rho` with the upper partials' bound ([`PROFILE_UPPER_EXPONENT`]) and
    /// [`PROFILE_SCALE`] applied, to 1e-5.
    fn assert_profile_is(p: &BassProfile, rho: &[f32; PROFILE_PARTIALS]) {
        // From the 2nd partial, or from the 3rd where it is the peak (BASS_THIRD_PEAK).
        let top2 = rho[1].max(1.0);
        let (top, origin) = if rho[2] >= BASS_THIRD_PEAK * top2 {
            (top2.max(rho[2]), 3.0)
        } else {
            (top2, 2.0)
        };
        let mut bound = false;
        for h in 2..=PROFILE_PARTIALS {
            let mut want = rho[h - 1];
            if h >= 4 {
                let cap =
                    BASS_POWER_LAW_GROWTH * top * (h as f32 - origin).powf(-PROFILE_UPPER_EXPONENT);
                bound |= cap < want;
                want = want.min(cap);
            }
            let got = p[h - 1] / PROFILE_SCALE;
            assert!(
                (got - want).abs() <= 1e-5 * want.max(1.0),
                "partial {h}: got {got}, want {want} (profile {p:?})"
            );
        }
        assert!(
            bound,
            "the upper partials' bound binds on some partial of {rho:?}"
        );
    }

    fn profile_of(f0: &[f32], mag: &[f32]) -> BassProfile {
        profile_with_rests(f0, mag, (0, 0.0))
    }

    /// [`bass_profile`] at 48 kHz / 2048 with a floor of 23 frames, the magnitude standing for
    /// the harmonic estimate too.
    fn profile_with_rests(f0: &[f32], mag: &[f32], rest: (usize, f32)) -> BassProfile {
        let (bins, bin_hz) = (1025, 48000.0 / 2048.0);
        let at = |j: usize, k: usize| mag[j * bins + k];
        bass_profile(f0, at, at, bins, bin_hz, 23, rest)
    }

    #[test]
    fn profile_rests_flag_voiced_frames_far_under_their_neighbours() {
        // One bin per frame's f0 (bin 2 at 48 kHz / 2048): x = 1, 0.1, 0.5, 0.01, unvoiced, 0.02.
        let bin_hz = 48000.0 / 2048.0;
        let f = 2.0 * bin_hz;
        let f0 = [f, f, f, f, 0.0, f];
        let x = [1.0f32, 0.1, 0.5, 0.01, 7.0, 0.02];
        let harm = |j: usize, k: usize| {
            assert_eq!(k, 2, "frame {j}: the line's bin");
            x[j]
        };
        let ratio = 10f32.powf(-15.0 / 20.0);
        // ±1 frame: 0.1 under 1 (rest), 0.5 over 0.178 · 0.5, 0.01 under 0.178 · 0.5 (rest), the
        // unvoiced frame never (and it counts 0, not 7), 0.02 alone in its span.
        let got = profile_rests(&f0, harm, bin_hz, 1, ratio);
        assert_eq!(got, [false, true, false, true, false, false]);
        // ±3 frames: 0.5 now sees 1 (0.5 ≥ 0.178), 0.02 sees 0.5 (rest).
        let got = profile_rests(&f0, harm, bin_hz, 3, ratio);
        assert_eq!(got, [false, true, false, true, false, true]);
        assert_eq!(profile_rests(&f0, harm, bin_hz, 3, 0.0), [false; 6]);
    }

    #[test]
    fn bass_profile_leaves_the_rests_out() {
        // Notes of 20 frames (the known profile, decaying); after each, the line held for 30
        // frames on the note's f0 where the bass is gone (its fundamental at 1e-3) and a chord
        // tone of 0.5 sits on the bin of its 2nd partial; 2 unvoiced frames around them. The
        // rests are 60 % of the voiced frames: with them the 2nd partial's median ratio is 500,
        // without them the profile is the notes' own.
        // The 4th partial (0.6) stands above its bound (1.2 · 1.6 · 2^−2 = 0.48).
        let rho = [1.0, 1.6, 0.5, 0.6, 0.2, 0.05, 0.02, 0.01];
        let (bins, bin_hz) = (1025, 48000.0 / 2048.0);
        let (mut f0, mut mag) = (Vec::new(), Vec::new());
        for (i, f) in [55.0f32, 65.4, 82.4, 49.0]
            .repeat(3)
            .into_iter()
            .enumerate()
        {
            let bin = |h: usize| (h as f32 * f / bin_hz).round() as usize;
            for t in 0..54 {
                let mut row = vec![0.0f32; bins];
                let voiced = match t {
                    0..20 => {
                        for (h, r) in rho.iter().enumerate() {
                            row[bin(h + 1)] += r * 0.9f32.powi(t + (i % 2) as i32);
                        }
                        true
                    }
                    22..52 => {
                        row[bin(1)] = 1e-3;
                        row[bin(2)] = 0.5;
                        true
                    }
                    _ => false,
                };
                f0.push(if voiced { f } else { 0.0 });
                mag.extend(row);
            }
        }
        let with = profile_of(&f0, &mag);
        assert!(
            with[1] > 100.0,
            "the rests' ratios rule the median: {with:?}"
        );
        let p = profile_with_rests(&f0, &mag, (94, 10f32.powf(-15.0 / 20.0)));
        assert_profile_is(&p, &rho);
    }

    /// The profile of 20-frame notes of `rho` decaying by 0.9 a frame, 4 unvoiced frames apart.
    fn short_notes_profile(rho: &[f32; PROFILE_PARTIALS]) -> BassProfile {
        let (f0, mag) = bass_frames(rho, 20, 4, |t| 0.9f32.powi(t as i32), None);
        profile_of(&f0, &mag)
    }

    #[test]
    fn bass_profile_recovers_a_known_profile() {
        // Short notes between rests: every voiced frame's floor window reaches a rest (a = 0),
        // so E_h = a_h and the ratios are the profile itself, whatever the decay.
        let rho = [1.0, 1.6, 0.5, 0.6, 0.2, 0.05, 0.02, 0.01];
        let p = short_notes_profile(&rho);
        assert!(p[0] < 0.0, "no cap on the fundamental: {p:?}");
        assert_profile_is(&p, &rho);
    }

    #[test]
    fn bass_profile_bounds_a_third_partial_peak_from_the_third() {
        // A bright bass, partials 2 to 4 above its fundamental: the 3rd reaches 0.8 of the 2nd,
        // so the bound runs 1.2 · 1.6 · (h − 3)^−2 and keeps the 4th partial whole (from the
        // 2nd it would have been held to 1.2 · 1.6 / 4 = 0.48), and binds on the 5th.
        let rho = [1.0, 1.6, 1.5, 1.2, 0.6, 0.2, 0.1, 0.05];
        let p = short_notes_profile(&rho);
        assert_profile_is(&p, &rho);
        let fourth = p[3] / PROFILE_SCALE;
        assert!((fourth - 1.2).abs() < 1e-5, "4th partial {fourth}: {p:?}");
    }

    #[test]
    fn bass_profile_leaves_a_held_chord_tone_in_the_floor() {
        // Long decaying notes without rests; a chord tone held on the bin of the first note's
        // 3rd partial, twice as loud as the bass's partial there. The floor takes it out: the
        // profile barely moves (what the envelope model alone cannot tell apart).
        let rho = [1.0, 0.8, 0.4, 0.2, 0.1, 0.05, 0.02, 0.01];
        let env = |t: usize| 0.95f32.powi(t as i32);
        let (f0, plain) = bass_frames(&rho, 60, 0, env, None);
        let bin = (3.0f32 * 55.0 / (48000.0 / 2048.0)).round() as usize;
        let (_, chord) = bass_frames(&rho, 60, 0, env, Some((bin, 0.8)));
        let (a, b) = (profile_of(&f0, &plain), profile_of(&f0, &chord));
        for h in 2..=4 {
            assert!(a[h - 1] > 0.0, "partial {h}: no profile {a:?}");
            assert!(
                (b[h - 1] / a[h - 1] - 1.0).abs() < 0.05,
                "partial {h}: {} with the chord tone, {} without",
                b[h - 1],
                a[h - 1]
            );
        }
    }

    #[test]
    fn a_held_bass_or_silence_has_no_profile() {
        let rho = [1.0, 0.8, 0.4, 0.2, 0.1, 0.05, 0.02, 0.01];
        // A synth bass held at one level through notes of 60 frames: nothing comes and goes.
        let (f0, mag) = bass_frames(&rho, 60, 0, |_| 0.5, None);
        assert_eq!(profile_of(&f0, &mag), NO_PROFILE);
        let silent = vec![0.0f32; 100 * 1025];
        assert_eq!(profile_of(&[0.0; 100], &silent), NO_PROFILE);
        assert_eq!(profile_of(&[55.0; 100], &silent), NO_PROFILE);
    }

    #[test]
    fn the_profile_caps_the_comb_and_splits_amplitudes() {
        // One partial (h = 3 at 165 Hz) whose harmonic magnitude is 1 where the envelope
        // model allows 1 (a flat bass, partials 1 and 2 also at 1): without a profile the bass
        // takes it whole; with c_3 = 0.4 the cap is 0.4 and the share 0.16 / (0.16 + 0.36).
        let (bins, bin_hz) = (1025, 48000.0 / 2048.0);
        let f0 = 55.0;
        let mut harm = vec![0.0f32; bins];
        for h in 1..=3 {
            let k = (h as f32 * f0 / bin_hz).floor() as usize;
            harm[k] = 1.0;
            harm[k + 1] = 1.0;
        }
        let k3 = (3.0 * f0 / bin_hz).round() as usize;
        let centre_bump = |w: &[f32]| w[k3];
        let mut plain = vec![0.0f32; bins];
        add_comb(
            &mut plain,
            Some(&harm),
            f0,
            3,
            0.0,
            50.0,
            COMB_LOBE_BINS,
            0.0,
            bin_hz,
            None,
        );
        let mut profile = NO_PROFILE;
        profile[2] = 0.4;
        let mut capped = vec![0.0f32; bins];
        add_comb(
            &mut capped,
            Some(&harm),
            f0,
            3,
            0.0,
            50.0,
            COMB_LOBE_BINS,
            0.0,
            bin_hz,
            Some(&profile),
        );
        let bump = plain[k3];
        assert!(bump > 0.5, "the bump at the partial's bin: {bump}");
        let want = bump * 0.16 / (0.16 + 0.36);
        assert!(
            (centre_bump(&capped) - want).abs() < 1e-6,
            "capped {} want {want}",
            capped[k3]
        );
        // Partials 1 and 2 (below PROFILE_MIN_HZ, or without a ratio) keep their weights.
        for k in 0..k3 - 3 {
            assert_eq!(capped[k], plain[k], "bin {k}");
        }
    }

    #[test]
    fn the_comb_envelope_bounds_a_bright_bass_upper_partials() {
        // The bright bass above (2nd partial twice the fundamental, flat law at α = 0) with
        // strong 4th to 6th partials (chord tones on them): the comb's model holds partial h ≥ 4
        // to 1.2 · max(m_1, m_2) · (h − 2)^−2, below the flat law and the growth bound; the first
        // three partials are as the plain model has them, and a steep bass (a_h = h^−2, whose
        // own law is lower) is unchanged. With its 3rd partial at 1.1 (≥ 0.8 of the 2nd: the
        // peak) the bound is 1.2 · 1.1 · (h − 3)^−2: the 4th partial keeps the plain model.
        for (third, origin, top) in [(0.7f32, 2usize, 1.0f32), (1.1, 3, 1.1)] {
            let a = [0.5f32, 1.0, third, 3.0, 3.0, 3.0];
            let (mut plain, mut comb) = (Envelope::default(), Envelope::comb());
            let plain: Vec<f32> = a.iter().map(|&v| plain.next(v)).collect();
            let comb: Vec<f32> = a.iter().map(|&v| comb.next(v)).collect();
            assert_eq!(comb[..3], plain[..3], "{comb:?} vs {plain:?}");
            for h in 4..=6usize {
                let upper =
                    BASS_POWER_LAW_GROWTH * top * ((h - origin) as f32).powf(-BASS_UPPER_EXPONENT);
                let want = plain[h - 1].min(upper);
                assert_eq!(
                    upper < plain[h - 1],
                    h > origin + 1,
                    "3rd partial {third}, partial {h}: the bound bites from partial {}",
                    origin + 2
                );
                assert!(
                    (comb[h - 1] - want).abs() < 1e-6,
                    "3rd partial {third}, partial {h}: {comb:?}, want {want}"
                );
            }
        }
        let steep: Vec<f32> = (1..=8).map(|h| 1.0 / (h * h) as f32).collect();
        let (mut plain, mut comb) = (Envelope::default(), Envelope::comb());
        for (h, &v) in steep.iter().enumerate() {
            assert_eq!(plain.next(v), comb.next(v), "steep bass, partial {}", h + 1);
        }
    }

    #[test]
    fn freq_median_at_is_the_stage_median() {
        let mut rng = crate::rng::Rng::new(31);
        let mut window = Vec::new();
        for (bins, k) in [(1025usize, 17usize), (513, 16), (33, 31), (9, 25)] {
            let row: Vec<f32> = (0..bins).map(|_| rng.uniform()).collect();
            let mut want = vec![0.0; bins];
            crate::stages::median::median_freq(
                &row,
                bins,
                k,
                &mut want,
                &mut crate::stages::median::MedianScratch::default(),
            );
            for (b, &w) in want.iter().enumerate() {
                let got = freq_median_at(&row, b, k, &mut window);
                assert_eq!(got, w, "bins {bins}, k {k}: first difference at bin {b}");
            }
        }
    }

    #[test]
    fn drum_tail_holds_a_decay_and_leaves_a_bass_partial() {
        let rho = 0.8f32;
        // A kick 1.0 two frames back, now ringing at 0.7 with its frequency median 0.1: held
        // up to min(0.8² · 1.0, 0.7) = 0.64.
        let prev = [Some(0.2), Some(1.0), None];
        let held = drum_tail(0.1, 0.7, prev.into_iter(), rho, 0.0);
        assert!((held - 0.64).abs() < 1e-6, "held {held}");
        // Never above the bin's magnitude.
        let capped = drum_tail(0.1, 0.3, prev.into_iter(), rho, 0.0);
        assert!((capped - 0.3).abs() < 1e-6, "capped {capped}");
        // On the bass line's partial (comb 1) the estimate stays; half-way, half the gain.
        assert_eq!(drum_tail(0.1, 0.7, prev.into_iter(), rho, 1.0), 0.1);
        let half = drum_tail(0.1, 0.7, prev.into_iter(), rho, 0.5);
        assert!((half - 0.37).abs() < 1e-6, "half {half}");
        // Frames before the signal (None) count for nothing; a louder estimate now stays.
        assert_eq!(drum_tail(0.1, 0.7, [None, None].into_iter(), rho, 0.0), 0.1);
        assert_eq!(drum_tail(0.9, 1.0, prev.into_iter(), rho, 0.0), 0.9);
    }

    #[test]
    fn steady_grid_reads_within_its_halo() {
        // Every output frame reads its nearest grid point; every point the medians read lies
        // within the halo of the output frames (away from the ends, where nothing reflects).
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..2000 {
            let kernel = 1 + 2 * (rng.uniform() * 20.0) as usize;
            let start = 200 + (rng.uniform() * 1000.0) as usize;
            let end = start + 1 + (rng.uniform() * 300.0) as usize;
            let g = SteadyGrid::new(start, end, 1_000_000, kernel);
            let (before, after) = SteadyGrid::halo(kernel);
            assert!(
                STEADY_STEP * g.lo >= start - before,
                "{start}..{end} k {kernel}: {g:?}"
            );
            assert!(
                STEADY_STEP * (g.hi - 1) < end + after,
                "{start}..{end} k {kernel}: {g:?}"
            );
            for t in start..end {
                let point = g.first + g.row(t);
                assert!(point < g.first + g.rows);
                assert!((STEADY_STEP * point).abs_diff(t) <= STEADY_STEP / 2);
            }
        }
        // The end of the signal: the last frames read the last point.
        let g = SteadyGrid::new(95, 99, 99, 5);
        assert_eq!((g.n_points, g.first + g.row(98)), (25, 24));
    }
}
