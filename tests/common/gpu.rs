//! The GPU-required policy, in one place for every test binary.
//!
//! A test that needs a GPU adapter and finds none fails, saying how to get
//! one (lavapipe: `apt-get install mesa-vulkan-drivers`). Only with
//! `BERT_WGPU_ALLOW_NO_GPU=1` does it print a NOTE and return without
//! running instead, and never when `BERT_WGPU_REQUIRE_GPU=1` (CI sets it).

use std::fmt::Display;

use bert_wgpu::gpu::{GpuContext, KernelHarness};
use bert_wgpu::DType;

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// Whether a test may return without running when there is no GPU adapter:
/// only when BERT_WGPU_ALLOW_NO_GPU=1 and BERT_WGPU_REQUIRE_GPU is not 1.
pub fn may_skip() -> bool {
    !env_is("BERT_WGPU_REQUIRE_GPU", "1") && env_is("BERT_WGPU_ALLOW_NO_GPU", "1")
}

/// What `test` does when the GPU is unavailable (`what`, e.g. "no GPU
/// context (…)"): panics, unless [`may_skip`] and the variable
/// `required_by` (if any) is not 1, in which case it prints a NOTE and
/// returns so that the caller returns without running.
pub fn unavailable(test: &str, what: impl Display, required_by: Option<&str>) {
    for var in ["BERT_WGPU_REQUIRE_GPU"].into_iter().chain(required_by) {
        if env_is(var, "1") {
            panic!("{test}: {what} and {var}=1");
        }
    }
    if may_skip() {
        println!("NOTE: {test} not run: {what}; BERT_WGPU_ALLOW_NO_GPU=1");
        return;
    }
    panic!(
        "{test}: {what}. Install mesa-vulkan-drivers (lavapipe), or set BERT_WGPU_ALLOW_NO_GPU=1 to not run GPU tests"
    )
}

/// A context on the best adapter (software allowed), or None when there is
/// none and the policy lets `test` not run.
pub fn context(test: &str) -> Option<GpuContext> {
    open(test, None)
}

/// [`context`], where `var`=1 also makes a missing adapter a failure (e.g.
/// `BERT_WGPU_REQUIRE_COOP`).
pub fn context_required_by(test: &str, var: &str) -> Option<GpuContext> {
    open(test, Some(var))
}

fn open(test: &str, required_by: Option<&str>) -> Option<GpuContext> {
    match GpuContext::new(true) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            unavailable(test, format_args!("no GPU context ({e})"), required_by);
            None
        }
    }
}

/// The kernel harness for storage type `dtype` on [`context`], or None when
/// the policy lets `test` not run.
pub fn harness(test: &str, dtype: DType) -> Option<KernelHarness> {
    let ctx = context(test)?;
    println!("{test}: adapter {}", ctx.describe());
    Some(
        KernelHarness::with_dtype(ctx, dtype)
            .unwrap_or_else(|e| panic!("{test}: compiling {dtype} kernels: {e}")),
    )
}
