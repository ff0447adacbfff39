//! WAV encoding (hound): 16-bit TPDF-dithered, 24-bit, or 32-bit float. Each file is written to a
//! temporary sibling and renamed into place only when complete, so a killed run never leaves a
//! half-written file under a final name.

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
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

/// A WAV file being written under a temporary name. The RIFF header is written here (PCM for
/// 16-bit mono/stereo, `WAVE_FORMAT_EXTENSIBLE` otherwise, as hound does) and samples are packed
/// in bulk: hound's per-sample writer was the slowest part of delivery.
pub struct WavSink {
    /// Written unbuffered: samples come in pieces of [`ENCODE_FRAMES`], each one `write`.
    file: Option<File>,
    temp: PathBuf,
    final_path: PathBuf,
    format: SampleFormat,
    channels: usize,
    frames: u64,
    data_start: u64,
    dither: Rng,
    bytes: Vec<u8>,
    /// The chunk's quantised samples (24-bit), `[channel][frame]`.
    quantised: Vec<i32>,
    /// Bytes handed to the kernel, and how far its write-out has been started.
    written: u64,
    flushed: u64,
}

/// Start the disk write-out of every this many bytes as they are written, so the final sync
/// waits for little: the disk works while the CPU separates.
const WRITE_BEHIND: u64 = 8 << 20;

/// Frames encoded at a time by [`WavSink::write`].
const ENCODE_FRAMES: usize = 16 << 10;

/// Speaker masks for common layouts (mono = centre, stereo = L R, 5.1 = L R C LFE Ls Rs).
fn channel_mask(channels: usize) -> u32 {
    match channels {
        1 => 0x4,
        2 => 0x3,
        4 => 0x33,
        6 => 0x3F,
        8 => 0x63F,
        _ => 0,
    }
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
        let open = || OpenOptions::new().write(true).create_new(true).open(&temp);
        let file = match open() {
            // A leftover of a run that was killed (no cleanup runs on SIGKILL): replace it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&temp);
                open()
            }
            other => other,
        }
        .map_err(|e| Error::io(&temp, e))?;
        let mut sink = WavSink {
            file: Some(file),
            temp,
            final_path: final_path.to_path_buf(),
            format,
            channels,
            frames: 0,
            data_start: 0,
            dither: Rng::new(dither_seed),
            bytes: Vec::new(),
            quantised: Vec::new(),
            written: 0,
            flushed: 0,
        };
        let header = wav_header(sample_rate, channels, format);
        sink.data_start = header.len() as u64;
        sink.put(&header)?;
        Ok(sink)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let f = self.file.as_mut().expect("file present until finish");
        f.write_all(bytes).map_err(|e| Error::io(&self.temp, e))?;
        self.written += bytes.len() as u64;
        if self.written - self.flushed >= WRITE_BEHIND {
            start_write_out(f, self.flushed, self.written);
            self.flushed = self.written;
        }
        Ok(())
    }

    /// Writes planar samples (all channels the same length). 24-bit rounds to nearest, 16-bit
    /// adds TPDF dither (±1 LSB triangular) then rounds; both clamp to the integer range. Each
    /// sample in `planar` is replaced by the value a reader decodes back, so callers can measure
    /// the null residual at the output depth.
    pub fn write(&mut self, planar: &mut [Vec<f32>]) -> Result<()> {
        assert_eq!(planar.len(), self.channels, "channel count");
        let n = planar.first().map_or(0, Vec::len);
        assert!(planar.iter().all(|c| c.len() == n), "channel lengths");
        // In pieces: the work buffers stay small and in cache (a whole block of a stereo stem
        // would be megabytes per buffer, per stem, touched once).
        let mut at = 0;
        while at < n {
            let end = (at + ENCODE_FRAMES).min(n);
            self.write_frames(planar, at..end)?;
            at = end;
        }
        Ok(())
    }

    /// [`WavSink::write`] of frames `range` of `planar`.
    fn write_frames(
        &mut self,
        planar: &mut [Vec<f32>],
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let n = range.len();
        let mut bytes = std::mem::take(&mut self.bytes);
        let width = (self.format.bits() / 8) as usize;
        let len = n * self.channels * width;
        let stride = self.channels * width;
        match self.format {
            SampleFormat::Float32 => {
                bytes.clear();
                bytes.resize(len, 0);
                for (c, ch) in planar.iter().enumerate() {
                    for (frame, &v) in bytes.chunks_exact_mut(stride).zip(&ch[range.clone()]) {
                        frame[c * 4..c * 4 + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            SampleFormat::Int24 => {
                // Every channel quantised (`[channel][frame]`), then interleaved frame by frame:
                // each sample is stored as 4 little-endian bytes, whose top byte the next
                // sample overwrites (one byte of slack past the end).
                let q = &mut self.quantised;
                q.resize(n * self.channels, 0);
                for (ch, q) in planar.iter_mut().zip(q.chunks_exact_mut(n.max(1))) {
                    quantise_24(&mut ch[range.clone()], q);
                }
                bytes.resize(len + 1, 0);
                let base = bytes.as_mut_ptr();
                if self.channels == 2 {
                    let (l, r) = q.split_at(n);
                    for (f, (&a, &b)) in l.iter().zip(r).enumerate() {
                        // SAFETY: frame `f` is bytes 6f .. 6f + 6 ≤ len; the second write
                        // reaches byte 6f + 7 ≤ len + 1, inside the buffer; unaligned writes.
                        unsafe {
                            base.add(6 * f)
                                .cast::<[u8; 4]>()
                                .write_unaligned(a.to_le_bytes());
                            base.add(6 * f + 3)
                                .cast::<[u8; 4]>()
                                .write_unaligned(b.to_le_bytes());
                        }
                    }
                } else {
                    let mut i = 0;
                    for f in 0..n {
                        for c in 0..self.channels {
                            // SAFETY: sample `i` starts at byte 3i ≤ len − 3 and the buffer
                            // holds len + 1 bytes, so all 4 written lie inside it; unaligned.
                            unsafe {
                                base.add(3 * i)
                                    .cast::<[u8; 4]>()
                                    .write_unaligned(q[c * n + f].to_le_bytes())
                            };
                            i += 1;
                        }
                    }
                }
                bytes.truncate(len);
            }
            SampleFormat::Int16 => {
                bytes.clear();
                bytes.resize(len, 0);
                const SCALE: f64 = 32_768.0;
                // Dither in frame order, channel by channel within a frame, so output does not
                // depend on how a track was cut into chunks.
                for (f, frame) in (range.clone()).zip(bytes.chunks_exact_mut(stride)) {
                    for (c, ch) in planar.iter_mut().enumerate() {
                        let tpdf = (self.dither.uniform() + self.dither.uniform() - 1.0) as f64;
                        let q = round_even(ch[f] as f64 * SCALE + tpdf).clamp(-SCALE, SCALE - 1.0);
                        frame[c * 2..c * 2 + 2].copy_from_slice(&(q as i16).to_le_bytes());
                        ch[f] = (q / SCALE) as f32;
                    }
                }
            }
        }
        let written = self.put(&bytes);
        self.bytes = bytes;
        written?;
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
        let data_bytes = self.frames * self.channels as u64 * (self.format.bits() / 8) as u64;
        if self.data_start + data_bytes > u32::MAX as u64 {
            return Err(Error::io(
                &self.final_path,
                std::io::Error::other(
                    "a WAV file stops at 4 GiB: use a shorter input or a smaller depth",
                ),
            ));
        }
        let mut file = self.file.take().expect("file present until finish");
        let pad = data_bytes % 2;
        if pad == 1 {
            file.write_all(&[0]).map_err(|e| Error::io(&self.temp, e))?; // RIFF pad byte
        }
        let riff = (self.data_start + data_bytes + pad - 8) as u32;
        let patch = |file: &mut File, at: u64, v: u32| -> std::io::Result<()> {
            file.seek(SeekFrom::Start(at))?;
            file.write_all(&v.to_le_bytes())
        };
        patch(&mut file, 4, riff).map_err(|e| Error::io(&self.temp, e))?;
        patch(&mut file, self.data_start - 4, data_bytes as u32)
            .map_err(|e| Error::io(&self.temp, e))?;
        file.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        drop(file);
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

/// Starts the disk write-out of the file's bytes `from .. to` without
/// waiting for it (Linux `sync_file_range`; elsewhere nothing: the final sync does it all).
/// Durability still comes from the `sync_all` in `finish`; this only lets the disk start early.
#[cfg(target_os = "linux")]
fn start_write_out(file: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; a failure (e.g. a filesystem without
    // support) only means the final sync does the work.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            (to - from) as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_out(_file: &File, _from: u64, _to: u64) {}

/// 24-bit quantisation: `round_half_even(v · 2²³)` clamped to the 24-bit range, into `q`, and
/// each `v` replaced by the value a reader decodes back (`q / 2²³`).
fn quantise_24(samples: &mut [f32], q: &mut [i32]) {
    const SCALE: f32 = 8_388_608.0;
    let scalar = |v: &mut f32, q: &mut i32| {
        let r = round_even(*v as f64 * SCALE as f64).clamp(-(SCALE as f64), SCALE as f64 - 1.0);
        *q = r as i32;
        *v = (r / SCALE as f64) as f32;
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // v · 2²³ is exact in f32 and so is the clamp to [−2²³, 2²³ − 1] (clamping before the
        // rounding gives the same integer as clamping after); cvtps2dq rounds half to even (the
        // default MXCSR mode), and q · 2⁻²³ is exact.
        let mut vs = samples.chunks_exact_mut(4);
        let mut qs = q.chunks_exact_mut(4);
        for (v4, q4) in (&mut vs).zip(&mut qs) {
            // SAFETY: SSE2 is part of x86_64; the loads and stores are of 4 lanes within the
            // chunks (unaligned forms).
            unsafe {
                let x = _mm_mul_ps(_mm_loadu_ps(v4.as_ptr()), _mm_set1_ps(SCALE));
                let x = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(-SCALE)), _mm_set1_ps(SCALE - 1.0));
                let r = _mm_cvtps_epi32(x);
                _mm_storeu_si128(q4.as_mut_ptr() as *mut __m128i, r);
                let back = _mm_mul_ps(_mm_cvtepi32_ps(r), _mm_set1_ps(1.0 / SCALE));
                _mm_storeu_ps(v4.as_mut_ptr(), back);
            }
        }
        for (v, q) in vs.into_remainder().iter_mut().zip(qs.into_remainder()) {
            scalar(v, q);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (v, q) in samples.iter_mut().zip(q) {
        scalar(v, q);
    }
}

/// Round half to even without a libm call (|x| < 2^51): adding and subtracting 1.5 · 2^52 leaves
/// the nearest integer, in plain IEEE arithmetic.
#[inline(always)]
fn round_even(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    (x + MAGIC) - MAGIC
}

/// A RIFF/WAVE header ending with the `data` chunk header (sizes patched by `finish`).
fn wav_header(sample_rate: u32, channels: usize, format: SampleFormat) -> Vec<u8> {
    let bits = format.bits();
    let block_align = channels as u16 * bits / 8;
    let extensible = !(format == SampleFormat::Int16 && channels <= 2);
    let mut h = Vec::with_capacity(80);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(b"WAVE");
    h.extend_from_slice(b"fmt ");
    h.extend_from_slice(&(if extensible { 40u32 } else { 16 }).to_le_bytes());
    h.extend_from_slice(&(if extensible { 0xFFFEu16 } else { 1 }).to_le_bytes());
    h.extend_from_slice(&(channels as u16).to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&(sample_rate * block_align as u32).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        h.extend_from_slice(&22u16.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes()); // valid bits
        h.extend_from_slice(&channel_mask(channels).to_le_bytes());
        // Sub-format GUID: PCM (1) or IEEE float (3), then the fixed KSDATAFORMAT tail.
        let tag: u16 = if format == SampleFormat::Float32 {
            3
        } else {
            1
        };
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // Unfinished (an error, or a panic): the temporary file goes; the final name never existed.
        self.file.take();
        if self.temp.exists() {
            let _ = std::fs::remove_file(&self.temp);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantise_24_matches_the_scalar_rule() {
        // Random samples over and beyond full scale, exact halves (ties go to even) and the
        // clamp edges: the vector path against round-half-even in f64, bit for bit.
        const SCALE: f64 = 8_388_608.0;
        let mut rng = Rng::new(5);
        let mut x: Vec<f32> = (0..4099).map(|_| 2.5 * rng.uniform() - 1.25).collect();
        for k in [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            8_388_606.5,
            8_388_607.5,
            -8_388_608.5,
        ] {
            x.push(k / SCALE as f32);
        }
        x.extend([1.0, -1.0, 0.0, -0.0, 1.0 - f32::EPSILON]);
        let mut got = x.clone();
        let mut q = vec![0; x.len()];
        quantise_24(&mut got, &mut q);
        for (i, &v) in x.iter().enumerate() {
            let want = round_even(v as f64 * SCALE).clamp(-SCALE, SCALE - 1.0);
            assert_eq!(q[i], want as i32, "sample {i} ({v:e}): integer");
            assert_eq!(
                got[i].to_bits(),
                ((want / SCALE) as f32).to_bits(),
                "sample {i} ({v:e}): decoded value"
            );
        }
    }
}
