//! Every kernel's tests in one place, one module per kernel: its CPU twin
//! (`src/kernels/*.rs`) against a naive or f64 oracle, its WGSL kernel
//! against the twin through `gpu::KernelHarness` (the runner's pipelines,
//! params and grids) in f32 and in f16 storage, and its kernel-specific naga
//! checks. `shaders` holds the naga checks over every shader; `harness` the
//! harness's own argument checks.
//!
//! Tolerance: |got − want| ≤ 1e-5 + 1e-4·|want| per element unless a test
//! says why not. In f16 storage the twin runs in f32 on inputs rounded to
//! f16 exactly as the harness uploads them, so the only difference left is
//! the kernel's final rounding of its output to f16 (relative error ≤ 2⁻¹¹
//! ≈ 4.9e-4) plus f32 summation order: 1e-4 + 1e-3·|want|. Shapes include
//! sizes that are not tile multiples and both the vec4 and scalar variants.
//!
//! The max error per shape is printed
//! (`cargo test --test kernels -- --nocapture`). GPU policy: `common::gpu`
//! (no adapter fails the test, unless BERT_WGPU_ALLOW_NO_GPU=1 and
//! BERT_WGPU_REQUIRE_GPU is not 1, which prints a NOTE and returns). The f16
//! tests fail on an adapter without SHADER_F16 (lavapipe, NVIDIA, AMD, Apple
//! and Intel GPUs all have it).

#[path = "../common/mod.rs"]
mod common;

mod activations;
mod attention;
mod embeddings;
mod harness;
mod layernorm;
mod linear;
mod shaders;
mod support;
