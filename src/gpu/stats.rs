//! Counters kept by a GPU engine: blocks, queue submissions, dispatches, bytes each way, and
//! GPU time per stage when the device has `TIMESTAMP_QUERY` (each stage is its own compute pass,
//! timed at its start and end).

use crate::gpu::pipelines::TIMED_STAGES;
use serde::Serialize;
use std::time::Duration;

/// What an engine has done since it was built. Plain data: copy it, compare two snapshots, or
/// serialise it into a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GpuStats {
    /// Blocks that ran on the GPU (a driver block split to fit the device counts once per part).
    pub blocks: u64,
    /// `queue.submit` calls.
    pub submissions: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Bytes written to the GPU per block: PCM input, the block's uniform, window sum-square edges.
    pub bytes_uploaded: u64,
    /// Bytes read back per block: the stems' PCM (and 16 bytes per stage of timestamps).
    pub bytes_read_back: u64,
    /// Bytes uploaded once at construction (window, twiddles, tables); not in `bytes_uploaded`.
    pub setup_bytes_uploaded: u64,
    /// Whether `stage_ns` is measured (the device has `TIMESTAMP_QUERY`).
    pub timestamps: bool,
    /// GPU time per stage in nanoseconds, in the order of [`GpuStats::STAGES`].
    pub stage_ns: [u64; TIMED_STAGES.len()],
}

impl GpuStats {
    /// Stage names of `stage_ns`: the CPU twins' names.
    pub const STAGES: [&'static str; TIMED_STAGES.len()] = TIMED_STAGES;

    /// GPU time per stage (all zero without timestamps).
    pub fn stage_times(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        Self::STAGES
            .iter()
            .zip(self.stage_ns)
            .map(|(name, ns)| (*name, Duration::from_nanos(ns)))
    }

    /// Total measured GPU time.
    pub fn gpu_time(&self) -> Duration {
        Duration::from_nanos(self.stage_ns.iter().sum())
    }

    /// Counters accumulated since `earlier` (a snapshot of the same engine).
    pub fn since(&self, earlier: &GpuStats) -> GpuStats {
        let mut stage_ns = [0u64; TIMED_STAGES.len()];
        for (i, ns) in stage_ns.iter_mut().enumerate() {
            *ns = self.stage_ns[i].saturating_sub(earlier.stage_ns[i]);
        }
        GpuStats {
            blocks: self.blocks - earlier.blocks,
            submissions: self.submissions - earlier.submissions,
            dispatches: self.dispatches - earlier.dispatches,
            bytes_uploaded: self.bytes_uploaded - earlier.bytes_uploaded,
            bytes_read_back: self.bytes_read_back - earlier.bytes_read_back,
            setup_bytes_uploaded: self.setup_bytes_uploaded - earlier.setup_bytes_uploaded,
            timestamps: self.timestamps,
            stage_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_and_serialises() {
        let a = GpuStats {
            blocks: 1,
            submissions: 1,
            dispatches: 8,
            stage_ns: [1; TIMED_STAGES.len()],
            ..Default::default()
        };
        let b = GpuStats {
            blocks: 3,
            submissions: 3,
            dispatches: 24,
            stage_ns: [5; TIMED_STAGES.len()],
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!((d.blocks, d.dispatches, d.stage_ns[0]), (2, 16, 4));
        assert_eq!(
            d.gpu_time(),
            Duration::from_nanos(4 * TIMED_STAGES.len() as u64)
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"blocks\":2"), "{json}");
    }
}
