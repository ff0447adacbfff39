#!/usr/bin/env python3
"""The ceiling of any STFT mask on the synthetic mix of tests/production.rs.

Rebuilds that test's four parts (a bass line A1 C2 E2 G1, a lead E5/A5 with vibrato, a C major pad
around middle C, a click every 250 ms; the clicks' noise differs from the Rust RNG's) for both of
its recipes (the known-answer mix: a round bass, partials falling 12 dB per octave, and a pad as
loud as the lead; the dense mix: a bright bass, 6 dB per octave, 11 dB over a quiet pad) and
prints, for each part, the share of its energy that the ideal ratio mask (|S_k|^2 / sum |S_j|^2
on librosa's default STFT) puts in its own stem: first on the whole mix, then on pairs of parts.

    python3 scripts/evalset/synthetic_oracle.py

Needs (PyPI): numpy librosa.
"""
import librosa
import numpy as np

RATE = 48000
N = 4 * RATE
T = np.arange(N) / RATE


def midi(m):
    return 440.0 * 2 ** ((np.asarray(m, dtype=float) - 69) / 12)


def tone(f0, partials, amp, rolloff=1.0):
    phase = np.cumsum(2 * np.pi * f0 / RATE)
    return amp * sum(np.sin(h * phase) / h ** rolloff * (h * f0 < RATE / 2) for h in range(1, partials + 1))


# (bass rolloff, pad amplitude) of tests/production.rs's KNOWN_ANSWER and DENSE recipes.
RECIPES = {"known-answer": (2.0, 0.08), "dense": (1.0, 0.05)}


def parts(bass_rolloff, pad_amp):
    bass = tone(midi(np.array([33, 36, 40, 31])[np.minimum(T.astype(int), 3)]), 8, 0.30, bass_rolloff)
    lead = tone(midi(np.where(T < 2, 76, 81)) * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * T)), 10, 0.12)
    pad = sum(tone(midi(m) + 0 * T, 6, pad_amp) for m in (60, 64, 67)) * np.minimum(T / 0.2, 1)
    k = np.arange(N) % (RATE // 4)
    clicks = 0.8 * np.exp(-k / (0.004 * RATE)) * np.random.default_rng(11).uniform(-1, 1, N)
    return {"bass": bass, "melody": lead, "harmony": pad, "drums": clicks}


def oracle(p, keys):
    spec = {k: librosa.stft(p[k].astype(np.float32)) for k in keys}
    mix = sum(spec.values())
    power = sum(np.abs(s) ** 2 for s in spec.values()) + 1e-20
    out = {}
    for k in keys:
        est = librosa.istft(mix * np.abs(spec[k]) ** 2 / power, length=N)
        out[k] = float(est @ p[k] / (p[k] @ p[k]))
    return out


def main():
    for name, recipe in RECIPES.items():
        p = parts(*recipe)
        for keys in (list(p), ["harmony", "bass"], ["harmony", "drums"], ["harmony", "melody"]):
            print(f"{name}: " + " + ".join(keys) + ": "
                  + ", ".join(f"{k} {v:.2f}" for k, v in oracle(p, keys).items()))


if __name__ == "__main__":
    main()
