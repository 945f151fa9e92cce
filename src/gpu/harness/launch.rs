//! How the harness runs its dispatches: upload the inputs into fresh
//! buffers, bind them as each launch's slots say, record every launch in
//! one pass, submit once and read the output back.

use super::KernelHarness;
use crate::error::{Error, Result};
use crate::gpu::convert::{decode, stored_bytes};
use crate::gpu::pipelines::Kernel;
use crate::model::DType;

/// One storage input of a dispatch: a label and its bytes.
pub(super) struct Input<'a> {
    pub(super) label: &'a str,
    pub(super) bytes: std::borrow::Cow<'a, [u8]>,
}

/// Where one binding of a harness dispatch comes from.
pub(super) enum Slot {
    /// The n-th input.
    Input(usize),
    /// The output buffer.
    Output,
    /// The uniform parameters.
    Params,
    /// The split-k partial sums.
    Scratch,
}

/// One dispatch of a harness run.
pub(super) struct HarnessLaunch<'k> {
    pub(super) kernel: &'k Kernel,
    pub(super) slots: Vec<Slot>,
    pub(super) grid: [u32; 3],
}

impl KernelHarness {
    /// Uploads `inputs` (bindings 0..), binds an `out_len`-element output next
    /// and `params` as the uniform after it, dispatches `grid` once in one
    /// submit and reads the output back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dispatch(
        &self,
        name: &str,
        kernel: &Kernel,
        inputs: &[Input<'_>],
        out: (usize, DType),
        params: &[u8],
        grid: [u32; 3],
        reps: u32,
    ) -> Result<Vec<f32>> {
        let slots = (0..inputs.len())
            .map(Slot::Input)
            .chain([Slot::Output, Slot::Params])
            .collect();
        let launch = HarnessLaunch {
            kernel,
            slots,
            grid,
        };
        self.run_launches(name, inputs, out, 0, params, &[launch], reps)
    }

    /// Uploads `inputs`, makes the output (`out_len` elements of `out_dtype`),
    /// a scratch buffer of `scratch_bytes` and the uniform `params`, records
    /// `launches` (each `reps` times, in order) in one pass and one submit,
    /// and reads the output back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_launches(
        &self,
        name: &str,
        inputs: &[Input<'_>],
        (out_len, out_dtype): (usize, DType),
        scratch_bytes: u64,
        params: &[u8],
        launches: &[HarnessLaunch<'_>],
        reps: u32,
    ) -> Result<Vec<f32>> {
        let max_groups = self.ctx.limits.max_compute_workgroups_per_dimension;
        for l in launches {
            if l.grid.iter().any(|&g| g > max_groups) {
                return Err(Error::Unsupported(format!(
                    "{name}: dispatch grid {:?} exceeds the device limit of {max_groups} workgroups per dimension",
                    l.grid
                )));
            }
        }
        let padded = |bytes: u64| bytes.max(16).next_multiple_of(16);
        let out_bytes = stored_bytes(out_dtype, out_len);
        for input in inputs {
            self.ctx
                .check_size(&format!("{name} {}", input.label), input.bytes.len() as u64)?;
        }
        self.ctx.check_size(&format!("{name} output"), out_bytes)?;
        self.ctx
            .check_size(&format!("{name} split-k partial sums"), scratch_bytes)?;
        let dev = &self.ctx.device;
        let queue = &self.ctx.queue;
        let (index, staging) = self.ctx.scoped(&format!("running {name}"), || {
            let mut buffers = Vec::with_capacity(inputs.len());
            for input in inputs {
                let buf = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(input.label),
                    size: padded(input.bytes.len() as u64),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if !input.bytes.is_empty() {
                    queue.write_buffer(&buf, 0, &input.bytes);
                }
                buffers.push(buf);
            }
            let out = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("output"),
                size: padded(out_bytes),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let scratch = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("scratch"),
                size: padded(scratch_bytes),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let uniform = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: padded(params.len() as u64),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            queue.write_buffer(&uniform, 0, params);
            let staging = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: padded(out_bytes),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let groups: Vec<wgpu::BindGroup> = launches
                .iter()
                .map(|l| {
                    let entries: Vec<wgpu::BindGroupEntry> = l
                        .slots
                        .iter()
                        .enumerate()
                        .map(|(i, slot)| wgpu::BindGroupEntry {
                            binding: i as u32,
                            resource: match slot {
                                Slot::Input(k) => buffers[*k].as_entire_binding(),
                                Slot::Output => out.as_entire_binding(),
                                Slot::Params => uniform.as_entire_binding(),
                                Slot::Scratch => scratch.as_entire_binding(),
                            },
                        })
                        .collect();
                    dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(name),
                        layout: &l.kernel.layout,
                        entries: &entries,
                    })
                })
                .collect();
            let mut encoder =
                dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(name),
                    timestamp_writes: None,
                });
                for _ in 0..reps.max(1) {
                    for (l, bg) in launches.iter().zip(&groups) {
                        pass.set_pipeline(&l.kernel.pipeline);
                        pass.set_bind_group(0, bg, &[]);
                        pass.dispatch_workgroups(l.grid[0], l.grid[1], l.grid[2]);
                    }
                }
            }
            encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, out_bytes);
            (queue.submit(Some(encoder.finish())), staging)
        })?;
        self.read_back(name, &staging, out_bytes, (out_len, out_dtype), index)
    }

    /// Maps `staging` once `index` finished and decodes `count` elements.
    fn read_back(
        &self,
        name: &str,
        staging: &wgpu::Buffer,
        bytes: u64,
        (count, dtype): (usize, DType),
        index: wgpu::SubmissionIndex,
    ) -> Result<Vec<f32>> {
        let data = self
            .ctx
            .read_mapped(staging, bytes, index, name, |v| decode(dtype, v, count))?;
        self.ctx.check(&format!("reading back {name}"))?;
        Ok(data)
    }
}
