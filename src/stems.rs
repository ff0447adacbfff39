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
}

impl Stem {
    /// The name used in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stem::Harmonic => "harmonic",
            Stem::Percussive => "percussive",
            Stem::Residual => "residual",
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
}

impl StemSet {
    /// Parses `--stems`; `hpr` is the harmonic/percussive/residual split.
    pub fn parse(text: &str, hpss: &HpssParams) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "hpr" | "hpss" => Ok(StemSet::Hpr {
                residual: hpss.has_residual(),
            }),
            other => Err(Error::param(
                "--stems",
                format!("expected hpr, got {other:?}"),
            )),
        }
    }

    /// The stems in output order.
    pub fn stems(&self) -> Vec<Stem> {
        match self {
            StemSet::Hpr { residual: true } => {
                vec![Stem::Harmonic, Stem::Percussive, Stem::Residual]
            }
            StemSet::Hpr { residual: false } => vec![Stem::Harmonic, Stem::Percussive],
        }
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
