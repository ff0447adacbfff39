//! The GPU context: adapter choice, device, queue and the pipelines built on them, created once
//! and shared (`Arc`) by every engine. Setup follows wgpu's compute examples: instance → adapter
//! (checked for compute) → device (with the adapter's own limits) → modules → pipelines.
//!
//! wgpu reports validation errors, out-of-memory and device loss through callbacks; the context
//! collects them so the call in progress returns [`Error::Gpu`] instead of panicking.

use crate::error::{Error, Result};
use crate::gpu::pipelines::{FftPath, Pipelines};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which adapter [`GpuContext::new`] opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterSelector {
    /// wgpu's preferred adapter (high performance unless `WGPU_POWER_PREF` says otherwise),
    /// else the first usable one.
    #[default]
    Default,
    /// The adapter at this index of [`list_adapters`].
    Index(usize),
    /// The first usable adapter whose name contains this text (case-insensitive).
    Name(String),
}

/// One adapter as [`list_adapters`] reports it: plain data, for `--list-devices` and reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdapterSummary {
    /// Position in the list (what [`AdapterSelector::Index`] takes).
    pub index: usize,
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Vulkan, Metal, Dx12, Gl, ...
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, Cpu, ...
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// Largest storage-buffer binding in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer in bytes.
    pub max_buffer_size: u64,
    /// Workgroup memory per workgroup in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Whether stemkit can run on it.
    pub usable: bool,
    /// Why not, when it cannot.
    pub why_not: Option<String>,
}

/// Workgroup size of the fixed-size stages; adapters must allow it.
pub(crate) const MAX_WORKGROUP_SIZE_USED: u32 = 256;
/// Storage buffers the widest stage binds (production: 8, WebGPU's default limit).
pub(crate) const STORAGE_BUFFERS_USED: u32 = 8;

fn instance() -> wgpu::Instance {
    // Backends from WGPU_BACKEND when set, else all; no display handle (headless).
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Why stemkit cannot use `adapter`, if it cannot.
fn why_not_usable(adapter: &wgpu::Adapter) -> Option<String> {
    let down = adapter.get_downlevel_capabilities();
    if !down.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Some("no compute shaders".into());
    }
    let l = adapter.limits();
    let checks = [
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage,
            STORAGE_BUFFERS_USED,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup,
            MAX_WORKGROUP_SIZE_USED,
        ),
        (
            "max_compute_workgroup_size_x",
            l.max_compute_workgroup_size_x,
            MAX_WORKGROUP_SIZE_USED,
        ),
        (
            "max_uniform_buffers_per_shader_stage",
            l.max_uniform_buffers_per_shader_stage,
            2,
        ),
    ];
    for (what, have, need) in checks {
        if have < need {
            return Some(format!("{what} is {have}, stemkit needs {need}"));
        }
    }
    None
}

fn summarise(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let l = adapter.limits();
    let why_not = why_not_usable(adapter);
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
        usable: why_not.is_none(),
        why_not,
    }
}

fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Every adapter wgpu finds (honouring `WGPU_BACKEND`), usable or not.
pub fn list_adapters() -> Vec<AdapterSummary> {
    enumerate(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| summarise(i, a))
        .collect()
}

/// Errors wgpu reported through its callbacks, waiting for the current call to collect them.
#[derive(Default)]
struct ErrorSink {
    messages: Mutex<Vec<String>>,
}

impl ErrorSink {
    fn push(&self, message: String) {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Device, queue and pipelines for one adapter; built once, shared by engines through `Arc`.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    errors: Arc<ErrorSink>,
    /// Set (for good) when the device is lost: every later call fails fast with the reason.
    lost: Arc<Mutex<Option<String>>>,
    pipelines: Mutex<HashMap<(usize, FftPath), Arc<Pipelines>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

impl GpuContext {
    /// Opens the adapter `selector` names and a device with the adapter's own limits (not
    /// wgpu's conservative defaults), with `TIMESTAMP_QUERY` when the adapter has it.
    ///
    /// # Errors
    /// [`Error::Gpu`] when no adapter matches or can compute, or the device request fails.
    pub fn new(selector: AdapterSelector) -> Result<Self> {
        let instance = instance();
        let adapter = pick_adapter(&instance, &selector)?;
        let wanted = wgpu::Features::TIMESTAMP_QUERY;
        let desc = wgpu::DeviceDescriptor {
            label: Some("stemkit"),
            required_features: adapter.features() & wanted,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("requesting a device: {e}")))?;
        Ok(Self::from_device(device, queue, adapter.get_info()))
    }

    /// Wraps a device the caller made (tests, or an application that shares its device).
    /// Installs the error and device-lost handlers on it.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let errors = Arc::new(ErrorSink::default());
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let kind = match &e {
                wgpu::Error::OutOfMemory { .. } => "out of memory",
                wgpu::Error::Validation { .. } => "validation error",
                wgpu::Error::Internal { .. } => "internal error",
            };
            sink.push(format!("{kind}: {e}"));
        }));
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *flag.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("device lost ({reason:?}): {message}"));
        });
        GpuContext {
            device,
            queue,
            info,
            errors,
            lost,
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's description.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device's limits (the adapter's, when made by [`GpuContext::new`]).
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Whether passes can be timed (`TIMESTAMP_QUERY` enabled on the device).
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Returns the errors wgpu reported since the last check as one [`Error::Gpu`], naming
    /// `during` (what was being done).
    pub fn check(&self, during: &str) -> Result<()> {
        self.alive(during)?;
        let messages = self.errors.take();
        if messages.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu(format!("{during}: {}", messages.join("; "))))
        }
    }

    /// [`Error::Gpu`] naming the loss once the device is lost (wgpu would panic or hang on some
    /// calls to a lost device, so every block checks this first).
    pub fn alive(&self, during: &str) -> Result<()> {
        // Polling delivers a pending device-lost callback.
        let _ = self.device.poll(wgpu::PollType::Poll);
        match &*self.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(Error::Gpu(format!("{during}: {why}"))),
            None => Ok(()),
        }
    }

    /// The pipelines for `n_fft` on `path`, built on first use and cached for the context's life.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device is lost or cannot build them.
    pub fn pipelines(&self, n_fft: usize, path: FftPath) -> Result<Arc<Pipelines>> {
        self.alive("building the pipelines")?;
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&(n_fft, path)) {
            return Ok(p.clone());
        }
        let built = Arc::new(Pipelines::new(self, n_fft, path)?);
        cache.insert((n_fft, path), built.clone());
        Ok(built)
    }

    /// Blocks until the queue is idle.
    pub(crate) fn wait(&self, during: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{during}: {e}")))?;
        self.check(during)
    }
}

fn pick_adapter(instance: &wgpu::Instance, selector: &AdapterSelector) -> Result<wgpu::Adapter> {
    let adapters = enumerate(instance);
    let describe = || {
        if adapters.is_empty() {
            "no adapters found".to_string()
        } else {
            adapters
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let s = summarise(i, a);
                    format!(
                        "{i}: {} ({}){}",
                        s.name,
                        s.backend,
                        s.why_not
                            .map(|w| format!(" unusable: {w}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match selector {
        AdapterSelector::Default => {
            let options = wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                ..Default::default()
            };
            if let Ok(a) = pollster::block_on(instance.request_adapter(&options)) {
                if why_not_usable(&a).is_none() {
                    return Ok(a);
                }
            }
            adapters
                .iter()
                .find(|a| why_not_usable(a).is_none())
                .cloned()
                .ok_or_else(|| Error::Gpu(format!("no usable GPU adapter ({})", describe())))
        }
        AdapterSelector::Index(i) => {
            let a = adapters.get(*i).ok_or_else(|| {
                Error::Gpu(format!(
                    "expected an adapter index below {}, got {i} ({})",
                    adapters.len(),
                    describe()
                ))
            })?;
            match why_not_usable(a) {
                None => Ok(a.clone()),
                Some(w) => Err(Error::Gpu(format!("adapter {i} is unusable: {w}"))),
            }
        }
        AdapterSelector::Name(name) => {
            let want = name.to_lowercase();
            adapters
                .iter()
                .find(|a| {
                    a.get_info().name.to_lowercase().contains(&want) && why_not_usable(a).is_none()
                })
                .cloned()
                .ok_or_else(|| {
                    Error::Gpu(format!(
                        "no usable adapter named like {name:?} ({})",
                        describe()
                    ))
                })
        }
    }
}

/// One context shared by every test and bench in a process, or `None` (after printing a visible
/// `SKIPPED` line) when there is no usable adapter. With `STEMKIT_REQUIRE_GPU=1` a missing
/// adapter panics instead, so CI machines with a GPU cannot skip silently.
///
/// # Panics
/// When `STEMKIT_REQUIRE_GPU=1` and no adapter can be opened.
pub fn shared_test_context() -> Option<Arc<GpuContext>> {
    static SHARED: std::sync::OnceLock<std::result::Result<Arc<GpuContext>, String>> =
        std::sync::OnceLock::new();
    match SHARED.get_or_init(|| {
        GpuContext::new(AdapterSelector::Default)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }) {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) => {
            if std::env::var("STEMKIT_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("STEMKIT_REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            // Straight to stderr (not through the test harness's capture), so it is seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no GPU adapter (set STEMKIT_REQUIRE_GPU=1 to fail instead): {e}"
            );
            None
        }
    }
}
