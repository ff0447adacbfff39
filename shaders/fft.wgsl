// fft.wgsl: stage `fft`: forward real FFT of each windowed frame, one workgroup per frame, as an
// FFT_M = N_FFT/2-point complex FFT in workgroup memory (fft_core.wgsl) plus the real split.
// Output matches scipy.fft.rfft (unnormalised, N_FFT/2 + 1 bins).
// CPU twin: src/stages/fft.rs (realfft). For N_FFT too large for workgroup memory the engine
// uses fft_global.wgsl instead.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> frames: array<vec2<f32>>;       // [rows][FFT_M]: x[2m], x[2m+1]
@group(0) @binding(2) var<storage, read> twiddles: array<vec2<f32>>;     // [N_FFT]
@group(0) @binding(3) var<storage, read_write> spectra: array<vec2<f32>>; // [rows][bins]

// Dispatch (held_frames, channels): row = channel·held_frames + frame.
@compute @workgroup_size(FFT_WG)
fn fft(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let row = wid.y * params.held_frames + wid.x;
    for (var m = lid; m < FFT_M; m += FFT_WG) {
        fft_buf[m] = frames[row * FFT_M + m];
    }
    workgroupBarrier();
    fft_workgroup(lid, false);
    let out = row * params.bins;
    for (var k = lid; k <= FFT_M; k += FFT_WG) {
        if k == 0u {
            let z0 = fft_buf[0];
            spectra[out] = vec2<f32>(z0.x + z0.y, 0.0);
        } else if k == FFT_M {
            let z0 = fft_buf[0];
            spectra[out + FFT_M] = vec2<f32>(z0.x - z0.y, 0.0);
        } else {
            spectra[out + k] = real_split(fft_buf[k], fft_buf[FFT_M - k], twiddles[k]);
        }
    }
}
