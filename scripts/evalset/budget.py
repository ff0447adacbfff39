#!/usr/bin/env python3
"""Error budget of stemkit's stems on an evaluation set made by make_evalset.py.

For each target stem k and each true source j, the stem is rescored (museval SDR, as score.py)
with source j's part of it taken out, `ISTFT(M_k · S_j)`, where `M_k` is the stem's mask read
back from its STFT over the mix's (`Re(E_k · conj(X)) / |X|²`, clipped to [0, 1]); for j = k,
with its own loss put back. The gain in dB says how much each intruder (or the loss) costs.

    python3 scripts/evalset/budget.py --set /tmp/fresh --targets drums,harmony,bass

Needs (PyPI): museval numpy soundfile librosa.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import STEMS, load, sdr  # noqa: E402  (the same loading and SDR as the scores)


def main():
    import librosa
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True)
    ap.add_argument("--targets", default="drums,harmony")
    ap.add_argument("--stemkit", default="target/release/stemkit")
    ap.add_argument("--extra", default="--device cpu --no-loudness", help="more stemkit separate flags")
    args = ap.parse_args()

    def stft(y):
        return np.stack([librosa.stft(y[:, c]) for c in range(y.shape[1])])

    def istft(spec, n):
        return np.stack([librosa.istft(spec[c], length=n) for c in range(spec.shape[0])], axis=1)

    gains = {}
    for song in sorted(glob.glob(os.path.join(args.set, "song_*"))):
        mix, sr = load(os.path.join(song, "mix.wav"))
        refs = {k: load(os.path.join(song, "stems", f"{k}.wav"))[0] for k in STEMS}
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([args.stemkit, "separate", os.path.join(song, "mix.wav"), "-o", d, "--rate", "source",
                            "--bits", "32f", "--quiet"] + args.extra.split(), check=True)
            est = {os.path.basename(f).split("_")[1]: load(f)[0] for f in glob.glob(os.path.join(d, "*.wav"))}
        n = len(mix)
        x = stft(mix)
        specs = {k: stft(refs[k]) for k in STEMS}
        for k in args.targets.split(","):
            mask = np.clip(np.real(stft(est[k]) * np.conj(x)) / (np.abs(x) ** 2 + 1e-12), 0, 1)
            base = sdr(refs[k], est[k], sr)
            row = {"sdr": base}
            for j in STEMS:
                part = istft(mask * specs[j], n)
                fixed = est[k] + (refs[k] - part) if j == k else est[k] - part
                row["own loss" if j == k else j] = sdr(refs[k], fixed, sr) - base
            print(os.path.basename(song), k, "  ".join(f"{a} {v:+.2f}" if a != "sdr" else f"sdr {v:.2f}" for a, v in row.items()), flush=True)
            for a, v in row.items():
                gains.setdefault(k, {}).setdefault(a, []).append(v)
    for k, row in gains.items():
        print("mean", k, "  ".join(f"{a} {np.mean(v):+.2f}" if a != "sdr" else f"sdr {np.mean(v):.2f}" for a, v in row.items()))


if __name__ == "__main__":
    main()
