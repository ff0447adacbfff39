// frame.wgsl: stage `frame`: centred, windowed frames (librosa center=True, zero padding).
// CPU twin: src/stages/frame.rs (frame_windowed). Bindings in the order of its arguments:
// the signal, the window, the frames written. One invocation per sample of a frame.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pcm: array<f32>;                // [channel][pcm_len]
@group(0) @binding(2) var<storage, read> window: array<f32>;             // [n_fft]
@group(0) @binding(3) var<storage, read_write> frames: array<f32>;       // [channel][held_frames][n_fft]

@compute @workgroup_size(256)
fn frame(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let t = gid.y;
    let ch = gid.z;
    if n >= params.n_fft || t >= params.held_frames {
        return;
    }
    // Frame t's sample n is signal sample t·hop − n_fft/2 + n; outside the upload it is zero.
    let i = params.frame0_sample + i32(t * params.hop_length + n);
    var s = 0.0;
    if i >= 0 && u32(i) < params.pcm_len {
        s = pcm[ch * params.pcm_len + u32(i)];
    }
    frames[(ch * params.held_frames + t) * params.n_fft + n] = s * window[n];
}
