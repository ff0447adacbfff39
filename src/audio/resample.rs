//! Streaming resampling (rubato's FFT resampler) with its delay compensated, so output sample
//! `k` lines up with input time `k / out_rate` and a track of `n` input frames gives exactly
//! `round(n · out_rate / in_rate)` output frames. Equal rates pass samples through untouched.

use crate::error::{Error, Result};
use rubato::{FftFixedIn, Resampler};

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// `round(in_frames · out_rate / in_rate)`, halves up, exactly.
pub fn output_len(in_frames: u64, in_rate: u32, out_rate: u32) -> u64 {
    ((in_frames as u128 * out_rate as u128 + in_rate as u128 / 2) / in_rate as u128) as u64
}

/// A planar resampler for one track.
pub struct StreamResampler {
    inner: Option<FftFixedIn<f32>>,
    in_rate: u32,
    out_rate: u32,
    pending: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    to_drop: usize,
    total_in: u64,
    total_out: u64,
}

impl StreamResampler {
    /// A resampler from `in_rate` to `out_rate` for `channels` channels.
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Result<Self> {
        let inner = if in_rate == out_rate {
            None
        } else {
            let r = FftFixedIn::<f32>::new(in_rate as usize, out_rate as usize, CHUNK, 2, channels)
                .map_err(|e| {
                    Error::param(
                        "--rate",
                        format!("cannot resample {in_rate} Hz to {out_rate} Hz: {e}"),
                    )
                })?;
            Some(r)
        };
        let to_drop = inner.as_ref().map_or(0, |r| r.output_delay());
        let scratch = inner
            .as_ref()
            .map_or_else(Vec::new, |r| r.output_buffer_allocate(true));
        Ok(StreamResampler {
            inner,
            in_rate,
            out_rate,
            pending: vec![Vec::new(); channels],
            scratch,
            to_drop,
            total_in: 0,
            total_out: 0,
        })
    }

    /// Consumes `input` (planar, any length) and appends resampled frames to `output[ch]`.
    pub fn push(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]) -> Result<()> {
        let n = input.first().map_or(0, Vec::len);
        self.total_in += n as u64;
        if self.inner.is_none() {
            for (o, i) in output.iter_mut().zip(input) {
                o.extend_from_slice(i);
            }
            self.total_out += n as u64;
            return Ok(());
        }
        for (p, i) in self.pending.iter_mut().zip(input) {
            p.extend_from_slice(i);
        }
        let mut used = 0;
        loop {
            let r = self.inner.as_mut().expect("resampling");
            let need = r.input_frames_next();
            if self.pending[0].len() - used < need {
                break;
            }
            let slices: Vec<&[f32]> = self.pending.iter().map(|p| &p[used..used + need]).collect();
            let (_, produced) = r
                .process_into_buffer(&slices, &mut self.scratch, None)
                .map_err(resample_error)?;
            used += need;
            self.emit(produced, output, u64::MAX);
        }
        for p in &mut self.pending {
            p.drain(..used);
        }
        Ok(())
    }

    /// Flushes the resampler; afterwards the total appended is `output_len` of the total pushed.
    pub fn finish(&mut self, output: &mut [Vec<f32>]) -> Result<()> {
        let target = output_len(self.total_in, self.in_rate, self.out_rate);
        if self.inner.is_none() {
            return Ok(());
        }
        let mut first = true;
        while self.total_out < target {
            let r = self.inner.as_mut().expect("resampling");
            let (_, produced) = if first && !self.pending[0].is_empty() {
                let slices: Vec<&[f32]> = self.pending.iter().map(|p| p.as_slice()).collect();
                r.process_partial_into_buffer(Some(&slices), &mut self.scratch, None)
            } else {
                r.process_partial_into_buffer(None::<&[&[f32]]>, &mut self.scratch, None)
            }
            .map_err(resample_error)?;
            first = false;
            self.emit(produced, output, target);
        }
        self.pending.iter_mut().for_each(Vec::clear);
        Ok(())
    }

    fn emit(&mut self, produced: usize, output: &mut [Vec<f32>], limit: u64) {
        let skip = self.to_drop.min(produced);
        self.to_drop -= skip;
        let avail = produced - skip;
        let take = (avail as u64).min(limit.saturating_sub(self.total_out)) as usize;
        for (o, s) in output.iter_mut().zip(&self.scratch) {
            o.extend_from_slice(&s[skip..skip + take]);
        }
        self.total_out += take as u64;
    }
}

fn resample_error(e: rubato::ResampleError) -> Error {
    Error::io("resampler", std::io::Error::other(e.to_string()))
}

/// Resamples a whole planar buffer.
pub fn resample_all(input: &[Vec<f32>], in_rate: u32, out_rate: u32) -> Result<Vec<Vec<f32>>> {
    let mut r = StreamResampler::new(in_rate, out_rate, input.len())?;
    let mut out = vec![Vec::new(); input.len()];
    r.push(input, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact() {
        for (a, b) in [
            (44100, 48000),
            (48000, 44100),
            (22050, 48000),
            (96000, 48000),
            (8000, 192000),
            (48000, 48000),
        ] {
            for n in [0usize, 1, 999, 4096, 44101] {
                let x = vec![vec![0.25f32; n]; 2];
                let y = resample_all(&x, a, b).unwrap();
                assert_eq!(
                    y[0].len() as u64,
                    output_len(n as u64, a, b),
                    "{a}->{b} n={n}"
                );
                assert_eq!(y[1].len(), y[0].len());
            }
        }
    }

    #[test]
    fn sine_and_click_stay_aligned() {
        let (a, b) = (44100u32, 48000u32);
        let n = 44100;
        let f = 1000.0f64;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / a as f64).sin() as f32 * 0.5)
            .collect();
        let y = resample_all(&[x], a, b).unwrap();
        let m = y[0].len();
        let mut worst = 0.0f64;
        for (k, &v) in y[0].iter().enumerate().take(m - 2000).skip(2000) {
            let want = (2.0 * std::f64::consts::PI * f * k as f64 / b as f64).sin() * 0.5;
            worst = worst.max((v as f64 - want).abs());
        }
        assert!(worst < 1e-3, "sine error {worst}");
        // A click at input sample 20000 lands at round(20000·48000/44100) ± 1.
        let mut click = vec![0.0f32; n];
        click[20000] = 1.0;
        let y = resample_all(&[click], a, b).unwrap();
        let peak = y[0]
            .iter()
            .enumerate()
            .max_by(|p, q| p.1.abs().total_cmp(&q.1.abs()))
            .unwrap()
            .0 as i64;
        let want = output_len(20000, a, b) as i64;
        assert!((peak - want).abs() <= 1, "click at {peak}, want {want}");
    }

    #[test]
    fn streaming_in_pieces_equals_whole() {
        let x: Vec<f32> = (0..30011)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let whole = resample_all(std::slice::from_ref(&x), 44100, 48000).unwrap();
        let mut r = StreamResampler::new(44100, 48000, 1).unwrap();
        let mut out = vec![Vec::new()];
        let mut at = 0;
        for piece in [1usize, 7, 1023, 1024, 1025, 5000, 17, 30011]
            .iter()
            .cycle()
        {
            if at >= x.len() {
                break;
            }
            let end = (at + piece).min(x.len());
            r.push(&[x[at..end].to_vec()], &mut out).unwrap();
            at = end;
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out[0], whole[0]);
    }
}
