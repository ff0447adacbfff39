//! The CPU separation pipeline: decode-order streaming over blocks of STFT frames.
//!
//! A track is processed one block of frames at a time, per channel. A block needs the spectra of
//! its own frames plus half the harmonic kernel on each side (the time median's context), and the
//! inverse frames of the previous block's tail for overlap-add; with those, every output sample
//! equals whole-file processing bit for bit, while memory stays bounded whatever the length.
//!
//! Data flows one way, with the stage names of `crate::stages` (and of the shaders):
//! frame → fft → magnitude → median (time, frequency) → mask → ifft → overlap_add.

use crate::error::{Error, Result};
use crate::params::{HpssParams, StftParams};
use crate::stages::fft::ForwardFft;
use crate::stages::frame::{frame_windowed, hann_periodic, SignalView};
use crate::stages::ifft::InverseFft;
use crate::stages::magnitude::magnitude;
use crate::stages::mask::{apply_mask, hpss_masks, remainder};
use crate::stages::median::{median_freq, median_time, reflect_index, MedianScratch};
use crate::stages::overlap_add::{overlap_add, WindowSumSquare};
use crate::stems::{Stem, StemSet};
use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;

/// Default frames per block: about 12 s at 44.1 kHz with hop 512; ~50 MB of work buffers per block.
pub const DEFAULT_BLOCK_FRAMES: usize = 1024;

/// Everything that defines a separation.
#[derive(Clone, Debug, PartialEq)]
pub struct SeparationParams {
    /// STFT layout.
    pub stft: StftParams,
    /// HPSS settings.
    pub hpss: HpssParams,
    /// Which stems to produce.
    pub stems: StemSet,
    /// Frames per processing block (bounds memory; does not change the result).
    pub block_frames: usize,
}

impl Default for SeparationParams {
    fn default() -> Self {
        let hpss = HpssParams::default();
        SeparationParams {
            stft: StftParams::default(),
            stems: StemSet::Hpr {
                residual: hpss.has_residual(),
            },
            hpss,
            block_frames: DEFAULT_BLOCK_FRAMES,
        }
    }
}

/// A CPU separator: FFT plans, window and tables built once, reused for every track.
pub struct Separator {
    params: SeparationParams,
    stems: Vec<Stem>,
    window: Vec<f32>,
    fft: ForwardFft,
    ifft: InverseFft,
    wss: WindowSumSquare,
}

impl Separator {
    /// Validates `params` and builds the plans.
    pub fn new(params: SeparationParams) -> Result<Self> {
        params.stft.validate()?;
        params.hpss.validate()?;
        if params.block_frames < 1 {
            return Err(Error::param("block_frames", "expected at least 1, got 0"));
        }
        let mut planner = RealFftPlanner::new();
        let n_fft = params.stft.n_fft;
        let window = hann_periodic(n_fft);
        Ok(Separator {
            stems: params.stems.stems(),
            fft: ForwardFft::new(&mut planner, n_fft),
            ifft: InverseFft::new(&mut planner, n_fft),
            wss: WindowSumSquare::new(&window, params.stft.hop_length),
            window,
            params,
        })
    }

    /// The parameters in force.
    pub fn params(&self) -> &SeparationParams {
        &self.params
    }

    /// The stems produced, in output order.
    pub fn stems(&self) -> &[Stem] {
        &self.stems
    }

    /// Starts streaming a track of `channels` channels.
    pub fn stream(&self, channels: usize) -> SeparatorStream<'_> {
        SeparatorStream {
            sep: self,
            channels: (0..channels).map(|_| ChannelState::default()).collect(),
            received: 0,
            next_frame: 0,
            emitted: 0,
            work: BlockWork::default(),
        }
    }

    /// Separates a whole planar signal; returns `[stem][channel][sample]`, each as long as the input.
    pub fn separate(&self, channels: &[Vec<f32>]) -> Vec<Vec<Vec<f32>>> {
        let mut out = self.empty_output(channels.len());
        let mut stream = self.stream(channels.len());
        stream.push(channels, &mut out);
        stream.finish(&mut out);
        out
    }

    /// An empty `[stem][channel]` output buffer for `channels` channels.
    pub fn empty_output(&self, channels: usize) -> Vec<Vec<Vec<f32>>> {
        vec![vec![Vec::new(); channels]; self.stems.len()]
    }

    /// Half-kernel context (frames before, frames after) of the time median.
    fn halo(&self) -> (usize, usize) {
        let k = self.params.hpss.harmonic_kernel;
        (k / 2, k - 1 - k / 2)
    }
}

/// Per-channel streaming state.
#[derive(Default)]
struct ChannelState {
    /// Input samples held, from global index `input_offset`.
    input: Vec<f32>,
    input_offset: u64,
    /// Windowed inverse frames of the last `tail_frames` frames, `[frame][stem][n_fft]`.
    tail: Vec<f32>,
    tail_frames: usize,
}

/// Work buffers reused across blocks and channels.
#[derive(Default)]
struct BlockWork {
    spectra: Vec<Complex32>,
    mag: Vec<f32>,
    harm: Vec<f32>,
    perc: Vec<f32>,
    stem_frames: Vec<f32>,
}

/// A track being separated: push samples in, stem samples come out in order.
pub struct SeparatorStream<'a> {
    sep: &'a Separator,
    channels: Vec<ChannelState>,
    received: u64,
    next_frame: usize,
    emitted: u64,
    work: BlockWork,
}

/// A block of frames to produce and the frames it must hold.
#[derive(Clone, Copy, Debug)]
struct Block {
    start: usize,
    end: usize,
    held_lo: usize,
    held_hi: usize,
    /// Frame count used for the boundary (the real one when final, else a bound past `held_hi`).
    n_frames: usize,
    /// Samples that are complete once the block is done (exclusive).
    emit_to: u64,
}

impl SeparatorStream<'_> {
    /// Samples pushed so far (per channel).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Pushes planar samples (every channel the same length) and appends every stem sample that is
    /// now complete to `out[stem][channel]`.
    ///
    /// # Panics
    /// If the channel count differs from the stream's or the channels differ in length.
    pub fn push(&mut self, input: &[Vec<f32>], out: &mut [Vec<Vec<f32>>]) {
        assert_eq!(input.len(), self.channels.len(), "channel count");
        let len = input.first().map_or(0, Vec::len);
        assert!(
            input.iter().all(|c| c.len() == len),
            "channels differ in length"
        );
        for (state, samples) in self.channels.iter_mut().zip(input) {
            state.input.extend_from_slice(samples);
        }
        self.received += len as u64;
        while let Some(block) = self.next_block(false) {
            self.run_block(block, out);
        }
    }

    /// Ends the track: produces the remaining samples, so that each `out[stem][channel]` holds
    /// exactly as many samples as were pushed.
    pub fn finish(mut self, out: &mut [Vec<Vec<f32>>]) {
        while let Some(block) = self.next_block(true) {
            self.run_block(block, out);
        }
    }

    fn next_block(&self, last: bool) -> Option<Block> {
        let sep = self.sep;
        let StftParams { n_fft, hop_length } = sep.params.stft;
        let (before, after) = sep.halo();
        let start = self.next_frame;
        let (n_frames, end) = if last {
            let n = sep.params.stft.n_frames(self.received);
            if start >= n {
                return None;
            }
            (n, (start + sep.params.block_frames).min(n))
        } else {
            (usize::MAX / 4, start + sep.params.block_frames)
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
            ((end * hop_length) as u64)
                .saturating_sub((n_fft / 2) as u64)
                .min(self.received)
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

    fn run_block(&mut self, block: Block, out: &mut [Vec<Vec<f32>>]) {
        let sep = self.sep;
        let emit_from = self.emitted;
        for (ch, state) in self.channels.iter_mut().enumerate() {
            sep.process_block(state, &block, &mut self.work, emit_from, |stem, samples| {
                out[stem][ch].extend_from_slice(samples)
            });
            // Keep only the samples later frames can still reach.
            let (before, _) = sep.halo();
            let StftParams { n_fft, hop_length } = sep.params.stft;
            let keep_from = ((block.end.saturating_sub(before) * hop_length) as u64)
                .saturating_sub((n_fft / 2) as u64)
                .max(state.input_offset);
            let drop = (keep_from - state.input_offset) as usize;
            state.input.drain(..drop.min(state.input.len()));
            state.input_offset = keep_from;
        }
        self.emitted = self.emitted.max(block.emit_to);
        self.next_frame = block.end;
    }
}

impl Separator {
    /// Runs one block for one channel and hands each stem's completed samples to `emit`.
    fn process_block(
        &self,
        state: &mut ChannelState,
        block: &Block,
        work: &mut BlockWork,
        emit_from: u64,
        mut emit: impl FnMut(usize, &[f32]),
    ) {
        let StftParams { n_fft, hop_length } = self.params.stft;
        let bins = self.params.stft.n_bins();
        let held = block.held_hi - block.held_lo;
        let out_frames = block.end - block.start;
        let n_stems = self.stems.len();
        let signal = SignalView {
            samples: &state.input,
            offset: state.input_offset as i64,
        };

        // frame → fft → magnitude, for every held frame.
        work.spectra.resize(held * bins, Complex32::default());
        work.mag.resize(held * bins, 0.0);
        work.spectra
            .par_chunks_mut(bins)
            .zip(work.mag.par_chunks_mut(bins))
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![0.0f32; n_fft],
                        vec![Complex32::default(); self.fft.scratch_len()],
                    )
                },
                |(frame, scratch), (i, (spectrum, mag))| {
                    frame_windowed(signal, block.held_lo + i, hop_length, &self.window, frame);
                    self.fft.process(frame, spectrum, scratch);
                    magnitude(spectrum, mag);
                },
            );

        // median along time (harmonic) and along frequency (percussive), frame-major, in tasks of
        // whole frame runs so each task writes its own rows.
        let hpss = self.params.hpss;
        let offset = block.start - block.held_lo;
        work.harm.resize(out_frames * bins, 0.0);
        work.perc.resize(out_frames * bins, 0.0);
        // Time-median tasks are long runs of frames: each lane group starts with k insertions.
        const FRAMES_PER_TASK: usize = 64;
        let time_task_frames = out_frames
            .div_ceil(rayon::current_num_threads())
            .clamp(FRAMES_PER_TASK, 512);
        let mag = &work.mag;
        work.harm
            .par_chunks_mut(time_task_frames * bins)
            .enumerate()
            .for_each_init(MedianScratch::default, |scratch, (task, out)| {
                let first = block.start + task * time_task_frames;
                median_time(
                    mag,
                    bins,
                    block.held_lo,
                    block.n_frames,
                    first,
                    hpss.harmonic_kernel,
                    out,
                    0..bins,
                    scratch,
                );
            });
        let own = &mag[offset * bins..(offset + out_frames) * bins];
        work.perc
            .par_chunks_mut(FRAMES_PER_TASK * bins)
            .zip(own.par_chunks(FRAMES_PER_TASK * bins))
            .for_each_init(MedianScratch::default, |scratch, (out, frames)| {
                median_freq(frames, bins, hpss.percussive_kernel, out, scratch);
            });

        // masks → stem spectra → ifft, one output frame per task.
        // Stem frames are laid out [frame][stem][n_fft], after the previous block's tail.
        let tail = state.tail_frames;
        let frame_stride = n_stems * n_fft;
        work.stem_frames
            .resize((tail + out_frames) * frame_stride, 0.0);
        work.stem_frames[..tail * frame_stride].copy_from_slice(&state.tail);
        let (spectra, harm, perc) = (&work.spectra, &work.harm, &work.perc);
        work.stem_frames[tail * frame_stride..]
            .par_chunks_mut(frame_stride)
            .enumerate()
            .for_each_init(
                || FrameScratch::new(bins, n_stems, self.ifft.scratch_len()),
                |s, (j, frames)| {
                    let spectrum = &spectra[(offset + j) * bins..(offset + j + 1) * bins];
                    let own = j * bins..(j + 1) * bins;
                    hpss_masks(
                        &harm[own.clone()],
                        &perc[own],
                        &hpss,
                        &mut s.mask_h,
                        &mut s.mask_p,
                    );
                    self.stem_spectra(spectrum, s);
                    for (stem, out) in frames.chunks_exact_mut(n_fft).enumerate() {
                        let z = &mut s.stem_spectra[stem * bins..(stem + 1) * bins];
                        self.ifft.process(z, out, &self.window, &mut s.ifft);
                    }
                },
            );

        // overlap_add: gather the completed samples of every stem.
        let held_first = block.start - tail;
        let count = block.emit_to.saturating_sub(emit_from) as usize;
        if count > 0 {
            let mut stem_out = vec![0.0f32; count];
            for stem in 0..n_stems {
                const SAMPLES_PER_TASK: usize = 4096;
                stem_out
                    .par_chunks_mut(SAMPLES_PER_TASK)
                    .enumerate()
                    .for_each(|(task, chunk)| {
                        overlap_add(
                            &work.stem_frames,
                            frame_stride,
                            stem * n_fft,
                            held_first,
                            n_fft,
                            hop_length,
                            block.n_frames,
                            &self.wss,
                            emit_from + (task * SAMPLES_PER_TASK) as u64,
                            chunk,
                        );
                    });
                emit(stem, &stem_out);
            }
        }

        // Keep the inverse frames the next block's first samples still need.
        let keep = ((n_fft - 1) / hop_length).min(tail + out_frames);
        let total = tail + out_frames;
        state.tail.clear();
        state.tail.extend_from_slice(
            &work.stem_frames[(total - keep) * frame_stride..total * frame_stride],
        );
        state.tail_frames = keep;
    }

    /// Fills `s.stem_spectra` (`[stem][bin]`) from the spectrum and the frame's masks.
    fn stem_spectra(&self, spectrum: &[Complex32], s: &mut FrameScratch) {
        let bins = spectrum.len();
        match self.params.stems {
            StemSet::Hpr { residual } => {
                let (h, rest) = s.stem_spectra.split_at_mut(bins);
                let (p, r) = rest.split_at_mut(bins);
                apply_mask(spectrum, &s.mask_h, h);
                apply_mask(spectrum, &s.mask_p, p);
                if residual {
                    remainder(spectrum, &[h, p], &mut r[..bins]);
                }
            }
        }
    }
}

/// Per-thread buffers for the per-frame stages.
struct FrameScratch {
    mask_h: Vec<f32>,
    mask_p: Vec<f32>,
    stem_spectra: Vec<Complex32>,
    ifft: Vec<Complex32>,
}

impl FrameScratch {
    fn new(bins: usize, n_stems: usize, ifft_scratch: usize) -> Self {
        FrameScratch {
            mask_h: vec![0.0; bins],
            mask_p: vec![0.0; bins],
            stem_spectra: vec![Complex32::default(); bins * n_stems],
            ifft: vec![Complex32::default(); ifft_scratch],
        }
    }
}
