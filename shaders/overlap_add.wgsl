// overlap_add.wgsl: stage `overlap_add`: rebuild emitted samples from windowed inverse frames by
// GATHER (no float atomics): each sample sums the frames that cover it in ascending frame order,
// then divides by the window sum-square where it exceeds f32::MIN_POSITIVE (librosa istft).
// When the set has one stem more than it inverts, that last stem is the time-domain remainder
// x − Σ others, subtracted in stem order, as the CPU engine does. CPU twins: src/stages/overlap_add.rs (overlap_add, WindowSumSquare) and the
// remainder in src/separator.rs.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> stem_frames: array<f32>;    // [channel][out_frames][stems][n_fft]
@group(0) @binding(2) var<storage, read> pcm: array<f32>;            // [channel][pcm_len]
@group(0) @binding(3) var<storage, read> wss_periodic: array<f32>;   // [hop]: interior sum-square
@group(0) @binding(4) var<storage, read> wss_edge: array<f32>;       // sum-square of the edge samples
@group(0) @binding(5) var<storage, read_write> out: array<f32>;      // [stem][channel][emit_count]

// Dispatch (ceil(emit_count/256), 1, channels).
@compute @workgroup_size(256)
fn overlap_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let ch = gid.z;
    if i >= params.emit_count {
        return;
    }
    let n_fft = params.n_fft;
    let hop = params.hop_length;
    let stems = params.inverted_stems;
    // Padded position relative to output frame 0; frames t cover t·hop .. t·hop + n_fft.
    let pos = params.emit_pos0 + i;
    var first = 0u;
    if pos + 1u > n_fft {
        first = (pos + 1u - n_fft + hop - 1u) / hop;
    }
    let last = min(pos / hop, params.oa_frames - 1u);

    let interior = i >= params.interior_lo && i < params.interior_hi;
    var norm: f32;
    if interior {
        norm = wss_periodic[(params.wss_phase0 + i) % hop];
    } else {
        norm = wss_edge[select(params.interior_lo + (i - params.interior_hi), i, i < params.interior_lo)];
    }

    var rest = 0.0;
    let xi = params.emit_sample + i32(i);
    if xi >= 0 && u32(xi) < params.pcm_len {
        rest = pcm[ch * params.pcm_len + u32(xi)];
    }
    let channels = params.channels;
    for (var s = 0u; s < stems; s++) {
        var acc = 0.0;
        for (var t = first; t <= last; t++) {
            acc += stem_frames[((ch * params.out_frames + t) * stems + s) * n_fft + pos - t * hop];
        }
        if interior || norm > F32_MIN_POSITIVE {
            acc = acc / norm;
        }
        out[(s * channels + ch) * params.emit_count + i] = acc;
        rest -= acc;
    }
    if params.n_stems > stems {
        out[(stems * channels + ch) * params.emit_count + i] = rest;
    }
}
