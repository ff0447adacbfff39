//! Streaming over blocks of STFT frames, shared by every engine (CPU and GPU).
//!
//! A track is processed one block of frames at a time. A block produces frames
//! `start .. end`; it must hold the spectra of frames `held_lo .. held_hi` (half the harmonic
//! kernel each side, after reflection at the track's ends) and the engine must also be able to
//! rebuild the `tail_frames` frames before `start` for overlap-add. With that context every
//! output sample equals whole-file processing, while memory stays bounded whatever the length.
//! A block runs as soon as all its held frames are complete, so decoding, separating and encoding
//! can proceed in step.

use crate::error::Result;
use crate::params::StftParams;
use crate::separator::SeparationParams;
use crate::stages::frame::SignalView;
use crate::stages::median::reflect_index;

/// One block of frames to produce, and the context it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// First frame produced.
    pub start: usize,
    /// One past the last frame produced.
    pub end: usize,
    /// First frame whose spectrum the time median reaches.
    pub held_lo: usize,
    /// One past the last frame the time median reaches.
    pub held_hi: usize,
    /// The signal's frame count when this is the last stretch of the track; otherwise a bound
    /// past `held_hi` (the end boundary is not reached before the end is known).
    pub n_frames: usize,
    /// Output samples are complete up to here (exclusive) once the block is done.
    pub emit_to: u64,
}

/// Output samples below this are complete once frames `.. end` are done: every later frame starts
/// at or after it (frames are centred, `n_fft / 2` before their hop position).
pub fn complete_before(end: usize, stft: &StftParams) -> u64 {
    ((end * stft.hop_length) as u64).saturating_sub((stft.n_fft / 2) as u64)
}

impl Block {
    /// Output samples complete once the block's frames `.. end` are done (an engine working
    /// through a block in parts): `emit_to` at the block's end.
    pub fn emit_to_at(&self, end: usize, stft: &StftParams) -> u64 {
        if end >= self.end {
            self.emit_to
        } else {
            complete_before(end, stft).min(self.emit_to)
        }
    }
}

/// Something that turns blocks of frames into stem samples.
pub trait BlockEngine {
    /// Per-track state the engine keeps between blocks.
    type State;

    /// The parameters in force.
    fn params(&self) -> &SeparationParams;

    /// Fresh state for a track of `channels` channels.
    fn new_state(&self, channels: usize) -> Self::State;

    /// Produces `block` for every channel: appends each stem's samples `emit_from ..
    /// block.emit_to` to `out[stem][channel]`. `inputs[ch]` holds the channel's samples from at
    /// least frame `block.held_lo.min(block.start - tail_frames)`'s first sample on.
    fn run_block(
        &self,
        state: &mut Self::State,
        inputs: &[SignalView<'_>],
        block: &Block,
        emit_from: u64,
        out: &mut [Vec<Vec<f32>>],
    ) -> Result<()>;
}

/// Frames before a block whose inverse frames reach its first output samples: `(n_fft − 1) / hop`.
pub fn tail_frames(stft: &StftParams) -> usize {
    (stft.n_fft - 1) / stft.hop_length
}

/// Half-kernel context (frames before, frames after) of a time median of length `k`.
pub fn halo(k: usize) -> (usize, usize) {
    (k / 2, k - 1 - k / 2)
}

/// The frames a time median of length `k` reads for outputs `start .. end` of an `n_frames`-long
/// sequence, after reflection at its ends: `(lo, hi)`, a range that holds `start .. end`.
pub fn reach(start: usize, end: usize, n_frames: usize, k: usize) -> (usize, usize) {
    reach_halo(start, end, n_frames, halo(k))
}

/// [`reach`] for a window of `before` frames before and `after` frames after its output
/// frame (a tapped median's reads lie within them).
pub fn reach_halo(
    start: usize,
    end: usize,
    n_frames: usize,
    (before, after): (usize, usize),
) -> (usize, usize) {
    ((start as i64 - before as i64)..(end + after) as i64).fold((start, end), |(lo, hi), i| {
        let r = reflect_index(i, n_frames);
        (lo.min(r), hi.max(r + 1))
    })
}

/// A track being separated by an engine: push samples in, stem samples come out in order.
pub struct BlockStream<'a, E: BlockEngine> {
    engine: &'a E,
    state: E::State,
    inputs: Vec<Vec<f32>>,
    input_offset: u64,
    received: u64,
    next_frame: usize,
    emitted: u64,
}

impl<'a, E: BlockEngine> BlockStream<'a, E> {
    /// Starts a track of `channels` channels.
    pub fn new(engine: &'a E, channels: usize) -> Self {
        BlockStream {
            engine,
            state: engine.new_state(channels),
            inputs: vec![Vec::new(); channels],
            input_offset: 0,
            received: 0,
            next_frame: 0,
            emitted: 0,
        }
    }

    /// Samples pushed so far (per channel).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Pushes planar samples (every channel the same length) and appends every stem sample that is
    /// now complete to `out[stem][channel]`.
    ///
    /// # Panics
    /// If the channel count differs from the stream's or the channels differ in length.
    pub fn push(&mut self, input: &[Vec<f32>], out: &mut [Vec<Vec<f32>>]) -> Result<()> {
        assert_eq!(input.len(), self.inputs.len(), "channel count");
        let len = input.first().map_or(0, Vec::len);
        assert!(
            input.iter().all(|c| c.len() == len),
            "channels differ in length"
        );
        for (held, samples) in self.inputs.iter_mut().zip(input) {
            held.extend_from_slice(samples);
        }
        self.received += len as u64;
        while let Some(block) = self.next_block(false) {
            self.run_block(block, out)?;
        }
        Ok(())
    }

    /// Ends the track: produces the remaining samples, so that each `out[stem][channel]` holds
    /// exactly as many samples as were pushed.
    pub fn finish(mut self, out: &mut [Vec<Vec<f32>>]) -> Result<()> {
        while let Some(block) = self.next_block(true) {
            self.run_block(block, out)?;
        }
        Ok(())
    }

    fn next_block(&self, last: bool) -> Option<Block> {
        let params = self.engine.params();
        let StftParams { n_fft, hop_length } = params.stft;
        let (before, after) = params.time_halo();
        let start = self.next_frame;
        let (n_frames, end) = if last {
            let n = params.stft.n_frames(self.received);
            if start >= n {
                return None;
            }
            (n, (start + params.block_len()).min(n))
        } else {
            (usize::MAX / 4, start + params.block_len())
        };
        // Frames the time median reaches, after reflection at the boundaries.
        let reach = (start as i64 - before as i64)..(end + after) as i64;
        let (held_lo, held_hi) = reach.fold((start, end), |(lo, hi), i| {
            let r = reflect_index(i, n_frames);
            (lo.min(r), hi.max(r + 1))
        });
        if !last {
            // Every held frame must be complete: its last sample received.
            let needed = ((held_hi - 1) * hop_length + n_fft / 2) as u64;
            if needed > self.received {
                return None;
            }
        }
        let emit_to = if last && end == n_frames {
            self.received
        } else {
            complete_before(end, &params.stft).min(self.received)
        };
        Some(Block {
            start,
            end,
            held_lo,
            held_hi,
            n_frames,
            emit_to,
        })
    }

    fn run_block(&mut self, block: Block, out: &mut [Vec<Vec<f32>>]) -> Result<()> {
        let views: Vec<SignalView<'_>> = self
            .inputs
            .iter()
            .map(|s| SignalView {
                samples: s,
                offset: self.input_offset as i64,
            })
            .collect();
        self.engine
            .run_block(&mut self.state, &views, &block, self.emitted, out)?;
        self.emitted = self.emitted.max(block.emit_to);
        self.next_frame = block.end;
        // Keep the samples later blocks can still reach: their held frames and the frames whose
        // inverse an engine may rebuild for overlap-add.
        let params = self.engine.params();
        let (before, _) = params.time_halo();
        let back = before.max(tail_frames(&params.stft)) + tail_frames(&params.stft);
        let first_frame = block.end.saturating_sub(back);
        let keep_from = ((first_frame * params.stft.hop_length) as u64)
            .saturating_sub((params.stft.n_fft / 2) as u64)
            .max(self.input_offset);
        let drop =
            ((keep_from - self.input_offset) as usize).min(self.inputs.first().map_or(0, Vec::len));
        for held in &mut self.inputs {
            held.drain(..drop);
        }
        self.input_offset += drop as u64;
        Ok(())
    }
}

/// Separates a whole planar signal with `engine`; returns `[stem][channel][sample]`.
pub fn separate_all<E: BlockEngine>(
    engine: &E,
    channels: &[Vec<f32>],
) -> Result<Vec<Vec<Vec<f32>>>> {
    let stems = engine.params().stems.len();
    let mut out = vec![vec![Vec::new(); channels.len()]; stems];
    let mut stream = BlockStream::new(engine, channels.len());
    stream.push(channels, &mut out)?;
    stream.finish(&mut out)?;
    Ok(out)
}
