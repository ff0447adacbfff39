//! `stemkit devices`: every adapter wgpu finds, with what stemkit needs to know about it.

use super::{out, CliResult};
use crate::gpu::list_adapters;
use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: DevicesArgs) -> CliResult {
    let adapters = list_adapters();
    if args.json {
        out(serde_json::to_string_pretty(&adapters).expect("adapters serialise"));
        return Ok(ExitCode::SUCCESS);
    }
    if adapters.is_empty() {
        out("no GPU adapters found (WGPU_BACKEND may restrict the search); stemkit will run on the CPU");
        return Ok(ExitCode::SUCCESS);
    }
    for a in &adapters {
        out(format!(
            "[{}] {} — {} {} (driver {} {})\n    storage binding {} MiB, buffer {} MiB, workgroup memory {} KiB, {} invocations/workgroup\n    {}",
            a.index,
            a.name,
            a.backend,
            a.device_type,
            a.driver,
            a.driver_info,
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            if a.usable {
                "usable by stemkit".to_string()
            } else {
                format!("not usable: {}", a.why_not.as_deref().unwrap_or("unknown reason"))
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}
