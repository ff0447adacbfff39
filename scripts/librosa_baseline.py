#!/usr/bin/env python3
"""Times librosa.effects.hpss end to end (decode, HPSS, two inverse STFTs, writing 24-bit WAVs)
on the same input stemkit's bench uses, so the two can be compared on one machine.

    pip install librosa==0.11.0 soundfile
    stemkit bench --seconds 180 --dir /tmp/bench        # writes /tmp/bench/bench_mix.wav
    python3 scripts/librosa_baseline.py /tmp/bench/bench_mix.wav
"""
import sys
import time

import librosa
import soundfile as sf

path = sys.argv[1]
t0 = time.perf_counter()
y, sr = sf.read(path, dtype="float32", always_2d=True)
y = y.T
t1 = time.perf_counter()
h, p = librosa.effects.hpss(y)
t2 = time.perf_counter()
sf.write("/tmp/librosa_harmonic.wav", h.T, sr, subtype="PCM_24")
sf.write("/tmp/librosa_percussive.wav", p.T, sr, subtype="PCM_24")
t3 = time.perf_counter()
seconds = y.shape[-1] / sr
print(f"librosa {librosa.__version__}: {seconds:.1f} s of {y.shape[0]}-channel {sr} Hz audio: "
      f"read {t1 - t0:.2f} s, hpss {t2 - t1:.2f} s, write {t3 - t2:.2f} s, total {t3 - t0:.2f} s "
      f"= {seconds / (t3 - t0):.1f}x real time")
