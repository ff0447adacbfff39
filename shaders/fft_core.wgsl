// fft_core.wgsl: FFT_M-point complex Stockham FFT in workgroup memory, shared by fft.wgsl and
// ifft.wgsl (the stage files declare `twiddles`, exp(-2πiq/N_FFT) for q in 0..N_FFT, computed
// in f64 on the host). One radix-2 pass first when log2(FFT_M) is odd, then radix-4 passes.
// Each pass reads its inputs into registers, waits, writes its outputs, waits: one buffer of
// FFT_M complex values (8·FFT_M = 4·N_FFT bytes), written in full before it is read.
// CPU twin: realfft (crate::stages::fft / crate::stages::ifft); global-memory twin: fft_global.wgsl.

var<workgroup> fft_buf: array<vec2<f32>, FFT_M>;

// exp(∓2πi·q/N_FFT): conjugated for the inverse.
fn twiddle(q: u32, inverse: bool) -> vec2<f32> {
    let w = twiddles[q];
    return select(w, conj(w), inverse);
}

fn fft_workgroup(lid: u32, inverse: bool) {
    var v: array<vec2<f32>, FFT_VPT>;
    var span = 1u;
    if (FFT_LOG2_M & 1u) == 1u {
        // Radix 2 at span 1: no twiddles; butterfly i writes 2i and 2i + 1.
        for (var b = 0u; b < FFT_VPT / 2u; b++) {
            let i = lid + b * FFT_WG;
            let u0 = fft_buf[i];
            let u1 = fft_buf[i + FFT_M / 2u];
            v[2u * b] = u0 + u1;
            v[2u * b + 1u] = u0 - u1;
        }
        workgroupBarrier();
        for (var b = 0u; b < FFT_VPT / 2u; b++) {
            let i = lid + b * FFT_WG;
            fft_buf[2u * i] = v[2u * b];
            fft_buf[2u * i + 1u] = v[2u * b + 1u];
        }
        workgroupBarrier();
        span = 2u;
    }
    for (var stage = 0u; stage < FFT_LOG2_M / 2u; stage++) {
        // Twiddle of input j: W_M^(j·k·M/(4·span)) = twiddles[j·k·N_FFT/(4·span)].
        let step = N_FFT / (4u * span);
        for (var b = 0u; b < FFT_VPT / 4u; b++) {
            let i = lid + b * FFT_WG;
            let k = i & (span - 1u);
            var a: array<vec2<f32>, 4>;
            a[0] = fft_buf[i];
            a[1] = cmul(fft_buf[i + FFT_M / 4u], twiddle(k * step, inverse));
            a[2] = cmul(fft_buf[i + FFT_M / 2u], twiddle(2u * k * step, inverse));
            a[3] = cmul(fft_buf[i + 3u * (FFT_M / 4u)], twiddle(3u * k * step, inverse));
            dft4(&a, inverse);
            for (var j = 0u; j < 4u; j++) {
                v[4u * b + j] = a[j];
            }
        }
        workgroupBarrier();
        for (var b = 0u; b < FFT_VPT / 4u; b++) {
            let i = lid + b * FFT_WG;
            let k = i & (span - 1u);
            let base = (i - k) * 4u + k;
            for (var j = 0u; j < 4u; j++) {
                fft_buf[base + j * span] = v[4u * b + j];
            }
        }
        workgroupBarrier();
        span *= 4u;
    }
}
