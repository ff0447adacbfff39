//! Device choice: the CPU separator or the GPU one, picked once per run (`--device`), built once
//! per sample rate and reused for every track. Both are
//! [`BlockEngine`](crate::stream::BlockEngine)s driven by the same [`BlockStream`], so everything
//! above this module is device-agnostic.

use crate::error::{Error, Result};
use crate::gpu::{AdapterSelector, GpuContext, GpuSeparator};
use crate::separator::{SeparationParams, SeparationSpec, Separator};
use crate::stems::Stem;
use crate::stream::BlockStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Frames per GPU chunk unless `--gpu-chunk-frames` says otherwise (about 22 s at 48 kHz with
/// hop 512; the engine splits chunks further where the device's limits require).
pub const GPU_BLOCK_FRAMES: usize = 2048;

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU when a usable one exists, else the CPU (with one line saying so). A
    /// software adapter (lavapipe, WARP) is slower than the CPU engine, so `auto` passes it
    /// over unless `--adapter` names it.
    Auto,
    /// The GPU or an error.
    Gpu,
    /// The CPU.
    Cpu,
}

impl DeviceChoice {
    /// Parses `auto`, `gpu` or `cpu`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => Err(Error::param(
                "--device",
                format!("expected auto, gpu or cpu, got {other:?}"),
            )),
        }
    }
}

/// One sample rate's separator on the chosen device.
#[derive(Clone)]
pub enum Engine {
    /// The rayon CPU separator.
    Cpu(Arc<Separator>),
    /// The wgpu separator.
    Gpu(Arc<GpuSeparator>),
}

/// A track streaming through an [`Engine`].
pub enum EngineStream<'a> {
    /// On the CPU.
    Cpu(BlockStream<'a, Separator>),
    /// On the GPU.
    Gpu(BlockStream<'a, GpuSeparator>),
}

impl Engine {
    /// The parameters in force.
    pub fn params(&self) -> &SeparationParams {
        match self {
            Engine::Cpu(s) => s.params(),
            Engine::Gpu(s) => crate::stream::BlockEngine::params(s.as_ref()),
        }
    }

    /// Starts a track of `channels` channels.
    pub fn stream(&self, channels: usize) -> EngineStream<'_> {
        match self {
            Engine::Cpu(s) => EngineStream::Cpu(BlockStream::new(s.as_ref(), channels)),
            Engine::Gpu(s) => EngineStream::Gpu(BlockStream::new(s.as_ref(), channels)),
        }
    }

    /// The stems produced, in output order.
    pub fn stems(&self) -> Vec<Stem> {
        self.params().stems.stems()
    }

    /// An empty `[stem][channel]` buffer.
    pub fn empty_output(&self, channels: usize) -> Vec<Vec<Vec<f32>>> {
        vec![vec![Vec::new(); channels]; self.params().stems.len()]
    }

    /// Separates a whole planar signal: `[stem][channel][sample]`.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device fails.
    pub fn separate_all(&self, channels: &[Vec<f32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out = self.empty_output(channels.len());
        let mut stream = self.stream(channels.len());
        stream.push(channels, &mut out)?;
        stream.finish(&mut out)?;
        Ok(out)
    }

    /// `cpu` or the GPU adapter's name.
    pub fn device_name(&self) -> String {
        match self {
            Engine::Cpu(_) => "cpu".into(),
            Engine::Gpu(s) => format!("gpu: {}", s.context().adapter_info().name),
        }
    }
}

impl EngineStream<'_> {
    /// See [`BlockStream::push`].
    ///
    /// # Errors
    /// As [`BlockStream::push`].
    pub fn push(&mut self, input: &[Vec<f32>], out: &mut [Vec<Vec<f32>>]) -> Result<()> {
        match self {
            EngineStream::Cpu(s) => s.push(input, out),
            EngineStream::Gpu(s) => s.push(input, out),
        }
    }

    /// See [`BlockStream::finish`].
    ///
    /// # Errors
    /// As [`BlockStream::finish`].
    pub fn finish(self, out: &mut [Vec<Vec<f32>>]) -> Result<()> {
        match self {
            EngineStream::Cpu(s) => s.finish(out),
            EngineStream::Gpu(s) => s.finish(out),
        }
    }
}

/// Engines built on demand, one per sample rate, on one device chosen once.
pub struct Engines {
    spec: SeparationSpec,
    gpu: Option<Arc<GpuContext>>,
    gpu_block_frames: Option<usize>,
    cache: Mutex<HashMap<u32, Engine>>,
    cpu_cache: Mutex<HashMap<u32, Arc<Separator>>>,
    fallback_cpu: bool,
    /// Why `auto` fell back to the CPU, if it did.
    pub note: Option<String>,
}

impl Engines {
    /// Validates `spec` and opens the device. `auto` falls back to the CPU when no usable
    /// hardware adapter exists (`note` says why); `gpu` fails then.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for bad settings; [`Error::NoGpu`] when `gpu` finds no
    /// usable adapter.
    pub fn new(
        spec: SeparationSpec,
        device: DeviceChoice,
        adapter: AdapterSelector,
        gpu_block_frames: Option<usize>,
        fallback_cpu: bool,
    ) -> Result<Self> {
        let (gpu, note) = match device {
            DeviceChoice::Cpu => (None, None),
            DeviceChoice::Gpu => match GpuContext::new(adapter) {
                Ok(ctx) => (Some(Arc::new(ctx)), None),
                Err(Error::Gpu(m)) => return Err(Error::NoGpu(m)),
                Err(e) => return Err(e),
            },
            DeviceChoice::Auto => {
                let named = adapter != AdapterSelector::Default;
                match GpuContext::new(adapter) {
                    Ok(ctx) if named || ctx.adapter_info().device_type != wgpu::DeviceType::Cpu => {
                        (Some(Arc::new(ctx)), None)
                    }
                    Ok(ctx) => (
                        None,
                        Some(format!(
                            "the only GPU adapter is a software one ({}), slower than the CPU engine; running on the CPU (--device gpu uses it anyway)",
                            ctx.adapter_info().name
                        )),
                    ),
                    Err(e) => (None, Some(format!("no usable GPU ({e}); running on the CPU"))),
                }
            }
        };
        Ok(Engines {
            spec,
            gpu,
            gpu_block_frames,
            cache: Default::default(),
            cpu_cache: Default::default(),
            fallback_cpu,
            note,
        })
    }

    /// CPU engines only.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for bad settings.
    pub fn cpu(spec: SeparationSpec) -> Result<Self> {
        Self::new(
            spec,
            DeviceChoice::Cpu,
            AdapterSelector::Default,
            None,
            false,
        )
    }

    /// Whether a track whose GPU run fails is redone on the CPU (`--fallback cpu`).
    pub fn fallback_cpu(&self) -> bool {
        self.fallback_cpu
    }

    /// `cpu` or `gpu: <adapter name>`.
    pub fn device_name(&self) -> String {
        match &self.gpu {
            Some(ctx) => format!("gpu: {}", ctx.adapter_info().name),
            None => "cpu".into(),
        }
    }

    /// `--stats`: the device, and for the GPU its chunks, submissions, dispatches, bytes moved and
    /// GPU time per stage, summed over every engine of this run.
    pub fn stats_text(&self) -> String {
        let Some(ctx) = &self.gpu else {
            return "stats: device cpu (no GPU statistics)".into();
        };
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = vec![format!(
            "stats: device gpu: {} ({:?})",
            ctx.adapter_info().name,
            ctx.adapter_info().backend
        )];
        for (rate, engine) in cache.iter() {
            if let Engine::Gpu(g) = engine {
                let st = g.stats();
                let per = |n: u64| n as f64 / st.blocks.max(1) as f64;
                lines.push(format!(
                    "  at {rate} Hz: {} chunks, {} queue submissions ({:.1} per chunk), {} dispatches ({:.1} per chunk), \
                     {:.2} MB uploaded, {:.2} MB read back (+{:.2} MB once at setup)",
                    st.blocks,
                    st.submissions,
                    per(st.submissions),
                    st.dispatches,
                    per(st.dispatches),
                    st.bytes_uploaded as f64 / 1e6,
                    st.bytes_read_back as f64 / 1e6,
                    st.setup_bytes_uploaded as f64 / 1e6,
                ));
                if st.timestamps {
                    let times: Vec<String> = st
                        .stage_times()
                        .map(|(name, t)| format!("{name} {:.2} ms", t.as_secs_f64() * 1e3))
                        .collect();
                    lines.push(format!("  GPU time per stage: {}", times.join(", ")));
                } else {
                    lines.push("  GPU time per stage: not available (no TIMESTAMP_QUERY)".into());
                }
            }
        }
        lines.join("\n")
    }

    /// The settings.
    pub fn spec(&self) -> &SeparationSpec {
        &self.spec
    }

    /// True when tracks run on the GPU.
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// The GPU context, when running on one.
    pub fn gpu_context(&self) -> Option<&Arc<GpuContext>> {
        self.gpu.as_ref()
    }

    /// The engine for tracks at `sample_rate`, built on first use.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the settings do not resolve at this rate;
    /// [`Error::Gpu`] when the device cannot build the engine.
    pub fn get(&self, sample_rate: u32) -> Result<Engine> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = cache.get(&sample_rate) {
            return Ok(e.clone());
        }
        let mut params = self.spec.resolve(sample_rate)?;
        let engine = match &self.gpu {
            Some(ctx) => {
                params.block_frames = self.gpu_block_frames.unwrap_or(GPU_BLOCK_FRAMES);
                Engine::Gpu(Arc::new(GpuSeparator::new(ctx.clone(), params)?))
            }
            None => Engine::Cpu(Arc::new(Separator::new(params)?)),
        };
        cache.insert(sample_rate, engine.clone());
        Ok(engine)
    }

    /// The CPU separator for `sample_rate` (for `--fallback cpu` and `compare`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the settings do not resolve at this rate.
    pub fn cpu_engine(&self, sample_rate: u32) -> Result<Engine> {
        let mut cache = self.cpu_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&sample_rate) {
            return Ok(Engine::Cpu(s.clone()));
        }
        let sep = Arc::new(Separator::new(self.spec.resolve(sample_rate)?)?);
        cache.insert(sample_rate, sep.clone());
        Ok(Engine::Cpu(sep))
    }

    /// The stems delivered (the same at every rate).
    pub fn stems(&self) -> Vec<Stem> {
        self.spec
            .resolve(48000)
            .map(|p| p.stems.stems())
            .unwrap_or_default()
    }
}
