// ifft.wgsl: stage `ifft`: inverse real FFT of each stem spectrum, scaled by 1/N_FFT (as
// scipy.fft.irfft, imaginary parts of DC and Nyquist ignored) and multiplied by the synthesis
// window; one workgroup per (frame, stem). Real merge + FFT_M-point inverse Stockham in
// workgroup memory (fft_core.wgsl). CPU twin: src/stages/ifft.rs. Large N_FFT: fft_global.wgsl.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> stem_spectra: array<vec2<f32>>;    // [rows][bins]
@group(0) @binding(2) var<storage, read> twiddles: array<vec2<f32>>;        // [N_FFT]
@group(0) @binding(3) var<storage, read> window: array<vec2<f32>>;          // [FFT_M]: w[2m], w[2m+1]
@group(0) @binding(4) var<storage, read_write> stem_frames: array<vec2<f32>>; // [rows][FFT_M]

// Dispatch (out_frames·inverted_stems, channels): row = (channel·out_frames + frame)·stems + stem.
@compute @workgroup_size(FFT_WG)
fn ifft(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let row = wid.y * (params.out_frames * params.inverted_stems) + wid.x;
    let base = row * params.bins;
    for (var k = lid; k < FFT_M; k += FFT_WG) {
        var xk = stem_spectra[base + k];
        var xmk = stem_spectra[base + FFT_M - k];
        if k == 0u {
            xk.y = 0.0;
            xmk.y = 0.0;
        }
        fft_buf[k] = real_merge(xk, xmk, twiddles[k]);
    }
    workgroupBarrier();
    fft_workgroup(lid, true);
    // x = z / N_FFT (exact: a power of two), times the window, as (1/N)·w like the CPU twin.
    let scale = 1.0 / f32(N_FFT);
    for (var m = lid; m < FFT_M; m += FFT_WG) {
        let z = fft_buf[m];
        let w = window[m];
        stem_frames[row * FFT_M + m] = vec2<f32>(z.x * (scale * w.x), z.y * (scale * w.y));
    }
}
