#!/usr/bin/env python3
"""Scores stem estimates against an evaluation set made by make_evalset.py.

SDR is BSS Eval v4 as museval computes it (`museval.evaluate`, 1 s windows, 1 s hop), the median
over windows per stem per song (museval's usual summary), then the mean over songs.

Methods:
  stemkit  run `stemkit separate` on each mix (--rate source --bits 32f) and read its stems
  librosa  librosa.effects.hpss: percussive scored as drums (the HPSS baseline)
  oracle   ideal ratio mask from the true stems' STFTs (the ceiling of any STFT mask)

    python3 scripts/evalset/score.py --set /tmp/evalset --method oracle
    python3 scripts/evalset/score.py --set /tmp/evalset --method stemkit --stemkit target/release/stemkit

Needs (PyPI): museval numpy soundfile librosa.
"""
import argparse
import glob
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf

STEMS = ["drums", "bass", "melody", "harmony", "fx"]


def load(path):
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return y, sr


def estimates_oracle(mix, refs, sr):
    import librosa
    specs = {k: np.stack([librosa.stft(r[:, c]) for c in range(r.shape[1])]) for k, r in refs.items()}
    power = sum(np.abs(s) ** 2 for s in specs.values()) + 1e-20
    mixspec = np.stack([librosa.stft(mix[:, c]) for c in range(mix.shape[1])])
    out = {}
    for k, s in specs.items():
        est = mixspec * (np.abs(s) ** 2 / power)
        out[k] = np.stack([librosa.istft(est[c], length=len(mix)) for c in range(mix.shape[1])], axis=1)
    return out


def estimates_librosa(mix, sr):
    import librosa
    _, p = librosa.effects.hpss(mix.T)
    return {"drums": p.T}


def estimates_stemkit(mix_path, exe, stems, extra):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "separate", mix_path, "-o", d, "--rate", "source", "--bits", "32f", "--quiet",
                        "--stems", ",".join(stems)] + extra, check=True)
        out = {}
        for f in glob.glob(os.path.join(d, "*.wav")):
            name = os.path.basename(f).split("_")[1]
            y, _ = load(f)
            out["drums" if name == "percussive" else name] = y
        return out


def sdr(ref, est, sr):
    import museval
    n = min(len(ref), len(est))
    sdr_frames, *_ = museval.evaluate(ref[None, :n], est[None, :n], win=sr, hop=sr)
    return float(np.nanmedian(sdr_frames[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True)
    ap.add_argument("--method", choices=["stemkit", "librosa", "oracle"], required=True)
    ap.add_argument("--stemkit", default="target/release/stemkit")
    ap.add_argument("--stems", default="drums,bass,melody,harmony,fx", help="what to ask stemkit for (--stems)")
    ap.add_argument("--extra", default="", help="more stemkit separate flags, space-separated")
    ap.add_argument("--shares", action="store_true",
                    help="also print where each true source's energy lands: <estimate, source> / <source, source>")
    args = ap.parse_args()
    table = {k: [] for k in STEMS}
    shares = np.zeros((len(STEMS), len(STEMS)))
    songs = 0
    for song in sorted(glob.glob(os.path.join(args.set, "song_*"))):
        mix, sr = load(os.path.join(song, "mix.wav"))
        refs = {k: load(os.path.join(song, "stems", f"{k}.wav"))[0] for k in STEMS}
        if args.method == "oracle":
            est = estimates_oracle(mix, refs, sr)
        elif args.method == "librosa":
            est = estimates_librosa(mix, sr)
        else:
            est = estimates_stemkit(os.path.join(song, "mix.wav"), args.stemkit, args.stems.split(","), args.extra.split())
        row = []
        for k in STEMS:
            if k in est:
                v = sdr(refs[k], est[k], sr)
                table[k].append(v)
                row.append(f"{k} {v:6.2f}")
        print(os.path.basename(song), "  ".join(row))
        if args.shares:
            songs += 1
            for i, ki in enumerate(STEMS):
                r = refs[ki]
                for j, kj in enumerate(STEMS):
                    if kj in est:
                        n = min(len(r), len(est[kj]))
                        shares[i, j] += float((est[kj][:n] * r[:n]).sum() / ((r[:n] ** 2).sum() + 1e-12))
    print("mean SDR (dB):", "  ".join(f"{k} {np.mean(v):.2f}" for k, v in table.items() if v))
    if args.shares and songs:
        print("share of each true source (rows) in each estimate (columns), mean over songs:")
        print("          " + "".join(f"{k:>9}" for k in STEMS))
        for i, k in enumerate(STEMS):
            print(f"{k:>10}" + "".join(f"{v:9.2f}" for v in shares[i] / songs))


if __name__ == "__main__":
    main()
