//! The GPU engine: WGSL compute shaders in `shaders/` run the pipeline stages through wgpu.
