//! Bounded-memory sample store: holds interleaved f32 frames in memory up to a limit, then moves
//! them to an unnamed temporary file (removed by the OS even if the process is killed), so a
//! two-hour track needs no more memory than a short one.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Floats held in memory per buffer before spilling (96 MiB: about 4 minutes of 48 kHz stereo).
pub const MEMORY_LIMIT_FLOATS: usize = 24 << 20;

/// An append-only store of planar audio, read back once in order.
pub struct SpillBuffer {
    channels: usize,
    dir: PathBuf,
    mem: Vec<f32>,
    file: Option<BufWriter<File>>,
    file_floats: u64,
    frames: u64,
    limit: usize,
}

impl SpillBuffer {
    /// An empty store for `channels` channels that spills into `dir`.
    pub fn new(dir: &Path, channels: usize) -> Result<Self> {
        Self::with_limit(dir, channels, MEMORY_LIMIT_FLOATS)
    }

    /// As [`SpillBuffer::new`] with a memory limit in floats (tests use small ones).
    pub fn with_limit(dir: &Path, channels: usize, limit: usize) -> Result<Self> {
        Ok(SpillBuffer {
            channels,
            dir: dir.to_path_buf(),
            mem: Vec::new(),
            file: None,
            file_floats: 0,
            frames: 0,
            limit: limit.max(channels),
        })
    }

    /// Frames stored so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Appends planar samples (every channel the same length).
    pub fn append(&mut self, planar: &[Vec<f32>]) -> Result<()> {
        let n = planar.first().map_or(0, Vec::len);
        self.mem.reserve(n * self.channels);
        for i in 0..n {
            for ch in planar {
                self.mem.push(ch[i]);
            }
        }
        self.frames += n as u64;
        if self.mem.len() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        if self.file.is_none() {
            let f = tempfile::tempfile_in(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            self.file = Some(BufWriter::with_capacity(1 << 20, f));
        }
        let w = self.file.as_mut().expect("spill file just created");
        w.write_all(bytemuck::cast_slice(&self.mem))
            .map_err(|e| Error::io(&self.dir, e))?;
        self.file_floats += self.mem.len() as u64;
        self.mem.clear();
        Ok(())
    }

    /// Finishes writing; the reader returns the frames in the order they were appended.
    pub fn into_reader(self) -> Result<SpillReader> {
        let file = match self.file {
            Some(w) => {
                let mut f = w
                    .into_inner()
                    .map_err(|e| Error::io(&self.dir, e.into_error()))?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(&self.dir, e))?;
                Some(BufReader::with_capacity(1 << 20, f))
            }
            None => None,
        };
        Ok(SpillReader {
            channels: self.channels,
            dir: self.dir,
            file,
            file_floats: self.file_floats,
            mem: self.mem,
            mem_pos: 0,
            bytes: Vec::new(),
        })
    }
}

/// Reads a [`SpillBuffer`] back.
pub struct SpillReader {
    channels: usize,
    dir: PathBuf,
    file: Option<BufReader<File>>,
    file_floats: u64,
    mem: Vec<f32>,
    mem_pos: usize,
    bytes: Vec<u8>,
}

impl SpillReader {
    /// Replaces `out[ch]` with up to `max_frames` next frames; returns how many (0 at the end).
    pub fn read(&mut self, out: &mut [Vec<f32>], max_frames: usize) -> Result<usize> {
        out.iter_mut().for_each(Vec::clear);
        let c = self.channels;
        let mut got = 0;
        if self.file_floats > 0 {
            let floats = (self.file_floats as usize).min(max_frames * c);
            self.bytes.resize(floats * 4, 0);
            let f = self.file.as_mut().expect("spilled data has a file");
            f.read_exact(&mut self.bytes)
                .map_err(|e| Error::io(&self.dir, e))?;
            self.file_floats -= floats as u64;
            for frame in self.bytes.chunks_exact(4 * c) {
                for (ch, b) in out.iter_mut().zip(frame.chunks_exact(4)) {
                    ch.push(f32::from_le_bytes(b.try_into().expect("4 bytes")));
                }
            }
            got = floats / c;
        }
        let want = max_frames - got;
        let avail = (self.mem.len() - self.mem_pos) / c;
        let n = want.min(avail);
        for frame in self.mem[self.mem_pos..self.mem_pos + n * c].chunks_exact(c) {
            for (ch, &v) in out.iter_mut().zip(frame) {
                ch.push(v);
            }
        }
        self.mem_pos += n * c;
        Ok(got + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_data_reads_back_in_order() {
        let dir = std::env::temp_dir();
        for limit in [4usize, 1000, 1 << 20] {
            let mut buf = SpillBuffer::with_limit(&dir, 2, limit).unwrap();
            let mut want: Vec<Vec<f32>> = vec![Vec::new(), Vec::new()];
            for block in 0..50 {
                let n = (block * 7) % 23;
                let chunk: Vec<Vec<f32>> = (0..2)
                    .map(|c| (0..n).map(|i| (block * 1000 + i * 2 + c) as f32).collect())
                    .collect();
                want[0].extend(&chunk[0]);
                want[1].extend(&chunk[1]);
                buf.append(&chunk).unwrap();
            }
            assert_eq!(buf.frames(), want[0].len() as u64);
            let mut r = buf.into_reader().unwrap();
            let mut got: Vec<Vec<f32>> = vec![Vec::new(), Vec::new()];
            let mut out = vec![Vec::new(), Vec::new()];
            while r.read(&mut out, 13).unwrap() > 0 {
                got[0].extend(&out[0]);
                got[1].extend(&out[1]);
            }
            assert_eq!(got, want, "limit {limit}");
        }
    }
}
