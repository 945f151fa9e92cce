//! How the harness runs a kernel: upload the inputs into fresh buffers,
//! bind them through the kernel's launch spec, record its launches through
//! the runner's recording path (`reps` times) in one submit and read the
//! output back.

use super::KernelHarness;
use crate::device::DType;
use crate::error::{Error, Result};
use crate::gpu::convert::{decode, stored_bytes};
use crate::gpu::record::{record, Dispatch};
use crate::gpu::spec::Launch;

/// One storage input of a dispatch: a label and its bytes.
pub(super) struct Input<'a> {
    pub(super) label: &'a str,
    pub(super) bytes: std::borrow::Cow<'a, [u8]>,
}

/// The buffers of one harness run, for the kernel's bindings.
pub(super) struct Buffers {
    /// One per input, in order.
    pub(super) inputs: Vec<wgpu::Buffer>,
    /// The output.
    pub(super) out: wgpu::Buffer,
    /// The uniform parameters.
    pub(super) params: wgpu::Buffer,
    /// The split-k partial sums.
    pub(super) scratch: wgpu::Buffer,
}

/// What one harness run produces and needs besides its inputs.
pub(super) struct RunShape<'p> {
    /// Elements and storage type of the output.
    pub(super) out: (usize, DType),
    /// Bytes of the scratch buffer.
    pub(super) scratch_bytes: u64,
    /// The uniform parameters.
    pub(super) params: &'p [u8],
    /// Times the launches are recorded, in order, in the one pass.
    pub(super) reps: u32,
}

impl KernelHarness {
    /// Uploads `inputs`, makes the output, scratch and uniform buffers,
    /// records the launches `launches` makes over them (`shape.reps` times)
    /// in one pass and one submit, and reads the output back.
    pub(super) fn execute(
        &self,
        name: &str,
        inputs: &[Input<'_>],
        shape: RunShape<'_>,
        launches: impl for<'b> FnOnce(&'b Buffers) -> Vec<Launch<'b>>,
    ) -> Result<Vec<f32>> {
        let (out_len, out_dtype) = shape.out;
        let padded = |bytes: u64| bytes.max(16).next_multiple_of(16);
        let out_bytes = stored_bytes(out_dtype, out_len);
        for input in inputs {
            self.ctx
                .check_size(&format!("{name} {}", input.label), input.bytes.len() as u64)?;
        }
        self.ctx.check_size(&format!("{name} output"), out_bytes)?;
        self.ctx
            .check_size(&format!("{name} split-k partial sums"), shape.scratch_bytes)?;
        let dev = &self.ctx.device;
        let queue = &self.ctx.queue;
        let buffer = |label: &str, bytes: u64, usage| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: padded(bytes),
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let (index, staging) = self.ctx.scoped(&format!("running {name}"), || {
            let mut uploaded = Vec::with_capacity(inputs.len());
            for input in inputs {
                let buf = buffer(
                    input.label,
                    input.bytes.len() as u64,
                    U::STORAGE | U::COPY_DST,
                );
                if !input.bytes.is_empty() {
                    queue.write_buffer(&buf, 0, &input.bytes);
                }
                uploaded.push(buf);
            }
            let bufs = Buffers {
                inputs: uploaded,
                out: buffer("output", out_bytes, U::STORAGE | U::COPY_SRC),
                params: buffer(
                    "params",
                    shape.params.len() as u64,
                    U::UNIFORM | U::COPY_DST,
                ),
                scratch: buffer("scratch", shape.scratch_bytes, U::STORAGE),
            };
            queue.write_buffer(&bufs.params, 0, shape.params);
            let staging = buffer("readback", out_bytes, U::MAP_READ | U::COPY_DST);
            let launches = launches(&bufs);
            let max_groups = self.ctx.limits.max_compute_workgroups_per_dimension;
            let mut dispatches = Vec::with_capacity(launches.len());
            for l in &launches {
                if l.grid.iter().any(|&g| g > max_groups) {
                    return Err(Error::Unsupported(format!(
                        "{name}: dispatch grid {:?} exceeds the device limit of {max_groups} workgroups per dimension",
                        l.grid
                    )));
                }
                dispatches.push(Dispatch::new(&self.ctx, &self.pipes, 0, name, l)?);
            }
            let mut encoder =
                dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
            let reps = shape.reps.max(1) as usize;
            let all = dispatches.iter().cycle().take(reps * dispatches.len());
            record(&mut encoder, name, all, None);
            encoder.copy_buffer_to_buffer(&bufs.out, 0, &staging, 0, out_bytes);
            Ok((queue.submit(Some(encoder.finish())), staging))
        })??;
        let data = self
            .ctx
            .read_mapped(&staging, out_bytes, index, name, |v| {
                decode(out_dtype, v, out_len)
            })?;
        self.ctx.check(&format!("reading back {name}"))?;
        Ok(data)
    }
}
