// spatial.wgsl: the spatial filter over the five production stems of a stereo signal (a
// multichannel Wiener filter). CPU twin: src/stages/spatial.rs.
//
// The production stage wrote each channel's five masks (stem_masks, PRODUCTION order: drums,
// bass, melody, harmony, fx, which is also the STEM_* order). The block's output frames lie on
// the signal's segment grid: output frame j is in the block's segment (spatial_phase + j) /
// spatial_segment. When the phase is not 0, segment 0 began in the previous block: the host
// uploaded its covariances and spatial_sums leaves it alone.
//
// spatial_chunks: per chunk of 64 frames (sum_chunk), stem and bin, Σ|S_0|², Σ|S_1|²,
// Σ S_0·S̄_1 over every spatial_stride-th frame of the chunk from its first (stats_stride), in
// frame order (accumulate_rows); spatial_sums: per segment,
// stem and bin, its chunks' sums added in chunk order, as the CPU sums them, then normalised into
// R (normalise). Two passes so that the frames are summed by many invocations at once.
// spatial_apply: per output frame and bin, both channels at once: v_j and C = Σ v_j R_j
// (mix_model), y = C⁻¹X (solve), then each inverted stem's row of v_j R_j y (stem_spectra).
// The filter acts on bins 0 .. spatial_bins; above, the masks stand as they are.
// With the harmony hold (hold_segment > 0) spatial_apply holds the bass, melody and harmony masks
// as it reads them (hold_masks, floors from hold.wgsl's hold_floors); the sums take them unheld,
// as the CPU twin's covariances do.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;            // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read> stem_masks: array<f32>;               // [channel][out_frames][5][bins]
@group(0) @binding(3) var<storage, read_write> cov: array<f32>;                // [segment][5][4][spatial_bins]
@group(0) @binding(4) var<storage, read_write> stem_spectra: array<vec2<f32>>; // [channel][out_frames][stems][bins]
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;           // [chunk][5][4][spatial_bins]
// The harmony hold's inputs (spatial_apply, with the hold on).
@group(0) @binding(6) var<storage, read> lines: array<vec2<f32>>;              // [out_frames] (bass, melody) f0, ...
@group(0) @binding(7) var<storage, read> mag: array<f32>;                      // [channel][held_frames][bins]
@group(0) @binding(8) var<storage, read> hold_floors: array<f32>;              // [point][channel][hold_bins]

const SPATIAL_STEMS: u32 = 5u;
// stages::spatial::SUM_CHUNK.
const SUM_CHUNK: u32 = 64u;
// stages::spatial::SPATIAL_REG and SPATIAL_FLOOR.
const SPATIAL_REG: f32 = 0.1;
const SPATIAL_FLOOR: f32 = 1e-30;
// stages::spatial::SPATIAL_SHRINK.
const SPATIAL_SHRINK: f32 = 1e-3;
const F32_MAX: f32 = 3.40282347e38;

fn spatial_x(ch: u32, j: u32, b: u32) -> vec2<f32> {
    return spectra[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
}

fn spatial_mask(ch: u32, j: u32, k: u32, b: u32) -> f32 {
    return stem_masks[((ch * params.out_frames + j) * SPATIAL_STEMS + k) * params.bins + b];
}

// Output frame j's five masks of channel ch at bin b, held by the harmony hold where it acts
// (hold.wgsl: output frame j reads grid point (hold_phase mod hold_stride + j) / hold_stride).
fn spatial_masks(ch: u32, j: u32, b: u32) -> array<f32, 5> {
    var m: array<f32, 5>;
    for (var k = 0u; k < SPATIAL_STEMS; k++) {
        m[k] = spatial_mask(ch, j, k, b);
    }
    if params.hold_segment > 0u && b < params.hold_bins
        && b >= drums_below_bins(lines[j].x, params.drums_below, params.bin_hz) {
        let q = (params.hold_phase % params.hold_stride + j) / params.hold_stride;
        let f = hold_floors[(q * params.channels + ch) * params.hold_bins + b];
        let x = mag[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
        hold_five(&m, f, x);
    }
    return m;
}

// Row r of stem k's covariances in segment s, bin b (b < spatial_bins).
fn cov_at(s: u32, k: u32, r: u32, b: u32) -> u32 {
    return ((s * SPATIAL_STEMS + k) * 4u + r) * params.spatial_bins + b;
}

// The chunk grid: sum_chunk frames from the first frame of the first segment the block computes
// (segments are whole multiples of chunks, so no chunk spans two segments).
fn sum_chunk() -> u32 {
    let seg = params.spatial_segment;
    return select(seg, SUM_CHUNK, seg % SUM_CHUNK == 0u);
}

fn first_computed_segment() -> u32 {
    return select(0u, 1u, params.spatial_phase > 0u);
}

// Block frame where the chunk grid starts.
fn chunk_origin() -> u32 {
    return first_computed_segment() * params.spatial_segment - params.spatial_phase;
}

// Dispatch (ceil(spatial_bins/64), chunks, 5): chunk g's sums, from 0 in frame order.
@compute @workgroup_size(64)
fn spatial_chunks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let k = gid.z;
    if b >= params.spatial_bins || params.spatial_segment == 0u {
        return;
    }
    let g = gid.y;
    let lo = chunk_origin() + g * sum_chunk();
    let hi = min(lo + sum_chunk(), params.out_frames);
    var s00 = 0.0;
    var s11 = 0.0;
    var sre = 0.0;
    var sim = 0.0;
    for (var j = lo; j < hi; j += max(params.spatial_stride, 1u)) {
        let x0 = spatial_x(0u, j, b);
        let x1 = spatial_x(1u, j, b);
        // cross_spectra
        let p0 = x0.x * x0.x + x0.y * x0.y;
        let p1 = x1.x * x1.x + x1.y * x1.y;
        let qr = x0.x * x1.x + x0.y * x1.y;
        let qi = x0.y * x1.x - x0.x * x1.y;
        let a = spatial_mask(0u, j, k, b);
        let c = spatial_mask(1u, j, k, b);
        let ac = a * c;
        s00 += a * a * p0;
        s11 += c * c * p1;
        sre += ac * qr;
        sim += ac * qi;
    }
    partials[cov_at(g, k, 0u, b)] = s00;
    partials[cov_at(g, k, 1u, b)] = s11;
    partials[cov_at(g, k, 2u, b)] = sre;
    partials[cov_at(g, k, 3u, b)] = sim;
}

// Dispatch (ceil(spatial_bins/64), segments the block computes, 5): a segment's sums are its
// chunks' added in chunk order, then normalised; the shrinkage needs every stem's power at the
// bin, summed in stem order (each stem's chunks summed again by each invocation).
@compute @workgroup_size(64)
fn spatial_sums(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let k = gid.z;
    if b >= params.spatial_bins || params.spatial_segment == 0u {
        return;
    }
    let seg = params.spatial_segment;
    let per_segment = seg / sum_chunk();
    let s = gid.y + first_computed_segment();
    let g0 = gid.y * per_segment;
    let frames = params.out_frames - chunk_origin();
    let g1 = min(g0 + per_segment, (frames + sum_chunk() - 1u) / sum_chunk());
    var r00 = 0.0;
    var r11 = 0.0;
    var re = 0.0;
    var im = 0.0;
    var total = 0.0;
    for (var kk = 0u; kk < SPATIAL_STEMS; kk++) {
        var a00 = 0.0;
        var a11 = 0.0;
        for (var g = g0; g < g1; g++) {
            a00 += partials[cov_at(g, kk, 0u, b)];
            a11 += partials[cov_at(g, kk, 1u, b)];
        }
        total += 0.5 * (a00 + a11);
        if kk == k {
            r00 = a00;
            r11 = a11;
        }
    }
    for (var g = g0; g < g1; g++) {
        re += partials[cov_at(g, k, 2u, b)];
        im += partials[cov_at(g, k, 3u, b)];
    }
    // normalise
    let shrink = SPATIAL_SHRINK * total;
    let d = 0.5 * (r00 + r11) + shrink;
    if d > SPATIAL_FLOOR && d <= F32_MAX {
        let inv = 1.0 / d;
        r00 = (r00 + shrink) * inv + SPATIAL_REG;
        r11 = (r11 + shrink) * inv + SPATIAL_REG;
        re *= inv;
        im *= inv;
    } else {
        r00 = 1.0 + SPATIAL_REG;
        r11 = 1.0 + SPATIAL_REG;
        re = 0.0;
        im = 0.0;
    }
    cov[cov_at(s, k, 0u, b)] = r00;
    cov[cov_at(s, k, 1u, b)] = r11;
    cov[cov_at(s, k, 2u, b)] = re;
    cov[cov_at(s, k, 3u, b)] = im;
}

// Dispatch (ceil(bins/64), out_frames, 1).
@compute @workgroup_size(64)
fn spatial_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let j = gid.y;
    if b >= params.bins || j >= params.out_frames || params.spatial_segment == 0u {
        return;
    }
    let s = (params.spatial_phase + j) / params.spatial_segment;
    let x0 = spatial_x(0u, j, b);
    let x1 = spatial_x(1u, j, b);
    let stems = params.inverted_stems;
    var m0 = spatial_masks(0u, j, b);
    var m1 = spatial_masks(1u, j, b);
    if b >= params.spatial_bins {
        // Above the filter's band: the masks as they are.
        for (var i = 0u; i < stems; i++) {
            let k = (params.stem_kinds >> (4u * i)) & 15u;
            if k >= SPATIAL_STEMS {
                continue;
            }
            let o0 = ((0u * params.out_frames + j) * stems + i) * params.bins + b;
            let o1 = ((1u * params.out_frames + j) * stems + i) * params.bins + b;
            stem_spectra[o0] = x0 * m0[k];
            stem_spectra[o1] = x1 * m1[k];
        }
        return;
    }
    let p0 = x0.x * x0.x + x0.y * x0.y;
    let p1 = x1.x * x1.x + x1.y * x1.y;
    // mix_model
    var v: array<f32, 5>;
    var c00 = 0.0;
    var c11 = 0.0;
    var cre = 0.0;
    var cim = 0.0;
    for (var k = 0u; k < SPATIAL_STEMS; k++) {
        let vk = 0.5 * (m0[k] * m0[k] * p0 + m1[k] * m1[k] * p1);
        v[k] = vk;
        c00 += vk * cov[cov_at(s, k, 0u, b)];
        c11 += vk * cov[cov_at(s, k, 1u, b)];
        cre += vk * cov[cov_at(s, k, 2u, b)];
        cim += vk * cov[cov_at(s, k, 3u, b)];
    }
    // solve: C scaled by 1 / tr C, then C⁻¹ = adj(C / t) / (det · t).
    let t = c00 + c11;
    let loud = t > SPATIAL_FLOOR && t <= F32_MAX;
    let it = select(0.0, 1.0 / t, loud);
    let a = c00 * it;
    let d = c11 * it;
    let er = cre * it;
    let ei = cim * it;
    let det = a * d - (er * er + ei * ei);
    let good = loud && det > 1e-9;
    let inv = select(0.0, it / det, good);
    let y0r = (d * x0.x - (er * x1.x - ei * x1.y)) * inv;
    let y0i = (d * x0.y - (er * x1.y + ei * x1.x)) * inv;
    let y1r = (a * x1.x - (er * x0.x + ei * x0.y)) * inv;
    let y1i = (a * x1.y - (er * x0.y - ei * x0.x)) * inv;
    let ok = select(0.0, 1.0, good);
    // stem_spectra, both channels: where C was singular y is 0 and the mask's share takes over.
    for (var i = 0u; i < stems; i++) {
        let k = (params.stem_kinds >> (4u * i)) & 15u;
        if k >= SPATIAL_STEMS {
            continue;
        }
        let r00 = cov[cov_at(s, k, 0u, b)];
        let r11 = cov[cov_at(s, k, 1u, b)];
        let rre = cov[cov_at(s, k, 2u, b)];
        let rim = cov[cov_at(s, k, 3u, b)];
        let z0r = r00 * y0r + (rre * y1r - rim * y1i);
        let z0i = r00 * y0i + (rre * y1i + rim * y1r);
        let z1r = (rre * y0r + rim * y0i) + r11 * y1r;
        let z1i = (rre * y0i - rim * y0r) + r11 * y1i;
        let keep0 = (1.0 - ok) * m0[k];
        let keep1 = (1.0 - ok) * m1[k];
        let o0 = ((0u * params.out_frames + j) * stems + i) * params.bins + b;
        let o1 = ((1u * params.out_frames + j) * stems + i) * params.bins + b;
        stem_spectra[o0] = vec2<f32>(z0r * v[k] + keep0 * x0.x, z0i * v[k] + keep0 * x0.y);
        stem_spectra[o1] = vec2<f32>(z1r * v[k] + keep1 * x1.x, z1i * v[k] + keep1 * x1.y);
    }
}
