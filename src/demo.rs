//! A built-in example mix (drums, bass, chord pad) synthesised deterministically, in any chunk
//! of any length, so the demo and the benchmarks need no files. Its parts can also be rendered
//! one by one, as ground truth.

use std::f32::consts::TAU;

/// Tempo of the demo groove.
const BPM: f32 = 112.0;
/// Chord roots (MIDI notes) of the four-bar progression: A minor, F, C, G.
const ROOTS: [u8; 4] = [57, 53, 48, 55];
/// Minor or major third over each root.
const THIRDS: [u8; 4] = [3, 4, 4, 4];

/// Which part(s) of the demo mix to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Kick, snare and hi-hats.
    Drums,
    /// The bass line.
    Bass,
    /// The chord pad.
    Chords,
    /// Everything, mixed.
    Mix,
}

fn midi_hz(note: f32) -> f32 {
    440.0 * 2f32.powf((note - 69.0) / 12.0)
}

/// Cycles of `hz` elapsed at time `t`, reduced to [0, 1) in f64 so hour-long renders keep their pitch.
fn cycles(hz: f64, t: f64) -> f32 {
    (hz * t).fract() as f32
}

/// Deterministic noise in [-1, 1) for sample `n` (hash, so any chunk renders alike).
fn noise(n: u64, salt: u64) -> f32 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Renders frames `start .. start + out[0].len()` of `part` at `sample_rate` into `out`
/// (planar; 1 or 2 channels; stereo pans hats right and spreads the pad).
#[allow(clippy::needless_range_loop)] // one loop writes every channel of frame i
pub fn render(part: Part, sample_rate: u32, start: u64, out: &mut [Vec<f32>]) {
    let sr = sample_rate as f64;
    let beat = 60.0 / BPM as f64;
    let stereo = out.len() > 1;
    let len = out.first().map_or(0, Vec::len);
    for i in 0..len {
        let n = start + i as u64;
        let t = n as f64 / sr;
        let beats = t / beat;
        let bar = (beats / 4.0).floor() as usize;
        let in_beat = (beats.fract() * beat) as f32; // seconds since the beat
        let beat_no = (beats.floor() as u64) % 4;
        let eighth = ((beats * 2.0).fract() * beat / 2.0) as f32;
        let chord = bar % 4;
        let (mut l, mut r) = (0.0f32, 0.0f32);
        if matches!(part, Part::Drums | Part::Mix) {
            // Kick on 1 and 3: a falling sine with a fast decay.
            if beat_no.is_multiple_of(2) {
                let f = 50.0 + 90.0 * (-in_beat * 30.0).exp();
                let k = 0.8 * (TAU * f * in_beat).sin() * (-in_beat * 9.0).exp();
                l += k;
                r += k;
            }
            // Snare on 2 and 4: noise burst plus a 190 Hz body.
            if beat_no % 2 == 1 {
                let s = (0.35 * noise(n, 1) + 0.2 * (TAU * 190.0 * in_beat).sin())
                    * (-in_beat * 18.0).exp();
                l += s;
                r += s;
            }
            // Hats on every eighth, panned right in stereo.
            let h = 0.12 * noise(n, 2) * (-eighth * 60.0).exp();
            l += if stereo { 0.4 * h } else { h };
            r += if stereo { h } else { 0.0 };
        }
        if matches!(part, Part::Bass | Part::Mix) {
            // Root, octave below the chord, on each beat with a soft attack and release.
            let f = midi_hz(ROOTS[chord] as f32 - 12.0);
            let env = (in_beat * 200.0).min(1.0) * (-in_beat * 2.0).exp();
            let ph = TAU * cycles(f as f64, t);
            let b = 0.35 * env * (ph.sin() + 0.3 * (2.0 * ph).sin());
            l += b;
            r += b;
        }
        if matches!(part, Part::Chords | Part::Mix) {
            // A sustained triad, two detuned partial sets for width.
            let notes = [
                ROOTS[chord] + 12,
                ROOTS[chord] + 12 + THIRDS[chord],
                ROOTS[chord] + 19,
            ];
            for (j, &note) in notes.iter().enumerate() {
                let f = midi_hz(note as f32);
                for (h, amp) in [(1.0f32, 0.06f32), (2.0, 0.025), (3.0, 0.012)] {
                    let fh = f as f64 * h as f64;
                    l += amp * (TAU * cycles(fh, t) + j as f32).sin();
                    r += amp * (TAU * cycles(fh * 1.0015, t) + j as f32 + 0.3).sin();
                }
            }
        }
        // Mastered to peak about −3 dBFS.
        let (l, r) = (0.55 * l, 0.55 * r);
        if stereo {
            out[0][i] = l;
            out[1][i] = r;
        } else {
            out[0][i] = 0.5 * (l + r);
        }
    }
}

/// A whole planar buffer of `part`, `frames` long.
pub fn render_all(part: Part, sample_rate: u32, channels: usize, frames: usize) -> Vec<Vec<f32>> {
    let mut out = vec![vec![0.0; frames]; channels];
    render(part, sample_rate, 0, &mut out);
    out
}
