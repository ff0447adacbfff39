// magnitude.wgsl: stage `magnitude`: |X| of each bin, as numpy.abs on complex64.
// CPU twin: src/stages/magnitude.rs, which rounds the f64 result once (correctly rounded). Here
// the sum of squares is rounded in f32 first, so a value can be 1 ulp off the CPU's. (A
// compensated two-sum/fma version gained nothing on Mesa: its compiler may re-associate the
// error terms away, which WGSL allows.) The medians after it only select among these values,
// so the stages after it see the same relative accuracy.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;  // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read_write> mag: array<f32>;      // [channel][held_frames][bins]

// Dispatch (ceil(bins/64), held_frames, channels).
@compute @workgroup_size(64)
fn magnitude(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let t = gid.y;
    let ch = gid.z;
    if b >= params.bins || t >= params.held_frames {
        return;
    }
    let i = (ch * params.held_frames + t) * params.bins + b;
    let z = spectra[i];
    mag[i] = sqrt(z.x * z.x + z.y * z.y);
}
