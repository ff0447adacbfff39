//! Audio in and out: every WAV layout round trip, the codec fixtures (FLAC, AIFF, ALAC exact;
//! MP3 and Ogg close), content over extension, and that an unfinished writer leaves nothing.

mod common;

use std::path::{Path, PathBuf};
use stemkit::audio::decode::{read_all, AudioReader};
use stemkit::audio::encode::{write_wav, SampleFormat, WavSink};
use stemkit::rng::Rng;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codecs")
        .join(name)
}

fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (g, w))| (i, *g, *w))
}

#[test]
fn hound_written_wavs_decode_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(21);
    for (bits, float) in [
        (8u16, false),
        (16, false),
        (24, false),
        (32, false),
        (32, true),
    ] {
        for channels in [1usize, 2, 6] {
            let path = tmp.path().join(format!("b{bits}{float}c{channels}.wav"));
            let spec = hound::WavSpec {
                channels: channels as u16,
                sample_rate: 44100,
                bits_per_sample: bits,
                sample_format: if float {
                    hound::SampleFormat::Float
                } else {
                    hound::SampleFormat::Int
                },
            };
            let frames = 1001;
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            let mut want = vec![Vec::new(); channels];
            let full = 1i64 << (bits - 1);
            for _ in 0..frames {
                for ch in want.iter_mut() {
                    if float {
                        let v = rng.signed();
                        w.write_sample(v).unwrap();
                        ch.push(v);
                    } else {
                        let q = ((rng.signed() as f64) * full as f64).floor() as i64;
                        let q = q.clamp(-full, full - 1) as i32;
                        if bits == 8 {
                            w.write_sample(q as i8).unwrap();
                        } else {
                            w.write_sample(q).unwrap();
                        }
                        ch.push((q as f64 / full as f64) as f32);
                    }
                }
            }
            w.finalize().unwrap();
            let (info, got) = read_all(&path).unwrap();
            assert_eq!(
                (info.sample_rate, info.channels, info.frames),
                (44100, channels, Some(frames))
            );
            for ch in 0..channels {
                if let Some(d) = first_difference(&got[ch], &want[ch]) {
                    panic!("{bits}-bit float={float} {channels}ch, channel {ch}: first difference {d:?}");
                }
            }
        }
    }
}

#[test]
fn our_wavs_round_trip_at_every_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(5);
    for format in [
        SampleFormat::Int16,
        SampleFormat::Int24,
        SampleFormat::Float32,
    ] {
        for channels in [1usize, 2, 6] {
            let x: Vec<Vec<f32>> = (0..channels)
                .map(|_| rng.signal(4097).iter().map(|v| v * 0.9).collect())
                .collect();
            let path = tmp
                .path()
                .join(format!("{}_{channels}.wav", format.label()));
            let mut sink = WavSink::create(&path, 48000, channels, format, 1).unwrap();
            let mut written = x.clone();
            sink.write(&mut written).unwrap();
            sink.finish(false).unwrap();
            let (info, got) = read_all(&path).unwrap();
            assert_eq!((info.sample_rate, info.channels), (48000, channels));
            let lsb = match format {
                SampleFormat::Int16 => 1.0 / 32768.0,
                SampleFormat::Int24 => 1.0 / 8388608.0,
                SampleFormat::Float32 => 0.0,
            };
            let mut mean = 0.0f64;
            for ch in 0..channels {
                // What the sink said it wrote is exactly what a reader decodes.
                if let Some(d) = first_difference(&got[ch], &written[ch]) {
                    panic!("{format:?} {channels}ch: decoded differs from the reported values at {d:?}");
                }
                for (g, w) in got[ch].iter().zip(&x[ch]) {
                    let err = (g - w).abs();
                    // 24-bit: rounding, ≤ ½ LSB. 16-bit: TPDF dither ±1 LSB plus rounding.
                    let bound = if format == SampleFormat::Int16 {
                        1.5 * lsb
                    } else {
                        0.5 * lsb + 1e-9
                    };
                    assert!(err <= bound, "{format:?}: error {err} > {bound}");
                    mean += (g - w) as f64;
                }
            }
            let mean = mean / (channels * 4097) as f64;
            assert!(
                mean.abs() < 0.05 * lsb.max(1e-9) as f64 + 1e-12 || format != SampleFormat::Int16,
                "dither bias {mean}"
            );
        }
    }
}

#[test]
fn a_sink_writes_the_same_bytes_however_the_samples_are_cut() {
    // Longer than the sink's encoding piece (16 Ki frames), and not a multiple of it: one call
    // against uneven calls, byte for byte (16-bit dither included), and the values the sink
    // reports are those a reader decodes.
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    const N: usize = 40_001;
    for format in [
        SampleFormat::Int16,
        SampleFormat::Int24,
        SampleFormat::Float32,
    ] {
        for channels in [1usize, 2, 3] {
            let x: Vec<Vec<f32>> = (0..channels)
                .map(|_| rng.signal(N).iter().map(|v| v * 1.1).collect())
                .collect();
            let write = |name: &str, cuts: &[usize]| {
                let path = tmp.path().join(name);
                let mut sink = WavSink::create(&path, 44100, channels, format, 3).unwrap();
                let mut reported: Vec<Vec<f32>> = vec![Vec::new(); channels];
                let mut at = 0;
                for &end in cuts.iter().chain([N].iter()) {
                    let mut piece: Vec<Vec<f32>> = x.iter().map(|c| c[at..end].to_vec()).collect();
                    sink.write(&mut piece).unwrap();
                    for (r, p) in reported.iter_mut().zip(piece) {
                        r.extend(p);
                    }
                    at = end;
                }
                assert_eq!(sink.frames(), N as u64);
                sink.finish(false).unwrap();
                (std::fs::read(&path).unwrap(), reported, path)
            };
            let label = format!("{}_{channels}", format.label());
            let (whole, reported, path) = write(&format!("{label}_whole.wav"), &[]);
            let (cut, _, _) = write(&format!("{label}_cut.wav"), &[1, 16_384, 16_385, 39_000]);
            if let Some(i) = whole.iter().zip(&cut).position(|(a, b)| a != b) {
                panic!("{label}: byte {i} differs ({} vs {})", whole[i], cut[i]);
            }
            assert_eq!(whole.len(), cut.len(), "{label}: file lengths");
            let (_, got) = read_all(&path).unwrap();
            for ch in 0..channels {
                if let Some(d) = first_difference(&got[ch], &reported[ch]) {
                    panic!("{label}: decoded differs from the reported values at {d:?}");
                }
            }
        }
    }
}

#[test]
fn float64_wav_decodes_through_the_fallback() {
    // hound cannot read 64-bit float; the bytes are written by hand (WAVE_FORMAT_IEEE_FLOAT).
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f64.wav");
    let samples: Vec<f64> = (0..3000).map(|i| (i as f64 * 0.01).sin() * 0.5).collect();
    let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 26 + 8 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&18u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&22050u32.to_le_bytes());
    b.extend_from_slice(&(22050u32 * 8).to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(&path, b).unwrap();
    let (info, got) = read_all(&path).unwrap();
    assert_eq!(
        (info.sample_rate, info.channels, got[0].len()),
        (22050, 1, 3000)
    );
    for (i, (g, w)) in got[0].iter().zip(&samples).enumerate() {
        assert_eq!(*g, *w as f32, "sample {i}");
    }
}

fn source() -> Vec<Vec<f32>> {
    read_all(&fixture("source.wav")).unwrap().1
}

#[test]
fn lossless_codecs_decode_exactly() {
    let want = source();
    for name in ["tone.flac", "tone.aiff", "tone.m4a"] {
        let (info, got) = read_all(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.sample_rate, info.channels), (44100, 2), "{name}");
        for ch in 0..2 {
            assert_eq!(got[ch].len(), want[ch].len(), "{name} length");
            if let Some(d) = first_difference(&got[ch], &want[ch]) {
                panic!("{name} channel {ch}: first difference {d:?}");
            }
        }
    }
}

#[test]
fn lossy_codecs_decode_close() {
    let want = source();
    for (name, min_snr) in [("tone.mp3", 20.0), ("tone.ogg", 20.0)] {
        let (info, got) = read_all(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.sample_rate, info.channels), (44100, 2), "{name}");
        let n = want[0].len();
        assert!(
            got[0].len().abs_diff(n) <= 1152,
            "{name}: {} frames, source {n}",
            got[0].len()
        );
        let m = got[0].len().min(n);
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for ch in 0..2 {
            for i in 2000..m - 2000 {
                sig += (want[ch][i] as f64).powi(2);
                err += (got[ch][i] as f64 - want[ch][i] as f64).powi(2);
            }
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(
            snr > min_snr,
            "{name}: SNR {snr:.1} dB vs the source (gapless alignment?)"
        );
    }
}

#[test]
fn content_decides_not_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let disguised = tmp.path().join("really_flac.wav");
    std::fs::copy(fixture("tone.flac"), &disguised).unwrap();
    let r = AudioReader::open(&disguised).unwrap();
    assert!(r.extension_mismatch());
    assert!(r.info().format.contains("FLAC"), "{}", r.info().format);
    let text = tmp.path().join("notes.flac");
    std::fs::write(&text, "hello").unwrap();
    let e = AudioReader::open(&text)
        .err()
        .expect("text is not audio")
        .to_string();
    assert!(
        e.contains("notes.flac") && e.contains("not an audio file"),
        "{e}"
    );
}

#[test]
fn unfinished_writer_leaves_nothing_and_finish_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("stem.wav");
    {
        let mut sink = WavSink::create(&path, 48000, 2, SampleFormat::Int24, 0).unwrap();
        sink.write(&mut [vec![0.1; 100], vec![0.2; 100]]).unwrap();
        // Dropped without finish: as if the run were interrupted.
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    write_wav(&path, &[vec![0.1; 100]], 48000, SampleFormat::Int24).unwrap();
    let sink = WavSink::create(&path, 48000, 1, SampleFormat::Int24, 0).unwrap();
    assert!(
        sink.finish(false).is_err(),
        "finish(false) must not overwrite"
    );
    assert_eq!(
        read_all(&path).unwrap().1[0].len(),
        100,
        "the existing file is intact"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn truncation_is_reported_with_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.wav");
    write_wav(&path, &[vec![0.1; 10000]], 48000, SampleFormat::Int16).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5000]).unwrap();
    let e = read_all(Path::new(&path))
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("truncated") && e.contains("10000"), "{e}");
}
