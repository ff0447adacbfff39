// fft_global.wgsl: the FFT stages for N_FFT too large for workgroup memory: one dispatch per
// Stockham pass, ping-ponging rows of FFT_M complex values through global memory, plus the
// real split (forward) and real merge / scale / window (inverse). Same arithmetic as
// fft_core.wgsl + fft.wgsl + ifft.wgsl, which it replaces; CPU twins: src/stages/fft.rs and
// src/stages/ifft.rs. Entry points share bindings, each using the ones it names.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> pass_params: PassParams;
@group(0) @binding(2) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> twiddles: array<vec2<f32>>;   // [N_FFT]
@group(0) @binding(5) var<storage, read> window: array<vec2<f32>>;     // [FFT_M]

fn twiddle(q: u32, inverse: bool) -> vec2<f32> {
    let w = twiddles[q];
    return select(w, conj(w), inverse);
}

// Rows per channel: the held frames (forward) or the inverse frames × stems.
fn rows_per_channel(mode: u32) -> u32 {
    return select(params.held_frames, params.out_frames * params.inverted_stems, mode == 1u);
}

// One Stockham pass, src → dst. Dispatch (ceil(FFT_M/radix/64), rows per channel, channels).
@compute @workgroup_size(64)
fn fft_global_pass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let radix = pass_params.radix;
    let i = gid.x;
    let rows = rows_per_channel(pass_params.rows_mode);
    if i >= FFT_M / radix || gid.y >= rows {
        return;
    }
    let inverse = pass_params.inverse == 1u;
    let row = (gid.z * rows + gid.y) * FFT_M;
    let span = pass_params.span;
    let k = i & (span - 1u);
    if radix == 2u {
        let w = twiddle(k * (N_FFT / (2u * span)), inverse);
        let u0 = src[row + i];
        let u1 = cmul(src[row + i + FFT_M / 2u], w);
        let base = row + (i - k) * 2u + k;
        dst[base] = u0 + u1;
        dst[base + span] = u0 - u1;
    } else {
        let step = N_FFT / (4u * span);
        var a: array<vec2<f32>, 4>;
        a[0] = src[row + i];
        a[1] = cmul(src[row + i + FFT_M / 4u], twiddle(k * step, inverse));
        a[2] = cmul(src[row + i + FFT_M / 2u], twiddle(2u * k * step, inverse));
        a[3] = cmul(src[row + i + 3u * (FFT_M / 4u)], twiddle(3u * k * step, inverse));
        dft4(&a, inverse);
        let base = row + (i - k) * 4u + k;
        for (var j = 0u; j < 4u; j++) {
            dst[base + j * span] = a[j];
        }
    }
}

// Forward real split: src = transformed rows [rows][FFT_M], dst = spectra [rows][bins].
// Dispatch (ceil(bins/64), held_frames, channels).
@compute @workgroup_size(64)
fn fft_global_post(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if k > FFT_M || gid.y >= params.held_frames {
        return;
    }
    let row = gid.z * params.held_frames + gid.y;
    let z0 = src[row * FFT_M];
    var x: vec2<f32>;
    if k == 0u {
        x = vec2<f32>(z0.x + z0.y, 0.0);
    } else if k == FFT_M {
        x = vec2<f32>(z0.x - z0.y, 0.0);
    } else {
        x = real_split(src[row * FFT_M + k], src[row * FFT_M + FFT_M - k], twiddles[k]);
    }
    dst[row * params.bins + k] = x;
}

// Inverse real merge: src = stem spectra [rows][bins], dst = rows [rows][FFT_M].
// Dispatch (ceil(FFT_M/64), out_frames·inverted_stems, channels).
@compute @workgroup_size(64)
fn ifft_global_pre(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let rows = params.out_frames * params.inverted_stems;
    if k >= FFT_M || gid.y >= rows {
        return;
    }
    let row = gid.z * rows + gid.y;
    var xk = src[row * params.bins + k];
    var xmk = src[row * params.bins + FFT_M - k];
    if k == 0u {
        xk.y = 0.0;
        xmk.y = 0.0;
    }
    dst[row * FFT_M + k] = real_merge(xk, xmk, twiddles[k]);
}

// Inverse output: src = inverse-transformed rows, dst = stem frames [rows][FFT_M] pairs,
// scaled by 1/N_FFT and windowed. Dispatch (ceil(FFT_M/64), out_frames·inverted_stems, channels).
@compute @workgroup_size(64)
fn ifft_global_post(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    let rows = params.out_frames * params.inverted_stems;
    if m >= FFT_M || gid.y >= rows {
        return;
    }
    let i = (gid.z * rows + gid.y) * FFT_M + m;
    let scale = 1.0 / f32(N_FFT);
    let z = src[i];
    let w = window[m];
    dst[i] = vec2<f32>(z.x * (scale * w.x), z.y * (scale * w.y));
}
