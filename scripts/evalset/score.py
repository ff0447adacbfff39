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
    python3 scripts/evalset/score.py --set /tmp/ev1 --set /tmp/ev2 --method stemkit --by bass_program

`--set` may be given more than once (the means are then over all their songs). `--by KEY` adds
the mean SDR per value of KEY in each song's info.json (written by make_evalset.py):
bass_program, melody_program, harmony_program (GM patches, named) or chord_voicing.

Needs (PyPI): museval numpy soundfile librosa.
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf

STEMS = ["drums", "bass", "melody", "harmony", "fx"]

# The GM patches make_evalset.py draws from (FluidR3_GM names).
GM_NAMES = {
    0: "Acoustic Grand Piano", 4: "Electric Piano 1", 11: "Vibraphone", 16: "Drawbar Organ",
    22: "Harmonica", 24: "Acoustic Guitar (nylon)", 32: "Acoustic Bass", 33: "Electric Bass (finger)",
    34: "Electric Bass (pick)", 35: "Fretless Bass", 38: "Synth Bass 1", 39: "Synth Bass 2",
    40: "Violin", 48: "String Ensemble 1", 49: "String Ensemble 2", 56: "Trumpet", 65: "Alto Sax",
    68: "Oboe", 71: "Clarinet", 73: "Flute", 80: "Lead 1 (square)", 81: "Lead 2 (sawtooth)",
    88: "Pad 1 (new age)", 89: "Pad 2 (warm)", 90: "Pad 3 (polysynth)", 91: "Pad 4 (choir)",
    92: "Pad 5 (bowed)",
}


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
    ap.add_argument("--set", required=True, action="append", help="a set folder (repeatable)")
    ap.add_argument("--method", choices=["stemkit", "librosa", "oracle"], required=True)
    ap.add_argument("--stemkit", default="target/release/stemkit")
    ap.add_argument("--stems", default="drums,bass,melody,harmony,fx", help="what to ask stemkit for (--stems)")
    ap.add_argument("--extra", default="", help="more stemkit separate flags, space-separated")
    ap.add_argument("--by", metavar="KEY",
                    help="also print the mean SDR per value of this info.json key (e.g. bass_program)")
    ap.add_argument("--shares", action="store_true",
                    help="also print where each true source's energy lands: <estimate, source> / <source, source>")
    args = ap.parse_args()
    table = {k: [] for k in STEMS}
    shares = np.zeros((len(STEMS), len(STEMS)))
    songs = 0
    groups = {}
    for song in [s for d in args.set for s in sorted(glob.glob(os.path.join(d, "song_*")))]:
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
        name = os.path.basename(song) if len(args.set) == 1 else os.path.relpath(song, os.path.dirname(os.path.dirname(song)))
        print(name, "  ".join(row))
        if args.by:
            info_path = os.path.join(song, "info.json")
            if not os.path.exists(info_path):
                raise SystemExit(f"{info_path}: missing (--by needs a set made by the current make_evalset.py)")
            with open(info_path) as f:
                value = json.load(f).get(args.by)
            if value is None:
                raise SystemExit(f"{info_path}: no key {args.by!r}")
            groups.setdefault(value, {k: [] for k in STEMS})
            for k in STEMS:
                if k in est:
                    groups[value][k].append(table[k][-1])
        if args.shares:
            songs += 1
            for i, ki in enumerate(STEMS):
                r = refs[ki]
                for j, kj in enumerate(STEMS):
                    if kj in est:
                        n = min(len(r), len(est[kj]))
                        shares[i, j] += float((est[kj][:n] * r[:n]).sum() / ((r[:n] ** 2).sum() + 1e-12))
    print("mean SDR (dB):", "  ".join(f"{k} {np.mean(v):.2f}" for k, v in table.items() if v))
    if args.by:
        print(f"mean SDR (dB) by {args.by}:")
        for value in sorted(groups, key=str):
            g = groups[value]
            label = f"{value} {GM_NAMES[value]}" if args.by.endswith("_program") and value in GM_NAMES else str(value)
            n = max(len(v) for v in g.values())
            print(f"  {label:<28} n={n:<3}", "  ".join(f"{k} {np.mean(v):6.2f}" for k, v in g.items() if v))
    if args.shares and songs:
        print("share of each true source (rows) in each estimate (columns), mean over songs:")
        print("          " + "".join(f"{k:>9}" for k in STEMS))
        for i, k in enumerate(STEMS):
            print(f"{k:>10}" + "".join(f"{v:9.2f}" for v in shares[i] / songs))


if __name__ == "__main__":
    main()
