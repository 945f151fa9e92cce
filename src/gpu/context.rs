//! Adapter selection, device creation with the adapter's own limits, and the
//! plumbing that turns every wgpu error (validation, out-of-memory, device
//! loss, timeouts) into a library [`Error`] instead of a panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a forward may keep the GPU busy before we give up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// One adapter as `bert-wgpu info` prints it.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    /// Name, backend, type, driver.
    pub info: wgpu::AdapterInfo,
    /// Optional features offered.
    pub features: wgpu::Features,
    /// The adapter's limits.
    pub limits: wgpu::Limits,
    /// The cooperative-matrix shape the f16 GEMM would use here.
    pub coop: Option<CoopConfig>,
}

/// A device and queue with error capture installed.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter description.
    pub info: wgpu::AdapterInfo,
    /// Limits requested (the adapter's own).
    pub limits: wgpu::Limits,
    /// Optional features enabled.
    pub features: wgpu::Features,
    /// What the cooperative-matrix (tensor core) GEMM can use here, when the
    /// adapter has it.
    pub coop: Option<CoopConfig>,
    /// The adapter the device was opened on (for [`Self::sibling`]).
    adapter: wgpu::Adapter,
    uncaptured: Arc<Mutex<Option<String>>>,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<String>>,
    timeout: Duration,
}

/// The cooperative-matrix shape `linear_coop.wgsl` runs with: square
/// `frag` × `frag` × `frag` f16 × f16 + f32 products at subgroup scope, on
/// an adapter with a fixed subgroup size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoopConfig {
    /// Fragment size: 16 (NVIDIA, AMD) or 8 (lavapipe, Apple).
    pub frag: u32,
    /// The adapter's (only) subgroup size.
    pub subgroup: u32,
}

/// The cooperative-matrix configuration `linear_coop.wgsl` can use on
/// `adapter`: it needs wgpu's experimental cooperative matrices, subgroups,
/// f16, one fixed subgroup size and a square f16 · f16 + f32 fragment of 16
/// (preferred) or 8. None unless `allowed` ([`coop_allowed`]).
fn coop_config(adapter: &wgpu::Adapter, allowed: bool) -> Option<CoopConfig> {
    let needed = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SHADER_F16;
    if !allowed || !adapter.features().contains(needed) {
        return None;
    }
    let info = adapter.get_info();
    if info.subgroup_min_size != info.subgroup_max_size || info.subgroup_min_size == 0 {
        return None;
    }
    use wgpu::CooperativeScalarType as T;
    let props = adapter.cooperative_matrix_properties();
    [16, 8]
        .into_iter()
        .find(|&f| {
            props.iter().any(|p| {
                p.m_size == f
                    && p.n_size == f
                    && p.k_size == f
                    && p.ab_type == T::F16
                    && p.cr_type == T::F32
            })
        })
        .map(|frag| CoopConfig {
            frag,
            subgroup: info.subgroup_min_size,
        })
}

/// An instance over `backends`, unless `WGPU_BACKEND` names others.
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // No Vulkan object names (InstanceFlags::DEBUG, on in debug builds):
    // with Debian 13's Vulkan loader, threads that create devices at once
    // crash in vkSetDebugUtilsObjectNameEXT (5 of 8 parallel runs of
    // the GPU kernel tests (then tests/kernels_gpu.rs) on Mesa 26 lavapipe;
    // 0 of 8 without them).
    // WGPU_DEBUG=1 turns them back on.
    desc.flags.remove(wgpu::InstanceFlags::DEBUG);
    let mut desc = desc.with_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = backends;
    }
    wgpu::Instance::new(desc)
}

/// Whether devices may use cooperative matrices: `BERT_WGPU_COOP=0` turns
/// them off, `1` (or unset) leaves them on; anything else is an error.
fn coop_allowed() -> Result<bool> {
    match std::env::var("BERT_WGPU_COOP")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(Error::Setting {
            name: "BERT_WGPU_COOP".into(),
            value: v.into(),
            allowed: "0|1".into(),
        }),
    }
}

/// Every adapter wgpu can see, with features and limits.
pub fn list_adapters() -> Vec<AdapterReport> {
    let inst = instance(wgpu::Backends::all());
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|a| AdapterReport {
            info: a.get_info(),
            features: a.features(),
            limits: a.limits(),
            coop: coop_config(&a, coop_allowed().unwrap_or(true)),
        })
        .collect()
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    // GL only as a last resort: no timestamp queries, weaker compute.
    let backend = u8::from(info.backend == wgpu::Backend::Gl);
    (backend, ty)
}

/// Features used when the adapter offers them.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::SUBGROUP
}

/// The best adapter on `backends` after the filters (`BERT_WGPU_ADAPTER`,
/// software adapters unless allowed); every adapter seen is added to `seen`.
fn pick_adapter(
    backends: wgpu::Backends,
    allow_software: bool,
    seen: &mut Vec<String>,
) -> Option<wgpu::Adapter> {
    let inst = instance(backends);
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    seen.extend(adapters.iter().map(|a| {
        let i = a.get_info();
        format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
    }));
    if let Ok(want) = std::env::var("BERT_WGPU_ADAPTER") {
        let want = want.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
    if !allow_software {
        adapters.retain(|a| a.get_info().device_type != wgpu::DeviceType::Cpu);
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters.into_iter().next()
}

impl GpuContext {
    /// Opens the best adapter. With `allow_software = false` (device `auto`),
    /// CPU-type adapters such as lavapipe are skipped. `BERT_WGPU_ADAPTER`
    /// (a part of the adapter's name) and `WGPU_BACKEND` narrow the choice.
    pub fn new(allow_software: bool) -> Result<Self> {
        // Vulkan / Metal / DX12 first. GL only when none of those has a
        // usable adapter: it computes less well, and initialising EGL on a
        // headless machine prints driver noise on stderr.
        let mut seen = Vec::new();
        for backends in [wgpu::Backends::PRIMARY, wgpu::Backends::GL] {
            if let Some(adapter) = pick_adapter(backends, allow_software, &mut seen) {
                return Self::from_adapter(adapter);
            }
        }
        Err(Error::NoAdapter(format!(
            "none matched (seen: [{}]; software adapters {}). On Linux without a GPU install mesa-vulkan-drivers (lavapipe) and use --device gpu",
            seen.join(", "),
            if allow_software { "allowed" } else { "skipped by --device auto" }
        )))
    }

    /// Opens a device on `adapter` with its own limits and the optional
    /// features we use.
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let base = adapter.features() & wanted_features();
        let open = |coop: bool| {
            let (features, experimental) = if coop {
                // SAFETY: wgpu asks callers to acknowledge that experimental
                // features may change and may have implementation bugs; the
                // only user is linear_coop.wgsl, which the tests hold to its
                // CPU twin on an adapter that has the feature
                // (scripts/test_mesa26.sh).
                (
                    base | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                    unsafe { wgpu::ExperimentalFeatures::enabled() },
                )
            } else {
                (base, wgpu::ExperimentalFeatures::disabled())
            };
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("bert-wgpu"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            }))
            .map(|dq| (dq, features))
        };
        let mut coop = coop_config(&adapter, coop_allowed()?);
        let timeout =
            super::options::resolve_timeout(None, &super::options::process_env, DEFAULT_TIMEOUT)?;
        // A device with cooperative matrices, and if the driver refuses
        // that, one without (the feature is only ever an extra).
        let opened = if coop.is_some() {
            open(true).or_else(|e| {
                log::warn!(
                    "{}: no device with cooperative matrices ({e}); opening one without",
                    info.name
                );
                coop = None;
                open(false)
            })
        } else {
            open(false)
        };
        let ((device, queue), features) = opened
            .map_err(|e| Error::NoAdapter(format!("{}: request_device failed: {e}", info.name)))?;
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(String::new()));
        let (flag, reason) = (lost.clone(), lost_reason.clone());
        device.set_device_lost_callback(move |why, msg| {
            flag.store(true, Ordering::SeqCst);
            if let Ok(mut r) = reason.lock() {
                *r = format!("{why:?}: {msg}");
            }
        });
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            features,
            coop,
            adapter,
            uncaptured,
            lost,
            lost_reason,
            timeout,
        })
    }

    /// A second device on the same adapter, with its own queue and error
    /// handlers: work that may fail badly (timing untried kernels) cannot
    /// lose this one.
    pub fn sibling(&self) -> Result<GpuContext> {
        Ok(Self::from_adapter(self.adapter.clone())?.with_timeout(self.timeout))
    }

    /// This context with GPU waits limited to `timeout` instead of
    /// `BERT_WGPU_TIMEOUT_SECS` or [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a GPU wait may take before it is an error.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `name (backend, type)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Errors if the device was lost or an uncaptured error was recorded.
    pub fn check(&self, context: &str) -> Result<()> {
        // Lets a pending device-lost callback run before we look at the flag.
        let _ = self.device.poll(wgpu::PollType::Poll);
        if self.lost.load(Ordering::SeqCst) {
            let why = self
                .lost_reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            return Err(Error::DeviceLost(why));
        }
        if let Some(msg) = self.uncaptured.lock().ok().and_then(|mut s| s.take()) {
            return Err(Error::Gpu {
                context: context.to_string(),
                message: msg,
            });
        }
        Ok(())
    }

    /// Runs `f` inside validation / out-of-memory / internal error scopes and
    /// returns the first error they caught.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check(context)?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errs = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
            pollster::block_on(internal.pop()),
        ];
        if let Some(e) = errs.into_iter().flatten().next() {
            self.check(context)?;
            return Err(Error::Gpu {
                context: context.to_string(),
                message: e.to_string(),
            });
        }
        self.check(context)?;
        Ok(out)
    }

    /// Blocks until `submission` finished, at most the timeout.
    pub fn wait(&self, submission: wgpu::SubmissionIndex, context: &str) -> Result<()> {
        let r = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(self.timeout),
        });
        match r {
            Ok(_) => self.check(context),
            Err(wgpu::PollError::Timeout) => {
                self.check(context)?;
                Err(Error::Timeout {
                    context: context.to_string(),
                    seconds: self.timeout.as_secs_f64(),
                })
            }
            Err(e) => {
                self.check(context)?;
                Err(Error::Gpu {
                    context: context.to_string(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Maps the first `bytes` of `buffer` (MAP_READ) once `submission` has
    /// finished, hands the bytes to `read`, unmaps. Every readback goes
    /// through here: the wait honours the timeout, and a map that never
    /// resolves is an error, not a hang.
    pub fn read_mapped<T>(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        submission: wgpu::SubmissionIndex,
        context: &str,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let gpu_err = |e: &dyn std::fmt::Display| Error::Gpu {
            context: format!("reading back {context}"),
            message: e.to_string(),
        };
        let slice = buffer.slice(0..bytes.max(4));
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(submission.clone(), context)?;
        let mapped = match rx.try_recv() {
            Ok(r) => r,
            Err(_) => {
                // The map may resolve on a later poll.
                self.wait(submission, context)?;
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(r) => r,
                    Err(_) => {
                        self.check(context)?;
                        return Err(Error::Timeout {
                            context: format!("mapping the readback buffer of {context}"),
                            seconds: 5.0,
                        });
                    }
                }
            }
        };
        mapped.map_err(|e| gpu_err(&e))?;
        let out = {
            let view = slice.get_mapped_range().map_err(|e| gpu_err(&e))?;
            read(&view[..bytes as usize])
        };
        buffer.unmap();
        Ok(out)
    }

    /// Checks a buffer size against the binding and buffer limits.
    pub fn check_size(&self, name: &str, bytes: u64) -> Result<()> {
        let binding = self.limits.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(Error::DeviceLimit {
                name: name.to_string(),
                needed: bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit: binding,
            });
        }
        if bytes > self.limits.max_buffer_size {
            return Err(Error::DeviceLimit {
                name: name.to_string(),
                needed: bytes,
                limit_name: "max_buffer_size",
                limit: self.limits.max_buffer_size,
            });
        }
        Ok(())
    }

    /// Simulates device loss (tests).
    pub fn destroy(&self) {
        self.device.destroy();
    }
}
