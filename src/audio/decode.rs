//! Streaming decode to planar f32 in [-1, 1]. The format is identified by content (magic bytes),
//! not by extension. WAV goes through hound (8/16/24/32-bit integer, 32-bit float, extensible);
//! what hound cannot read (64-bit float WAV, …) and every other format (FLAC, MP3, Ogg Vorbis,
//! AIFF, ALAC/AAC in MP4, CAF) goes through symphonia. Every failure is one line naming the file.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Accepted sample rates.
pub const RATE_RANGE: (u32, u32) = (8000, 192000);

/// What a decoded input is.
#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: usize,
    /// Frames per channel, when the container says.
    pub frames: Option<u64>,
    /// Format as a person would name it (`WAV 24-bit PCM`, `FLAC`, `MP3`, …).
    pub format: String,
}

/// Container kinds recognised by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Wav,
    Flac,
    Mp3,
    Adts,
    Ogg,
    Aiff,
    Mp4,
    Caf,
}

impl Container {
    fn sniff(head: &[u8]) -> Option<Self> {
        let at =
            |i: usize, tag: &[u8]| head.len() >= i + tag.len() && &head[i..i + tag.len()] == tag;
        if (at(0, b"RIFF") || at(0, b"RF64") || at(0, b"BW64")) && at(8, b"WAVE") {
            Some(Container::Wav)
        } else if at(0, b"fLaC") {
            Some(Container::Flac)
        } else if at(0, b"OggS") {
            Some(Container::Ogg)
        } else if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
            Some(Container::Aiff)
        } else if at(4, b"ftyp") {
            Some(Container::Mp4)
        } else if at(0, b"caff") {
            Some(Container::Caf)
        } else if at(0, b"ID3") {
            Some(Container::Mp3)
        } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xF6 == 0xF0 {
            Some(Container::Adts)
        } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 {
            Some(Container::Mp3)
        } else {
            None
        }
    }

    /// Extensions that name this container.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Container::Wav => &["wav", "wave", "bwf"],
            Container::Flac => &["flac"],
            Container::Mp3 => &["mp3", "mp2", "mpga"],
            Container::Adts => &["aac", "adts"],
            Container::Ogg => &["ogg", "oga", "opus"],
            Container::Aiff => &["aif", "aiff", "aifc"],
            Container::Mp4 => &["m4a", "mp4", "alac", "m4b"],
            Container::Caf => &["caf"],
        }
    }

    fn hint(self) -> &'static str {
        self.extensions()[0]
    }
}

/// Extensions taken as audio when walking folders.
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "bwf", "flac", "mp3", "ogg", "oga", "aif", "aiff", "aifc", "m4a", "mp4", "alac",
    "caf", "aac",
];

/// True if `path` should be treated as audio when walking a folder: a known audio extension or
/// recognised content.
pub fn looks_like_audio(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.as_str())) {
        return true;
    }
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .is_ok_and(|n| Container::sniff(&head[..n]).is_some())
}

/// Integer or float PCM layouts decoded straight from the data chunk's bytes.
#[derive(Clone, Copy, Debug)]
enum Pcm {
    U8,
    I16,
    I24,
    I32,
    F32,
}

impl Pcm {
    fn bytes(self) -> usize {
        match self {
            Pcm::U8 => 1,
            Pcm::I16 => 2,
            Pcm::I24 => 3,
            Pcm::I32 | Pcm::F32 => 4,
        }
    }
}

enum Backend {
    /// hound parsed the header; samples are converted in bulk from the data chunk.
    Pcm {
        reader: BufReader<File>,
        pcm: Pcm,
        left: u64,
        bytes: Vec<u8>,
    },
    Symphonia {
        format: Box<dyn FormatReader>,
        decoder: Box<dyn Decoder>,
        track: u32,
        pending: Vec<Vec<f32>>,
        pos: usize,
        done: bool,
    },
}

/// A streaming decoder.
pub struct AudioReader {
    path: PathBuf,
    info: InputInfo,
    backend: Backend,
    frames_read: u64,
    mismatch: bool,
}

impl AudioReader {
    /// Opens `path`, identifying the format by its content.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file =
            File::open(path).map_err(|e| Error::bad_input(path, format!("cannot open: {e}")))?;
        let mut head = [0u8; 16];
        let n = read_head(&mut file, &mut head)
            .map_err(|e| Error::bad_input(path, format!("cannot read: {e}")))?;
        if n == 0 {
            return Err(Error::bad_input(path, "file is empty (0 bytes)"));
        }
        let container = Container::sniff(&head[..n])
            .ok_or_else(|| Error::bad_input(path, "not an audio file (unrecognised content)"))?;
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let mismatch = ext.is_some_and(|e| {
            AUDIO_EXTENSIONS.contains(&e.as_str()) && !container.extensions().contains(&e.as_str())
        });
        let mut reader = if container == Container::Wav {
            match open_hound(path)? {
                Some(r) => r,
                None => open_symphonia(path, container)?,
            }
        } else {
            open_symphonia(path, container)?
        };
        reader.mismatch = mismatch;
        let (lo, hi) = RATE_RANGE;
        let rate = reader.info.sample_rate;
        if !(lo..=hi).contains(&rate) {
            return Err(Error::bad_input(
                path,
                format!("unsupported sample rate {rate} Hz (stemkit takes {lo} to {hi} Hz)"),
            ));
        }
        if reader.info.channels == 0 {
            return Err(Error::bad_input(path, "no channels"));
        }
        Ok(reader)
    }

    /// Format, rate, channels and length.
    pub fn info(&self) -> &InputInfo {
        &self.info
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the extension names another audio format than the content (decoded by content).
    pub fn extension_mismatch(&self) -> bool {
        self.mismatch
    }

    /// Reads up to `max_frames` frames, appending each channel's samples to `out[ch]`; returns the
    /// frames read, 0 at the end. NaN or infinite samples and truncated data are errors.
    pub fn read(&mut self, out: &mut [Vec<f32>], max_frames: usize) -> Result<usize> {
        let channels = self.info.channels;
        assert_eq!(out.len(), channels, "one output Vec per channel");
        let start_lens: Vec<usize> = out.iter().map(Vec::len).collect();
        let n = match &mut self.backend {
            Backend::Pcm {
                reader,
                pcm,
                left,
                bytes,
            } => {
                let n = (*left).min(max_frames as u64) as usize;
                let size = pcm.bytes();
                bytes.resize(n * channels * size, 0);
                let got = read_full(reader, bytes).map_err(|e| Error::io(&self.path, e))?;
                if got < bytes.len() {
                    let claimed = self.info.frames.unwrap_or(0);
                    let held = self.frames_read + (got / (channels * size)) as u64;
                    return Err(Error::bad_input(
                        &self.path,
                        format!("truncated audio data: the header says {claimed} frames, the file holds {held}"),
                    ));
                }
                for o in out.iter_mut() {
                    o.reserve(n);
                }
                // One loop per layout, so the conversion is not re-decided per sample.
                fn convert<const W: usize>(
                    bytes: &[u8],
                    out: &mut [Vec<f32>],
                    f: impl Fn([u8; W]) -> f32,
                ) {
                    let frame = out.len() * W;
                    for fr in bytes.chunks_exact(frame) {
                        for (o, b) in out.iter_mut().zip(fr.chunks_exact(W)) {
                            o.push(f(b.try_into().expect("W bytes")));
                        }
                    }
                }
                match pcm {
                    Pcm::U8 => convert::<1>(bytes, out, |b| (b[0] as f32 - 128.0) * (1.0 / 128.0)),
                    Pcm::I16 => convert::<2>(bytes, out, |b| {
                        i16::from_le_bytes(b) as f32 * (1.0 / 32768.0)
                    }),
                    Pcm::I24 => convert::<3>(bytes, out, |b| {
                        (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32
                            * (1.0 / 8_388_608.0)
                    }),
                    Pcm::I32 => convert::<4>(bytes, out, |b| {
                        i32::from_le_bytes(b) as f32 * (1.0 / 2_147_483_648.0)
                    }),
                    Pcm::F32 => convert::<4>(bytes, out, f32::from_le_bytes),
                }
                *left -= n as u64;
                n
            }
            Backend::Symphonia {
                format,
                decoder,
                track,
                pending,
                pos,
                done,
            } => {
                let mut got = 0;
                while got < max_frames {
                    let avail = pending.first().map_or(0, |p| p.len()) - *pos;
                    if avail > 0 {
                        let take = avail.min(max_frames - got);
                        for (o, p) in out.iter_mut().zip(pending.iter()) {
                            o.extend_from_slice(&p[*pos..*pos + take]);
                        }
                        *pos += take;
                        got += take;
                        continue;
                    }
                    if *done {
                        break;
                    }
                    pending.iter_mut().for_each(Vec::clear);
                    *pos = 0;
                    if !decode_packet(
                        &self.path,
                        format.as_mut(),
                        decoder.as_mut(),
                        *track,
                        channels,
                        pending,
                    )? {
                        *done = true;
                    }
                }
                got
            }
        };
        // Reject non-finite samples (float files can hold them), naming where.
        for (ch, (o, &s)) in out.iter().zip(&start_lens).enumerate() {
            if let Some(i) = o[s..].iter().position(|v| !v.is_finite()) {
                return Err(Error::bad_input(
                    &self.path,
                    format!(
                        "contains NaN or infinite samples (first at frame {}, channel {ch})",
                        self.frames_read + i as u64
                    ),
                ));
            }
        }
        self.frames_read += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_head(file: &mut File, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        let k = file.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// hound parses the header of the WAV layouts read in bulk here; `None` hands the file to symphonia.
fn open_hound(path: &Path) -> Result<Option<AudioReader>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = match hound::WavReader::new(BufReader::with_capacity(1 << 20, file)) {
        Ok(r) => r,
        Err(hound::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(Error::bad_input(path, "truncated WAV header"))
        }
        // A layout hound does not take (64-bit float, ADPCM, …): symphonia may; if it cannot
        // either, hound's reason is the clearer one.
        Err(e) => {
            return open_symphonia(path, Container::Wav)
                .map(Some)
                .map_err(|_| Error::bad_input(path, format!("malformed or unsupported WAV: {e}")))
        }
    };
    let spec = reader.spec();
    let float = spec.sample_format == hound::SampleFormat::Float;
    let channels = spec.channels as usize;
    let frames = reader.duration() as u64;
    let format = if float {
        "WAV 32-bit float".to_string()
    } else {
        format!("WAV {}-bit PCM", spec.bits_per_sample)
    };
    let pcm = match (float, spec.bits_per_sample) {
        (true, 32) => Some(Pcm::F32),
        (false, 8) => Some(Pcm::U8),
        (false, 16) => Some(Pcm::I16),
        (false, 24) => Some(Pcm::I24),
        (false, 32) => Some(Pcm::I32),
        _ => None,
    };
    // Other layouts (e.g. 20-bit samples) go to symphonia.
    let Some(pcm) = pcm else { return Ok(None) };
    // hound leaves its reader at the first byte of the data chunk.
    Ok(Some(AudioReader {
        path: path.to_path_buf(),
        info: InputInfo {
            sample_rate: spec.sample_rate,
            channels,
            frames: Some(frames),
            format,
        },
        backend: Backend::Pcm {
            reader: reader.into_inner(),
            pcm,
            left: frames,
            bytes: Vec::new(),
        },
        frames_read: 0,
        mismatch: false,
    }))
}

fn open_symphonia(path: &Path, container: Container) -> Result<AudioReader> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(container.hint());
    let opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &opts, &MetadataOptions::default())
        .map_err(|e| symphonia_error(path, e, "cannot read the container"))?;
    let format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Error::bad_input(path, "no audio track"))?;
    let params = track.codec_params.clone();
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| match e {
            symphonia::core::errors::Error::Unsupported(what) => Error::Unsupported {
                path: path.to_path_buf(),
                reason: format!("codec not supported ({what})"),
            },
            other => symphonia_error(path, other, "cannot start the decoder"),
        })?;
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_uppercase())
        .unwrap_or_else(|| "audio".into());
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let sample_rate = params
        .sample_rate
        .ok_or_else(|| Error::bad_input(path, "no sample rate in the stream"))?;
    let name = match container {
        Container::Wav => format!("WAV {codec}"),
        Container::Flac => "FLAC".into(),
        Container::Mp3 => "MP3".into(),
        Container::Adts => "AAC (ADTS)".into(),
        Container::Ogg => format!("Ogg {codec}"),
        Container::Aiff => format!("AIFF {codec}"),
        Container::Mp4 => format!("MP4 {codec}"),
        Container::Caf => format!("CAF {codec}"),
    };
    let track_id = track.id;
    let (mut format, mut decoder) = (format, decoder);
    let mut pending = vec![Vec::new(); channels];
    let mut done = false;
    if channels == 0 {
        // Some containers (ALAC in MP4) state the layout only in the first decoded packet.
        let mut first = Vec::new();
        done = !decode_first(
            path,
            format.as_mut(),
            decoder.as_mut(),
            track_id,
            &mut first,
        )?;
        channels = first.len();
        pending = first;
    }
    Ok(AudioReader {
        path: path.to_path_buf(),
        info: InputInfo {
            sample_rate,
            channels,
            frames: params.n_frames,
            format: name,
        },
        backend: Backend::Symphonia {
            format,
            decoder,
            track: track_id,
            pending,
            pos: 0,
            done,
        },
        frames_read: 0,
        mismatch: false,
    })
}

/// Decodes the next packet of `track` into `pending`; false at the end of the stream.
fn decode_packet(
    path: &Path,
    format: &mut dyn FormatReader,
    decoder: &mut dyn Decoder,
    track: u32,
    channels: usize,
    pending: &mut [Vec<f32>],
) -> Result<bool> {
    use symphonia::core::errors::Error as E;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(E::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(false)
            }
            Err(E::ResetRequired) => return Ok(false),
            Err(e) => return Err(symphonia_error(path, e, "cannot read the stream")),
        };
        if packet.track_id() != track {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(e) => return Err(symphonia_error(path, e, "cannot decode the audio")),
        };
        let spec = *decoded.spec();
        if spec.channels.count() != channels {
            return Err(Error::bad_input(
                path,
                "the channel count changes mid-stream",
            ));
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let mut buf = SampleBuffer::<f32>::new(frames as u64, spec);
        buf.copy_planar_ref(decoded);
        for (ch, p) in pending.iter_mut().enumerate() {
            p.extend_from_slice(&buf.samples()[ch * frames..(ch + 1) * frames]);
        }
        return Ok(true);
    }
}

/// Decodes the first packet of `track` into `pending` (sized to its channel count); false at the
/// end of the stream.
fn decode_first(
    path: &Path,
    format: &mut dyn FormatReader,
    decoder: &mut dyn Decoder,
    track: u32,
    pending: &mut Vec<Vec<f32>>,
) -> Result<bool> {
    use symphonia::core::errors::Error as E;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(E::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(false)
            }
            Err(e) => return Err(symphonia_error(path, e, "cannot read the stream")),
        };
        if packet.track_id() != track {
            continue;
        }
        let decoded = decoder
            .decode(&packet)
            .map_err(|e| symphonia_error(path, e, "cannot decode the audio"))?;
        let spec = *decoded.spec();
        *pending = vec![Vec::new(); spec.channels.count()];
        let frames = decoded.frames();
        let mut buf = SampleBuffer::<f32>::new(frames as u64, spec);
        buf.copy_planar_ref(decoded);
        for (ch, p) in pending.iter_mut().enumerate() {
            p.extend_from_slice(&buf.samples()[ch * frames..(ch + 1) * frames]);
        }
        return Ok(true);
    }
}

fn symphonia_error(path: &Path, e: symphonia::core::errors::Error, what: &str) -> Error {
    use symphonia::core::errors::Error as E;
    match e {
        E::Unsupported(s) => Error::Unsupported {
            path: path.to_path_buf(),
            reason: s.to_string(),
        },
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::bad_input(path, format!("{what}: truncated"))
        }
        E::IoError(io) => Error::bad_input(path, format!("{what}: {io}")),
        E::DecodeError(s) => Error::bad_input(path, format!("{what}: corrupt data ({s})")),
        other => Error::bad_input(path, format!("{what}: {other}")),
    }
}

/// Decodes a whole file: (info, planar samples).
pub fn read_all(path: &Path) -> Result<(InputInfo, Vec<Vec<f32>>)> {
    let mut r = AudioReader::open(path)?;
    let mut out = vec![Vec::new(); r.info.channels];
    while r.read(&mut out, 1 << 16)? > 0 {}
    let mut info = r.info.clone();
    info.frames = Some(out.first().map_or(0, Vec::len) as u64);
    Ok((info, out))
}
