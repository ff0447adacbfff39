#!/usr/bin/env python3
"""Builds an evaluation set of songs with ground-truth stems (drums, bass, melody, harmony, fx).

Each song is generated from a seed: tempo, key, progression, instruments, panning, sample rate and
channel count vary. Pitched parts are GM MIDI rendered with FluidSynth and the fluid-soundfont-gm
soundfont; drums are sequenced from the recorded kits of hydrogen-drumkits; fx (risers, noise
swells, impacts with tails) are synthesised. The mix is the plain sum of the stems, so the stems
are exact ground truth.

Needs (Debian): fluidsynth fluid-soundfont-gm hydrogen-drumkits; (PyPI): numpy soundfile mido.

    python3 scripts/evalset/make_evalset.py --out /tmp/evalset --songs 8 --seed 1
    # writes /tmp/evalset/song_001/{mix.wav, stems/drums.wav, stems/bass.wav, ...}

Use a different --seed for held-out songs of the same kind.
"""
import argparse
import json
import glob
import os
import random
import subprocess
import tempfile

import mido
import numpy as np
import soundfile as sf

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
KITS = "/usr/share/hydrogen/data/drumkits"
STEMS = ["drums", "bass", "melody", "harmony", "fx"]

MELODY_PROGRAMS = [73, 56, 65, 40, 80, 81, 71, 68, 11, 22]  # flute, trumpet, sax, violin, leads, clarinet, oboe, vibes, harmonica
HARMONY_PROGRAMS = [0, 4, 16, 48, 49, 88, 89, 90, 91, 92, 24]  # pianos, organ, strings, pads, guitar
BASS_PROGRAMS = [32, 33, 34, 35, 38, 39]
# Highest key some melody patches sound in FluidR3_GM: above it FluidSynth renders silence (the
# melody spans MIDI 72..106, so an alto sax in B had every note dropped). Others sound to 108.
MELODY_TOP = {22: 96, 40: 101, 65: 84, 68: 96}
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]


def midi_part(notes, program, pan, bpm, channel=0):
    """notes: list of (start_beat, length_beats, pitch, velocity)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    tr.append(mido.Message("program_change", program=program, channel=channel))
    tr.append(mido.Message("control_change", control=10, value=pan, channel=channel))
    events = []
    for start, length, pitch, vel in notes:
        events.append((int(start * 480), 1, pitch, vel))
        events.append((int((start + length) * 480), 0, pitch, 0))
    events.sort()
    now = 0
    for tick, on, pitch, vel in events:
        kind = "note_on" if on else "note_off"
        tr.append(mido.Message(kind, note=pitch, velocity=vel, channel=channel, time=tick - now))
        now = tick
    return mid


def render_midi(mid, rate, frames):
    with tempfile.TemporaryDirectory() as d:
        mpath, wpath = os.path.join(d, "p.mid"), os.path.join(d, "p.wav")
        mid.save(mpath)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", wpath, SOUNDFONT, mpath],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        y, _ = sf.read(wpath, dtype="float32", always_2d=True)
    out = np.zeros((frames, 2), dtype=np.float32)
    n = min(frames, len(y))
    out[:n] = y[:n, :2]
    return out


def load_sample(path, rate):
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    if y.shape[1] == 1:
        y = np.repeat(y, 2, axis=1)
    y = y[:, :2]
    if sr != rate:  # linear interpolation is enough for one-shot drum hits
        t = np.arange(int(len(y) * rate / sr)) * sr / rate
        y = np.stack([np.interp(t, np.arange(len(y)), y[:, c]) for c in range(2)], axis=1).astype(np.float32)
    return y


def pick_kit(rng):
    kits = [k for k in sorted(os.listdir(KITS)) if os.path.isdir(os.path.join(KITS, k))]
    rng.shuffle(kits)
    for kit in kits:
        files = glob.glob(os.path.join(KITS, kit, "*.flac")) + glob.glob(os.path.join(KITS, kit, "*.wav"))
        low = [f for f in files if any(w in os.path.basename(f).lower() for w in ("kick", "bassdrum", "bd"))]
        snare = [f for f in files if "snare" in os.path.basename(f).lower() or "sd" in os.path.basename(f).lower()]
        hat = [f for f in files if "hat" in os.path.basename(f).lower() or "hh" in os.path.basename(f).lower()]
        if low and snare and hat:
            return kit, sorted(low)[0], sorted(snare)[0], sorted(hat)[0]
    raise SystemExit("no usable hydrogen kit found")


def drums(rng, rate, frames, bpm, bars):
    kit, kick, snare, hat = pick_kit(rng)
    k, s, h = (load_sample(p, rate) for p in (kick, snare, hat))
    out = np.zeros((frames, 2), dtype=np.float32)
    beat = 60.0 / bpm
    hat_pan = rng.uniform(-0.6, 0.6)
    style = rng.choice(["rock", "four", "half"])
    for bar in range(bars):
        for step in range(16):
            t = (bar * 4 + step / 4) * beat
            i = int(t * rate)
            hits = []
            if style == "four" and step % 4 == 0 or style == "rock" and step in (0, 8, 10) or style == "half" and step == 0:
                hits.append((k, 1.0, 0.0))
            if style == "half" and step == 8 or style != "half" and step in (4, 12):
                hits.append((s, 0.8, 0.0))
            if step % 2 == 0 or rng.random() < 0.2:
                hits.append((h, 0.35 * rng.uniform(0.7, 1.0), hat_pan))
            for smp, gain, pan in hits:
                n = min(len(smp), frames - i)
                if n > 0:
                    out[i:i + n, 0] += gain * smp[:n, 0] * (1 - max(pan, 0))
                    out[i:i + n, 1] += gain * smp[:n, 1] * (1 + min(pan, 0))
    return out, kit


def fx(rng, rate, frames, bpm, bars):
    out = np.zeros((frames, 2), dtype=np.float32)
    beat = 60.0 / bpm
    bar_len = int(4 * beat * rate)
    noise = rng.standard_normal((frames, 2)).astype(np.float32)
    for bar in range(2, bars + 1, 4):  # a riser into every fourth bar line, then an impact with a tail
        start, end = max(0, (bar - 1) * bar_len), min(frames, bar * bar_len)
        n = end - start
        if n <= 0:
            continue
        ramp = np.linspace(0, 1, n) ** 2
        # a rising band: difference of two one-pole lowpasses whose cutoff climbs
        seg = noise[start:end] * ramp[:, None]
        alpha = np.linspace(0.02, 0.5, n)[:, None]
        lp = np.zeros_like(seg)
        acc = np.zeros(2, dtype=np.float32)
        for j in range(0, n, 64):
            a = alpha[j]
            for m in range(j, min(n, j + 64)):
                acc = acc + a * (seg[m] - acc)
                lp[m] = acc
        out[start:end] += 0.25 * lp
        tail = min(frames - end, int(2.5 * rate))
        if tail > 0:
            env = np.exp(-np.arange(tail) / (0.6 * rate))[:, None]
            out[end:end + tail] += 0.12 * noise[end:end + tail] * env
    return out


def song(seed, out_dir, seconds, bass_octaves=1):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    rate = rng.choice([44100, 48000])
    stereo = rng.random() > 0.2
    bpm = rng.randrange(80, 141)
    key = rng.randrange(0, 12)
    scale = rng.choice([MAJOR, MINOR])
    beats_per_bar = 4
    bars = max(2, int(seconds / (beats_per_bar * 60.0 / bpm)))
    frames = int(bars * beats_per_bar * 60.0 / bpm * rate) + rate
    degrees = rng.choice([[0, 5, 3, 4], [0, 3, 4, 0], [0, 4, 5, 3], [5, 3, 0, 4]])
    root = 48 + key

    def chord_notes(deg):
        return [root + scale[(deg + i) % 7] + 12 * ((deg + i) // 7) for i in (0, 2, 4)]

    # Chords voiced from C3 up (in the bass register, as a piano's left hand or a low pad) or
    # from C4 up: a set voiced only above the bass would reward any bass/harmony split that
    # simply gives everything below C4 to the bass.
    voicing = rng.choice([0, 12])
    harmony, bass, melody = [], [], []
    for bar in range(bars):
        notes = chord_notes(degrees[bar % 4])
        for p in notes:
            harmony.append((bar * 4, 4, p + voicing, 70))
        pattern = rng.choice([[0, 2], [0, 1.5, 2, 3.5], [0, 1, 2, 3]])
        for b in pattern:
            bass.append((bar * 4 + b, 0.9, notes[0] - 12 * bass_octaves, 95))
        t = 0.0
        while t < 4:
            length = rng.choice([0.5, 0.5, 1, 1, 1.5, 2])
            if rng.random() > 0.15:
                pitch = root + 24 + scale[rng.randrange(7)] + (12 if rng.random() < 0.2 else 0)
                melody.append((bar * 4 + t, min(length, 4 - t) * 0.95, pitch, 100))
            t += length

    bass_prog = rng.choice(BASS_PROGRAMS)
    mel_prog, mel_pan = rng.choice(MELODY_PROGRAMS), rng.randrange(50, 79)
    # Notes above the patch's top key are folded down by octaves so that none renders silent.
    top = MELODY_TOP.get(mel_prog, 127)
    melody = [(s, l, p - 12 * ((p - top + 11) // 12) if p > top else p, v) for s, l, p, v in melody]
    # (Drawn in this order, after the bass and melody patches: the sets of earlier seeds stay the same.)
    harm_prog, harm_pan = rng.choice(HARMONY_PROGRAMS), rng.choice([30, 64, 98])
    parts = {
        "bass": render_midi(midi_part(bass, bass_prog, 64, bpm), rate, frames),
        "melody": render_midi(midi_part(melody, mel_prog, mel_pan, bpm), rate, frames),
        "harmony": render_midi(midi_part(harmony, harm_prog, harm_pan, bpm), rate, frames),
    }
    for name, y in parts.items():  # never normalise a silent render up to the target RMS
        if float(np.sqrt(np.mean((y - np.median(y, axis=0)) ** 2))) < 1e-3:
            raise SystemExit(f"seed {seed}: {name} rendered silent")
    parts["drums"], kit = drums(rng, rate, frames, bpm, bars)
    parts["fx"] = fx(nrng, rate, frames, bpm, bars)
    # Some GM patches render with a large DC offset or subsonic drift (one pad measured 87 % of
    # its energy below 60 Hz); no master has that, and it would be scored as bass. Every part is
    # high-passed at 20 Hz (4th-order Butterworth, zero phase) before balancing.
    from scipy.signal import butter, sosfiltfilt
    sos = butter(4, 20.0, btype="highpass", fs=rate, output="sos")
    parts = {k: sosfiltfilt(sos, v, axis=0).astype(np.float32) for k, v in parts.items()}
    # Some patches (an LFO-modulated lead, seen at 28 Hz with 46 % of its energy) also render
    # sub-audio content far below their notes: each pitched part is high-passed at 0.7 x the f0
    # of its lowest note, which no instrument playing those notes produces energy below.
    for name, notes in (("melody", melody), ("harmony", harmony)):
        if notes:
            lowest = 440.0 * 2 ** ((min(n[2] for n in notes) - 69) / 12)
            sos_p = butter(4, 0.7 * lowest, btype="highpass", fs=rate, output="sos")
            parts[name] = sosfiltfilt(sos_p, parts[name], axis=0).astype(np.float32)
    # Balance: each stem to a target RMS, then one gain so the mix peaks at -1 dBFS.
    target = {"drums": 0.12, "bass": 0.10, "melody": 0.08, "harmony": 0.07, "fx": 0.03}
    for name, y in parts.items():
        rms = float(np.sqrt(np.mean(y ** 2))) + 1e-9
        parts[name] = y * (target[name] / rms)
    if not stereo:
        parts = {k: v.mean(axis=1, keepdims=True) for k, v in parts.items()}
    mix = sum(parts.values())
    g = 10 ** (-1 / 20) / max(1e-9, float(np.abs(mix).max()))
    os.makedirs(os.path.join(out_dir, "stems"), exist_ok=True)
    sf.write(os.path.join(out_dir, "mix.wav"), mix * g, rate, subtype="FLOAT")
    for name in STEMS:
        sf.write(os.path.join(out_dir, "stems", f"{name}.wav"), parts[name] * g, rate, subtype="FLOAT")
    info = dict(seed=seed, rate=rate, channels=2 if stereo else 1, bpm=bpm, key=key, kit=kit, bars=bars,
                bass_program=bass_prog, melody_program=mel_prog, harmony_program=harm_prog,
                chord_voicing="C3" if voicing == 0 else "C4")
    # What each song holds, for `score.py --by`: which patches a method does well or badly on.
    with open(os.path.join(out_dir, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--songs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--bass-octaves", type=int, default=1, choices=[1, 2],
                    help="octaves the bass plays below the chord root: 1 (65-233 Hz, the sets in the README) "
                         "or 2 (33-117 Hz, a low-bass check: E1 on a bass guitar is 41 Hz)")
    args = ap.parse_args()
    for i in range(args.songs):
        d = os.path.join(args.out, f"song_{i + 1:03d}")
        info = song(args.seed * 1000 + i, d, args.seconds, args.bass_octaves)
        print(d, info)


if __name__ == "__main__":
    main()
