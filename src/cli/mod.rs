//! The `stemkit` command line: parse → validated config → run → exit code. Errors are printed
//! once, here; exit codes are decided here: 0 all good, 1 some inputs failed (or a null test was
//! above its limit), 2 usage error.

mod bench;
mod compare;
mod demo;
mod devices;
mod merge_reports;
mod null_test;
mod separate;

use crate::error::Error;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Split mixed music masters into production stems (24-bit/48 kHz WAV by default) that sum back
/// to the master.
#[derive(Parser, Debug)]
#[command(name = "stemkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Separate audio files (or folders of them) into stems.
    #[command(after_help = "Examples:\n  stemkit separate spot.wav -o stems/\n  \
        stemkit separate masters/ -o stems/ --bits 16 --rate 44.1k\n  \
        stemkit separate mix.flac -o out/ --stems hpr --margin 3 --kernel 0.2s\n  \
        stemkit separate mix.wav -o out/ --name-template '{track}-{stem}'\n  \
        stemkit separate masters/ -o stems/ --device gpu --fallback cpu --stats\n  \
        stemkit separate catalog/ -o stems/ --jobs 2          (mirrors folders; reruns skip done tracks)\n  \
        stemkit separate catalog/ -o /shared/stems --shard 3/16   (one of 16 cluster tasks)")]
    Separate(SeparateArgs),
    /// Sum stems and compare them with the master; exit 1 if the residual is above --max-dbfs.
    #[command(
        after_help = "Examples:\n  stemkit null-test spot.wav stems/spot_*_48k24b.wav\n  \
        stemkit null-test spot.wav a.wav b.wav --max-dbfs -100"
    )]
    NullTest(null_test::NullTestArgs),
    /// Run the GPU and the CPU on the same inputs and compare their stems (per stem max abs
    /// difference, SNR, time); exit 1 when a stem is below --min-snr.
    #[command(after_help = "Examples:\n  stemkit compare spot.wav\n  \
        stemkit compare masters/ --adapter 1 --json\n  stemkit compare --demo")]
    Compare(compare::CompareArgs),
    /// Synthesise a short mix (drums, bass, chords), separate it, and say where the stems are.
    #[command(after_help = "Example:\n  stemkit demo -o demo-stems/")]
    Demo(demo::DemoArgs),
    /// List the GPU adapters wgpu finds and whether stemkit can use them.
    #[command(
        after_help = "Examples:\n  stemkit devices\n  WGPU_BACKEND=vulkan stemkit devices --json"
    )]
    Devices(devices::DevicesArgs),
    /// Join the live reports of several runs or shards (`--shard K/N`) into one; exit 1 when a
    /// track failed and was never delivered.
    #[command(
        after_help = "Example:\n  stemkit merge-reports out/stemkit-report-shard-*.jsonl -o out/merged.jsonl"
    )]
    MergeReports(merge_reports::MergeReportsArgs),
    /// Measure real-time factor and peak memory of `separate` on synthetic stereo 48 kHz audio.
    #[command(
        after_help = "Examples:\n  stemkit bench --seconds 180\n  stemkit bench --rounds 5 --against-hpr -- --device cpu --no-loudness"
    )]
    Bench(bench::BenchArgs),
}

/// Separation settings shared by `separate`, `demo` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct SeparationArgs {
    /// Stems to deliver: any of `drums,bass,melody,harmony,fx` (a subset adds `rest`, everything
    /// else, unless --no-rest), or `hpr` (harmonic, percussive, and the residual when a margin > 1).
    #[arg(long, default_value = crate::stems::DEFAULT_STEMS)]
    stems: String,
    /// With a subset of the production stems: no `rest` stem (the stems then do not sum to the
    /// master).
    #[arg(long = "no-rest")]
    no_rest: bool,
    /// FFT size (a power of two, 256 to 16384).
    #[arg(long = "n-fft", default_value_t = 2048)]
    n_fft: usize,
    /// Hop in samples (1 to n_fft/2).
    #[arg(long, default_value_t = 512)]
    hop: usize,
    /// Median length: a count (31) sets both filters; a duration (0.2s) sets the harmonic (time)
    /// filter, a bandwidth (500hz) the percussive (frequency) filter.
    #[arg(long)]
    kernel: Option<String>,
    /// Harmonic (time) median length: frames or a duration such as 0.2s. Overrides --kernel.
    #[arg(long = "harmonic-kernel")]
    harmonic_kernel: Option<String>,
    /// Frames between the harmonic median's taps: 1 takes every frame of the kernel (librosa's,
    /// the hpr default), 2 every other frame of the same span (the production default: half the
    /// work, the same stems within 0.05 dB).
    #[arg(long = "harmonic-tap")]
    harmonic_tap: Option<usize>,
    /// Percussive (frequency) median length: bins or a bandwidth such as 500hz. Overrides --kernel.
    #[arg(long = "percussive-kernel")]
    percussive_kernel: Option<String>,
    /// Soft-mask power (> 0), or `inf` for hard masks (default 2 for hpr, librosa's; 4 for the
    /// production stems).
    #[arg(long)]
    power: Option<String>,
    /// HPSS margin ≥ 1: one value, or `harmonic,percussive` (default 1 for hpr, where above 1 the
    /// residual stem appears; 1.2,1.0 for the production stems, whose fx stem is that residual;
    /// their harmonic margin is --mid-margin's in --mid-band).
    #[arg(long)]
    margin: Option<String>,
    /// Bass line f0 range, Hz (`LO-HI`; the default reaches G3, where bass lines stay).
    #[arg(long = "bass-range", default_value = "30-200")]
    bass_range: String,
    /// Melody f0 range, Hz (`LO-HI`).
    #[arg(long = "melody-range", default_value = "100-2000")]
    melody_range: String,
    /// Below this the harmonic part goes to bass whatever the line does (smooth, ±3 semitones).
    #[arg(long = "bass-cutoff", default_value = "100hz")]
    bass_cutoff: String,
    /// The bass stem's share of the bass line's partials fades out around this frequency (half
    /// there, over ±3 semitones).
    #[arg(long = "bass-comb-fade", default_value = "600hz")]
    bass_comb_fade: String,
    /// Width (σ) of the comb around each partial of the bass and melody lines, in cents.
    #[arg(long = "comb-width", default_value = "50")]
    comb_width: String,
    /// The melody's pitch salience is lifted by this many dB per octave of f0: of two lines the
    /// spectrum supports alike, the higher is the melody (0: flat).
    #[arg(
        long = "melody-lift",
        default_value = "1.8db",
        allow_hyphen_values = true
    )]
    melody_lift: String,
    /// The melody tracker's overtone check: spectral peaks between a candidate's partials (at
    /// 1.5, 2.5, … and 1.33, 1.67, … times its f0) count against it with this share of their
    /// vote, so that a lead with a weak fundamental is not tracked an octave or a twelfth high
    /// (0 to 1; `off`: none).
    #[arg(long = "melody-overtones", default_value = "0.5")]
    melody_overtones: String,
    /// Each side of a frame, the span whose pitch candidates decide its point of a line (e.g. 100ms).
    #[arg(long = "track-window", default_value = "100ms")]
    track_window: String,
    /// Length of the steady estimate (the percussive estimate's median along time), e.g. 500ms.
    #[arg(long = "steady-window", default_value = "500ms")]
    steady_window: String,
    /// Steady-gate margin: the drums keep a bin only where the percussive estimate stands above
    /// this many times its steady level; steady noise, risers and hiss go to fx (0: no gate).
    #[arg(long = "steady-margin", default_value = "1.5")]
    steady_margin: String,
    /// Each side of a frame, the span its tonal stability is averaged over, e.g. 170ms.
    #[arg(long = "tonal-window", default_value = "170ms")]
    tonal_window: String,
    /// Tonal stability (0-1) above which a bin's fx share moves to the harmonic stems: held
    /// organ and synth chords stay whole (1: off).
    #[arg(long = "tonal-threshold", default_value = "0.8")]
    tonal_threshold: String,
    /// Below this frequency a drum's decay stays in the drums (a kick's low body rings on after
    /// its attack, where the bass would take it), e.g. 200hz; 0: off.
    #[arg(long = "drum-tail", default_value = "200hz")]
    drum_tail: String,
    /// How far back a drum's decay is followed, e.g. 120ms.
    #[arg(long = "drum-tail-window", default_value = "120ms")]
    drum_tail_window: String,
    /// The fastest decay followed, dB per second (slower ones are held; a bass note's own
    /// partials are never taken).
    #[arg(long = "drum-tail-decay", default_value = "130")]
    drum_tail_decay: String,
    /// Stereo input: the production stems go through a multichannel Wiener filter that learns
    /// where each stem sits between the speakers (over ~11 s segments). On by default; other
    /// channel counts pass unchanged.
    #[arg(long = "spatial", overrides_with = "no_spatial")]
    spatial: bool,
    /// Turn the spatial filter off (the masks alone; faster on the CPU).
    #[arg(long = "no-spatial", overrides_with = "spatial")]
    no_spatial: bool,
    /// The spatial filter acts up to this frequency (`8000hz`), or on `all` bins; above it the
    /// masks stand as they are (`all`: a little more quality for more CPU time).
    #[arg(long = "spatial-max-freq", default_value = "4000hz")]
    spatial_max_freq: String,
    /// Turn off the bass profile: the bass comb's cap on its partials from the bass's partial
    /// profile, learnt per ~11 s segment from the mix (on by default).
    #[arg(long = "no-bass-profile")]
    no_bass_profile: bool,
    /// Harmonic energy more than this many octaves below the bass line's f0 goes to the drums,
    /// not the bass (a kick's low body; no harmonic source sounds below its fundamental); 0: off
    #[arg(long = "drums-below-line", default_value = "1")]
    drums_below_line: String,
    /// The harmonic margin in the low mids (--mid-band) instead of --margin's: 1 leaves no margin
    /// residual (fx) there, so a chord's or a bass's low-mid energy stays harmonic.
    #[arg(long = "mid-margin", default_value = "1.0")]
    mid_margin: String,
    /// The band of --mid-margin, Hz (`LO-HI`), or `off`.
    #[arg(long = "mid-band", default_value = "150-1000")]
    mid_band: String,
    /// The bass profile leaves out the frames where the harmonic part at the bass line's f0 lies
    /// this far under its largest within ±1 s (the bass's rests, where the line holds a chord
    /// tone), in dB, or `off`.
    #[arg(long = "profile-rest", default_value = "15db")]
    profile_rest: String,
    /// The melody is unvoiced in the frames where its line lies more than this many semitones
    /// under the line's median over the segment (~11 s): there the tracker follows an
    /// accompaniment voice while the melody rests (e.g. 12st), or `off`.
    #[arg(long = "melody-floor", default_value = "12st")]
    melody_floor: String,
    /// A bin (150 Hz to 16 kHz) whose magnitude holds at least this share of its level 20-65 ms
    /// later is a note going on, not a hit: its percussive share goes to the harmonic part
    /// (0 to 1), or `off`.
    #[arg(long = "note-sustain", default_value = "0.5")]
    note_sustain: String,
    /// The harmony hold: under 4 kHz, bass, melody and harmony split each bin by their
    /// amplitudes, the harmony's taken as at least its own mean over this many ms each side, so
    /// a held chord tone keeps its part under a bass or melody note, or `off`.
    #[arg(long = "harmony-hold", default_value = "900ms")]
    harmony_hold: String,
}

/// Device settings shared by `separate`, `demo` and `compare`.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Processing device: `auto` (a hardware GPU when there is one, else the CPU), `gpu` or `cpu`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// GPU adapter: an index or part of a name, as `stemkit devices` lists them.
    #[arg(long)]
    adapter: Option<String>,
    /// When the GPU fails mid-run (device lost, out of memory): `none` fails that file, `cpu`
    /// redoes it on the CPU. Either way the batch goes on.
    #[arg(long, default_value = "none")]
    fallback: String,
    /// Frames per GPU chunk (default 2048, fewer where the device's limits require; with the
    /// spatial filter on stereo input, whole segments of 1024 frames at n_fft 2048).
    #[arg(long = "gpu-chunk-frames")]
    gpu_chunk_frames: Option<usize>,
    /// Print device statistics after the run: adapter, chunks, queue submissions, dispatches,
    /// bytes uploaded and read back, GPU time per stage.
    #[arg(long)]
    stats: bool,
}

/// Delivery settings shared by `separate` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Output depth: 16 (TPDF-dithered), 24 or 32f.
    #[arg(long, default_value = "24")]
    bits: String,
    /// Output rate in Hz (48000, 44.1k, 96000, …) or `source`.
    #[arg(long, default_value = "48000")]
    rate: String,
    /// File name template; placeholders {track} {stem} {rate} {depth}.
    #[arg(long = "name-template", default_value = crate::audio::naming::DEFAULT_TEMPLATE)]
    name_template: String,
    /// Skip the EBU R128 loudness and true-peak measurements of the report (faster).
    #[arg(long)]
    no_loudness: bool,
}

#[derive(Args, Debug)]
struct SeparateArgs {
    /// Input files or folders (folders are searched recursively for audio).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (created if missing).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    separation: SeparationArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// No progress bar and no per-track lines; errors are still printed.
    #[arg(short, long)]
    quiet: bool,
    /// Redo tracks whose stems are already there and current (default: skip them).
    #[arg(long)]
    force: bool,
    /// Tracks separated at once; each runs decode, separation and encoding as pipelined stages.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Process only shard K of N (0-based): the tracks whose catalog-relative path hashes to K.
    /// N runs with K = 0 .. N−1 cover the catalog exactly once (Slurm job arrays, Kubernetes
    /// Indexed Jobs).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// The live report (JSON lines, appended as each track finishes; default
    /// OUT/stemkit-report.jsonl, or OUT/stemkit-report-shard-K-of-N.jsonl with --shard).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Separate(args) => separate::run(args),
        Command::NullTest(args) => null_test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::MergeReports(args) => merge_reports::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Compare(args) => compare::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stemkit: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

/// Prints a line to stdout; a closed pipe (`stemkit … | head`) is not an error.
pub(crate) fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

pub(crate) type CliResult = Result<ExitCode, Error>;
