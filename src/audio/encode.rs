//! WAV encoding (hound): 16-bit TPDF-dithered, 24-bit, or 32-bit float. Each file is written to a
//! temporary sibling and renamed into place only when complete, so a killed run never leaves a
//! half-written file under a final name.

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Output sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// 16-bit PCM with TPDF dither.
    Int16,
    /// 24-bit PCM (the broadcast session default).
    Int24,
    /// 32-bit IEEE float.
    Float32,
}

impl SampleFormat {
    /// The label used in file names: `16b`, `24b`, `32f`.
    pub fn label(self) -> &'static str {
        match self {
            SampleFormat::Int16 => "16b",
            SampleFormat::Int24 => "24b",
            SampleFormat::Float32 => "32f",
        }
    }

    /// Parses `--bits`: `16`, `24` or `32f` (also `16b`, `24b`, `32float`).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "16" | "16b" => Ok(SampleFormat::Int16),
            "24" | "24b" => Ok(SampleFormat::Int24),
            "32f" | "32float" | "f32" => Ok(SampleFormat::Float32),
            _ => Err(Error::param(
                "--bits",
                format!("expected 16, 24 or 32f, got {text:?}"),
            )),
        }
    }

    /// Largest magnitude an integer format stores without clipping; `None` for float.
    pub fn max_amplitude(self) -> Option<f32> {
        match self {
            SampleFormat::Int16 => Some(32767.0 / 32768.0),
            SampleFormat::Int24 => Some(8_388_607.0 / 8_388_608.0),
            SampleFormat::Float32 => None,
        }
    }

    /// Bits per sample.
    pub fn bits(self) -> u16 {
        match self {
            SampleFormat::Int16 => 16,
            SampleFormat::Int24 => 24,
            SampleFormat::Float32 => 32,
        }
    }
}

/// A WAV file being written under a temporary name.
pub struct WavSink {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    temp: PathBuf,
    final_path: PathBuf,
    format: SampleFormat,
    channels: usize,
    frames: u64,
    dither: Rng,
}

impl WavSink {
    /// Starts `final_path` as `.{name}.partial` in the same folder (never overwriting anything).
    /// `dither_seed` seeds the 16-bit TPDF dither, so output is reproducible.
    pub fn create(
        final_path: &Path,
        sample_rate: u32,
        channels: usize,
        format: SampleFormat,
        dither_seed: u64,
    ) -> Result<Self> {
        let name = final_path.file_name().ok_or_else(|| Error::UnsafeOutput {
            path: final_path.to_path_buf(),
            reason: "no file name".into(),
        })?;
        let temp = final_path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&temp, e))?;
        let spec = hound::WavSpec {
            channels: channels as u16,
            sample_rate,
            bits_per_sample: format.bits(),
            sample_format: if format == SampleFormat::Float32 {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let writer =
            hound::WavWriter::new(BufWriter::with_capacity(1 << 20, file), spec).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                hound_io(&temp, e)
            })?;
        Ok(WavSink {
            writer: Some(writer),
            temp,
            final_path: final_path.to_path_buf(),
            format,
            channels,
            frames: 0,
            dither: Rng::new(dither_seed),
        })
    }

    /// Writes planar samples (all channels the same length). 24-bit rounds to nearest, 16-bit
    /// adds TPDF dither (±1 LSB triangular) then rounds; both clamp to the integer range. Each
    /// sample in `planar` is replaced by the value a reader decodes back, so callers can measure
    /// the null residual at the output depth.
    pub fn write(&mut self, planar: &mut [Vec<f32>]) -> Result<()> {
        assert_eq!(planar.len(), self.channels, "channel count");
        let n = planar.first().map_or(0, Vec::len);
        let w = self.writer.as_mut().expect("writer present until finish");
        let err = |e| hound_io(&self.temp, e);
        match self.format {
            SampleFormat::Float32 => {
                for i in 0..n {
                    for ch in planar.iter() {
                        w.write_sample(ch[i]).map_err(err)?;
                    }
                }
            }
            SampleFormat::Int24 => {
                const SCALE: f32 = 8_388_608.0;
                for i in 0..n {
                    for ch in planar.iter_mut() {
                        let q = (ch[i] * SCALE).round().clamp(-SCALE, SCALE - 1.0);
                        w.write_sample(q as i32).map_err(err)?;
                        ch[i] = q / SCALE;
                    }
                }
            }
            SampleFormat::Int16 => {
                const SCALE: f32 = 32_768.0;
                for i in 0..n {
                    for ch in planar.iter_mut() {
                        let tpdf = self.dither.uniform() + self.dither.uniform() - 1.0;
                        let q = (ch[i] * SCALE + tpdf).round().clamp(-SCALE, SCALE - 1.0);
                        w.write_sample(q as i16).map_err(err)?;
                        ch[i] = q / SCALE;
                    }
                }
            }
        }
        self.frames += n as u64;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Completes the header, syncs, and renames into place. With `overwrite` false an existing
    /// file at the final path is refused.
    pub fn finish(mut self, overwrite: bool) -> Result<PathBuf> {
        let writer = self.writer.take().expect("writer present until finish");
        writer.finalize().map_err(|e| hound_io(&self.temp, e))?;
        File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&self.temp, e))?;
        if !overwrite && self.final_path.exists() {
            return Err(Error::UnsafeOutput {
                path: self.final_path.clone(),
                reason: "already exists".into(),
            });
        }
        std::fs::rename(&self.temp, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, e))?;
        Ok(self.final_path.clone())
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // Unfinished (an error, or a panic): the temporary file goes; the final name never existed.
        if self.temp.exists() {
            self.writer.take();
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn hound_io(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::io(path, io),
        other => Error::io(path, std::io::Error::other(other.to_string())),
    }
}

/// Writes a whole planar buffer to `path` (through a temporary file).
pub fn write_wav(
    path: &Path,
    planar: &[Vec<f32>],
    sample_rate: u32,
    format: SampleFormat,
) -> Result<()> {
    let mut sink = WavSink::create(path, sample_rate, planar.len(), format, 0)?;
    let mut copy = planar.to_vec();
    sink.write(&mut copy)?;
    sink.finish(true)?;
    Ok(())
}
