#!/usr/bin/env python3
"""What a perfect split between two of stemkit's stems would be worth, on a set made by make_evalset.py.

For each song, the two stems' masks are read back from their STFTs over the mix's
(`Re(E_k · conj(X)) / |X|²`, clipped to [0, 1]); inside a frequency band their summed share is then
split again by the true sources' power ratio (`|S_a|² / (|S_a|² + |S_b|²)`), outside it they stand.
The stems are rescored (museval SDR, as score.py). Every other stem and the pair's summed share
are left as stemkit made them, so the gain is the ceiling of any better rule between the two
inside the band, not of the separation as a whole (the oracle ratio mask in score.py is that).

    python3 scripts/evalset/split_ceiling.py --set /tmp/ev/s10 --pair bass,harmony --band 150,1000

Needs (PyPI): museval numpy soundfile librosa.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import load, sdr  # noqa: E402  (the same loading and SDR as the scores)


def song_gain(job):
    import librosa
    song, exe, extra, (a, b), (lo, hi) = job
    mix, sr = load(os.path.join(song, "mix.wav"))
    refs = {k: load(os.path.join(song, "stems", f"{k}.wav"))[0] for k in (a, b)}
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "separate", os.path.join(song, "mix.wav"), "-o", d, "--rate", "source",
                        "--bits", "32f", "--quiet"] + extra, check=True)
        est = {os.path.basename(f).split("_")[1]: load(f)[0] for f in glob.glob(os.path.join(d, "*.wav"))}
    n = len(mix)
    freqs = librosa.fft_frequencies(sr=sr)
    band = ((freqs >= lo) & (freqs < hi))[:, None]
    split = {a: np.zeros_like(mix), b: np.zeros_like(mix)}
    for c in range(mix.shape[1]):
        x = librosa.stft(mix[:, c])
        m = {k: np.clip(np.real(librosa.stft(est[k][:, c]) * np.conj(x)) / (np.abs(x) ** 2 + 1e-12), 0, 1)
             for k in (a, b)}
        pa, pb = (np.abs(librosa.stft(refs[k][:, c])) ** 2 for k in (a, b))
        share = pa / (pa + pb + 1e-20)
        both = m[a] + m[b]
        ma, mb = np.where(band, both * share, m[a]), np.where(band, both * (1 - share), m[b])
        split[a][:, c] = librosa.istft(ma * x, length=n)
        split[b][:, c] = librosa.istft(mb * x, length=n)
    return song, {k: (sdr(refs[k], est[k], sr), sdr(refs[k], split[k], sr)) for k in (a, b)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, action="append", help="a set folder (repeatable)")
    ap.add_argument("--pair", default="bass,harmony", help="the two stems to split again")
    ap.add_argument("--band", default="150,1000", help="low,high Hz of the band split again")
    ap.add_argument("--stemkit", default="target/release/stemkit")
    ap.add_argument("--extra", default="--device cpu --no-loudness", help="more stemkit separate flags")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    pair = tuple(args.pair.split(","))
    band = tuple(float(v) for v in args.band.split(","))
    songs = [s for st in args.set for s in sorted(glob.glob(os.path.join(st, "song_*")))]
    with Pool(args.jobs) as pool:
        rows = pool.map(song_gain, [(s, args.stemkit, args.extra.split(), pair, band) for s in songs])
    for song, r in rows:
        print(os.path.relpath(song), "  ".join(f"{k} {v[0]:.2f} -> {v[1]:.2f}" for k, v in r.items()))
    print(f"mean over {len(rows)} songs, {pair[0]}/{pair[1]} split by the true power ratio in "
          f"{band[0]:.0f}-{band[1]:.0f} Hz:", "  ".join(
              f"{k} {np.mean([r[k][0] for _, r in rows]):.2f} -> {np.mean([r[k][1] for _, r in rows]):.2f}"
              for k in pair))


if __name__ == "__main__":
    main()
