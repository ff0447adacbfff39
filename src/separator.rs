//! The CPU separation engine: runs the stages of `crate::stages` over one block of STFT frames
//! (see `crate::stream` for how blocks are scheduled), in parallel with rayon. It carries each
//! channel's last inverse frames from block to block for overlap-add, so every output sample
//! equals whole-file processing bit for bit.
//!
//! Data flows one way, with the stage names of `crate::stages` (and of the shaders):
//! frame → fft → magnitude → median (time, frequency) → mask → ifft → overlap_add.

use crate::error::{Error, Result};
use crate::params::{HpssParams, StftParams};
use crate::stages::fft::ForwardFft;
use crate::stages::frame::{frame_windowed, hann_periodic, SignalView};
use crate::stages::ifft::InverseFft;
use crate::stages::magnitude::magnitude;
use crate::stages::mask::{apply_mask, hpss_masks};
use crate::stages::median::{median_freq, median_time, MedianScratch};
use crate::stages::overlap_add::{overlap_add, WindowSumSquare};
use crate::stems::{Stem, StemSet};
use crate::stream::{Block, BlockEngine, BlockStream};
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
        BlockStream::new(self, channels)
    }

    /// Separates a whole planar signal; returns `[stem][channel][sample]`, each as long as the input.
    pub fn separate(&self, channels: &[Vec<f32>]) -> Vec<Vec<Vec<f32>>> {
        crate::stream::separate_all(self, channels).expect("the CPU engine does not fail")
    }

    /// An empty `[stem][channel]` output buffer for `channels` channels.
    pub fn empty_output(&self, channels: usize) -> Vec<Vec<Vec<f32>>> {
        vec![vec![Vec::new(); channels]; self.stems.len()]
    }
}

/// A track streaming through the CPU separator.
pub type SeparatorStream<'a> = BlockStream<'a, Separator>;

/// CPU per-track state: each channel's inverse frames of the previous block's tail.
#[derive(Default)]
pub struct CpuState {
    tails: Vec<ChannelTail>,
    work: BlockWork,
}

#[derive(Default)]
struct ChannelTail {
    /// Windowed inverse frames of the last `frames` frames, `[frame][stem][n_fft]`.
    frames_data: Vec<f32>,
    frames: usize,
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

impl BlockEngine for Separator {
    type State = CpuState;

    fn params(&self) -> &SeparationParams {
        &self.params
    }

    fn new_state(&self, channels: usize) -> CpuState {
        CpuState {
            tails: (0..channels).map(|_| ChannelTail::default()).collect(),
            work: BlockWork::default(),
        }
    }

    fn run_block(
        &self,
        state: &mut CpuState,
        inputs: &[SignalView<'_>],
        block: &Block,
        emit_from: u64,
        out: &mut [Vec<Vec<f32>>],
    ) -> Result<()> {
        for (ch, (tail, signal)) in state.tails.iter_mut().zip(inputs).enumerate() {
            self.process_block(
                tail,
                *signal,
                block,
                &mut state.work,
                emit_from,
                |stem, samples| out[stem][ch].extend_from_slice(samples),
            );
        }
        Ok(())
    }
}

impl Separator {
    /// Runs one block for one channel and hands each stem's completed samples to `emit`.
    fn process_block(
        &self,
        state: &mut ChannelTail,
        signal: SignalView<'_>,
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

        // masks → stem spectra → ifft, one output frame per task. The last stem of a set is the
        // remainder of the others, so it is taken in the time domain (x − Σ others; the ISTFT is
        // linear and reconstructs x) and needs no inverse transform of its own.
        // Inverse frames are laid out [frame][stem][n_fft], after the previous block's tail.
        let inverted = n_stems - 1;
        let tail = state.frames;
        let frame_stride = inverted * n_fft;
        work.stem_frames
            .resize((tail + out_frames) * frame_stride, 0.0);
        work.stem_frames[..tail * frame_stride].copy_from_slice(&state.frames_data);
        let (spectra, harm, perc) = (&work.spectra, &work.harm, &work.perc);
        work.stem_frames[tail * frame_stride..]
            .par_chunks_mut(frame_stride)
            .enumerate()
            .for_each_init(
                || FrameScratch::new(bins, inverted, self.ifft.scratch_len()),
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

        // overlap_add: gather the completed samples of every inverted stem; the last is the rest.
        let held_first = block.start - tail;
        let count = block.emit_to.saturating_sub(emit_from) as usize;
        if count > 0 {
            let mut rest: Vec<f32> = (0..count)
                .map(|i| signal.at((emit_from + i as u64) as i64))
                .collect();
            let mut stem_out = vec![0.0f32; count];
            for stem in 0..inverted {
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
                rest.iter_mut().zip(&stem_out).for_each(|(r, &v)| *r -= v);
                emit(stem, &stem_out);
            }
            emit(inverted, &rest);
        }

        // Keep the inverse frames the next block's first samples still need.
        let keep = ((n_fft - 1) / hop_length).min(tail + out_frames);
        let total = tail + out_frames;
        state.frames_data.clear();
        state.frames_data.extend_from_slice(
            &work.stem_frames[(total - keep) * frame_stride..total * frame_stride],
        );
        state.frames = keep;
    }

    /// Fills `s.stem_spectra` (`[stem][bin]`) with every stem but the last (the remainder).
    fn stem_spectra(&self, spectrum: &[Complex32], s: &mut FrameScratch) {
        let bins = spectrum.len();
        match self.params.stems {
            StemSet::Hpr { residual } => {
                apply_mask(spectrum, &s.mask_h, &mut s.stem_spectra[..bins]);
                if residual {
                    apply_mask(spectrum, &s.mask_p, &mut s.stem_spectra[bins..2 * bins]);
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

/// Separation settings before they meet a sample rate: kernels may be given in seconds or hertz,
/// which become frames and bins only at a track's rate.
#[derive(Clone, Debug, PartialEq)]
pub struct SeparationSpec {
    /// STFT layout.
    pub stft: StftParams,
    /// Harmonic (time) median length.
    pub harmonic_kernel: crate::params::Kernel,
    /// Percussive (frequency) median length.
    pub percussive_kernel: crate::params::Kernel,
    /// Soft-mask power (`inf` for hard masks).
    pub power: f32,
    /// Harmonic and percussive margins.
    pub margin: (f32, f32),
    /// The `--stems` text.
    pub stems: String,
    /// Frames per processing block.
    pub block_frames: usize,
}

impl Default for SeparationSpec {
    fn default() -> Self {
        SeparationSpec {
            stft: StftParams::default(),
            harmonic_kernel: crate::params::Kernel::Count(31),
            percussive_kernel: crate::params::Kernel::Count(31),
            power: 2.0,
            margin: (1.0, 1.0),
            stems: "hpr".into(),
            block_frames: DEFAULT_BLOCK_FRAMES,
        }
    }
}

impl SeparationSpec {
    /// The concrete parameters at `sample_rate`.
    pub fn resolve(&self, sample_rate: u32) -> Result<SeparationParams> {
        let hpss = HpssParams {
            harmonic_kernel: self.harmonic_kernel.resolve(sample_rate, &self.stft),
            percussive_kernel: self.percussive_kernel.resolve(sample_rate, &self.stft),
            power: self.power,
            margin_harmonic: self.margin.0,
            margin_percussive: self.margin.1,
        };
        let params = SeparationParams {
            stft: self.stft,
            stems: StemSet::parse(&self.stems, &hpss)?,
            hpss,
            block_frames: self.block_frames,
        };
        params.stft.validate()?;
        params.hpss.validate()?;
        Ok(params)
    }
}
