//! Turning launches into recorded dispatches, shared by the forward pass,
//! the profiler and the kernel harness: one bind group per launch from its
//! buffers in binding order, then one compute pass that sets pipeline and
//! bind group and dispatches, optionally writing a timestamp before each
//! dispatch and after the last.

use super::pipelines::Pipelines;
use super::spec::{KernelKind, Launch};
use super::GpuContext;
use crate::error::Result;

/// A launch ready to record.
pub(crate) struct Dispatch {
    /// Index of the graph step it belongs to (0 in the harness).
    pub(crate) step: usize,
    pub(crate) kind: KernelKind,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) grid: [u32; 3],
}

impl Dispatch {
    /// `launch`'s pipeline (compiled on first use) and bind group.
    pub(crate) fn new(
        ctx: &GpuContext,
        pipes: &Pipelines,
        step: usize,
        label: &str,
        launch: &Launch<'_>,
    ) -> Result<Dispatch> {
        let kernel = pipes.get(ctx, launch.kind)?;
        let entries: Vec<wgpu::BindGroupEntry> = launch
            .binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        });
        Ok(Dispatch {
            step,
            kind: launch.kind,
            pipeline: kernel.pipeline.clone(),
            bind_group,
            grid: launch.grid,
        })
    }
}

/// Records `dispatches` in order into one compute pass of `encoder`; with
/// `timestamps`, writes query i before the i-th dispatch and one after the
/// last (the set needs `dispatches.len() + 1` queries).
pub(crate) fn record<'d>(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: impl IntoIterator<Item = &'d Dispatch>,
    timestamps: Option<&wgpu::QuerySet>,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    let mut n = 0u32;
    for d in dispatches {
        if let Some(set) = timestamps {
            pass.write_timestamp(set, n);
        }
        let [x, y, z] = d.grid;
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
        n += 1;
    }
    if let Some(set) = timestamps {
        pass.write_timestamp(set, n);
    }
}
