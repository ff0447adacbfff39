//! The stems stemkit delivers, and how their masks partition the spectrum.
//!
//! Every stem is a mask on the STFT and the masks of a set sum to one at every bin (the last
//! stem of a set takes `X − Σ others`), so the stems of a set always sum back to the master.

use crate::error::{Error, Result};
use crate::params::HpssParams;

/// One stem: what a delivered file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stem {
    /// Sustained, pitched content (HPSS harmonic part).
    Harmonic,
    /// Transients (HPSS percussive part).
    Percussive,
    /// What is neither (X − H − P), non-silent only with a margin above 1 or hard masks.
    Residual,
    /// Drums and percussion: the percussive part.
    Drums,
    /// The bass line: harmonic energy of the low register along the bass line's partials.
    Bass,
    /// The predominant pitched line (lead instrument or vocal).
    Melody,
    /// Harmony and pads: the harmonic part that is neither bass nor melody.
    Harmony,
    /// FX and atmosphere: what is neither harmonic nor percussive (noise, risers, tails).
    Fx,
    /// Everything the stems asked for do not hold.
    Rest,
}

/// The production stems in delivery order.
pub const PRODUCTION: [Stem; 5] = [
    Stem::Drums,
    Stem::Bass,
    Stem::Melody,
    Stem::Harmony,
    Stem::Fx,
];

/// `--stems` default of the command line: the five production stems.
pub const DEFAULT_STEMS: &str = "drums,bass,melody,harmony,fx";

impl Stem {
    /// The name used in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stem::Harmonic => "harmonic",
            Stem::Percussive => "percussive",
            Stem::Residual => "residual",
            Stem::Drums => "drums",
            Stem::Bass => "bass",
            Stem::Melody => "melody",
            Stem::Harmony => "harmony",
            Stem::Fx => "fx",
            Stem::Rest => "rest",
        }
    }
}

/// A set of stems that partitions the spectrum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StemSet {
    /// Harmonic, percussive and, when it can carry energy, the residual (`--stems hpr`).
    Hpr {
        /// Whether the residual is produced (margin > 1 or hard masks).
        residual: bool,
    },
    /// Production stems (drums, bass, melody, harmony, fx, in that order, any subset), and
    /// `rest` when a subset leaves something out and `--no-rest` was not given.
    Production {
        /// The stems, in delivery order.
        stems: Vec<Stem>,
    },
}

impl StemSet {
    /// Parses `--stems`: `hpr`, or a comma-separated subset of `drums,bass,melody,harmony,fx`
    /// (a subset gets a `rest` stem with everything else unless `no_rest`).
    pub fn parse(text: &str, hpss: &HpssParams, no_rest: bool) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        if t == "hpr" || t == "hpss" {
            return Ok(StemSet::Hpr {
                residual: hpss.has_residual(),
            });
        }
        let mut asked = Vec::new();
        let mut rest = false;
        for word in t.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match PRODUCTION.iter().find(|s| s.name() == word) {
                Some(s) if !asked.contains(s) => asked.push(*s),
                Some(_) => {}
                None if word == "rest" => rest = true,
                None => {
                    return Err(Error::param(
                        "--stems",
                        format!("expected hpr or a list of drums, bass, melody, harmony, fx (and rest), got {word:?}"),
                    ))
                }
            }
        }
        if asked.is_empty() {
            return Err(Error::param(
                "--stems",
                "name at least one of drums, bass, melody, harmony, fx",
            ));
        }
        let mut stems: Vec<Stem> = PRODUCTION
            .iter()
            .copied()
            .filter(|s| asked.contains(s))
            .collect();
        if stems.len() < PRODUCTION.len() && (rest || !no_rest) {
            stems.push(Stem::Rest);
        }
        if stems.len() < 2 {
            return Err(Error::param(
                "--stems",
                "one stem alone is the master: ask for two or more, or leave out --no-rest",
            ));
        }
        Ok(StemSet::Production { stems })
    }

    /// The stems in output order.
    pub fn stems(&self) -> Vec<Stem> {
        match self {
            StemSet::Hpr { residual: true } => {
                vec![Stem::Harmonic, Stem::Percussive, Stem::Residual]
            }
            StemSet::Hpr { residual: false } => vec![Stem::Harmonic, Stem::Percussive],
            StemSet::Production { stems } => stems.clone(),
        }
    }

    /// Whether the last stem is everything the others leave (taken in the time domain, so the
    /// set sums to the master exactly). False only for a production subset with `--no-rest`.
    pub fn last_is_remainder(&self) -> bool {
        match self {
            StemSet::Hpr { .. } => true,
            StemSet::Production { stems } => {
                stems.last() == Some(&Stem::Rest) || stems.len() == PRODUCTION.len()
            }
        }
    }

    /// Whether the set needs the pitch lines: every production set does (bass, melody and
    /// harmony are split by them, and the drum tail, which drums and fx share, leaves the bass
    /// line's partials alone).
    pub fn needs_lines(&self) -> bool {
        matches!(self, StemSet::Production { .. })
    }

    /// Stems that get an inverse STFT of their own (all but a remainder).
    pub fn inverted(&self) -> usize {
        self.len() - usize::from(self.last_is_remainder())
    }

    /// Number of stems.
    pub fn len(&self) -> usize {
        self.stems().len()
    }

    /// Always false: a set has at least two stems.
    pub fn is_empty(&self) -> bool {
        false
    }
}
