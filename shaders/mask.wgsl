// mask.wgsl: stage `mask`: HPSS masks as librosa.util.softmask, applied to the spectrum.
// CPU twin: src/stages/mask.rs (hpss_masks, then apply_mask per stem): the same branch-free
// formula, the same fast paths for power 1 and 2, hard masks for power = inf (strict comparison:
// ties go to neither). Writes every inverted stem: H = X·mask_H and, when the set has a residual,
// P = X·mask_P; the last stem (P or the residual) is the time-domain remainder (overlap_add.wgsl).

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;          // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read> harm: array<f32>;                   // [channel][out_frames][bins]
@group(0) @binding(3) var<storage, read> perc: array<f32>;                   // [channel][out_frames][bins]
@group(0) @binding(4) var<storage, read_write> stem_spectra: array<vec2<f32>>; // [channel][out_frames][stems][bins]

fn mask_pow(x: f32) -> f32 {
    switch params.mask_mode {
        case MASK_SQUARE: { return x * x; }
        case MASK_LINEAR: { return x; }
        default: { return pow(x, params.power); }
    }
}

// softmask_with of the CPU twin (finite power).
fn softmask(x: f32, x_ref: f32) -> f32 {
    var z = select(x_ref, x, x > x_ref);
    let bad = z < F32_MIN_POSITIVE;
    z = select(z, 1.0, bad);
    let m = mask_pow(x / z);
    let r = mask_pow(x_ref / z);
    let mask = m / (m + r);
    return select(mask, select(0.0, 0.5, params.split_zeros == 1u), bad);
}

// Dispatch (ceil(bins/64), out_frames, channels).
@compute @workgroup_size(64)
fn mask(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let j = gid.y;
    let ch = gid.z;
    if b >= params.bins || j >= params.out_frames {
        return;
    }
    let own = (ch * params.out_frames + j) * params.bins + b;
    let h = harm[own];
    let q = perc[own];
    var mask_h: f32;
    var mask_p: f32;
    if params.mask_mode == MASK_HARD {
        mask_h = select(0.0, 1.0, h > q * params.margin_harmonic);
        mask_p = select(0.0, 1.0, q > h * params.margin_percussive);
    } else {
        mask_h = softmask(h, q * params.margin_harmonic);
        mask_p = softmask(q, h * params.margin_percussive);
    }
    let z = spectra[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
    let stems = params.inverted_stems;
    let out = ((ch * params.out_frames + j) * stems) * params.bins + b;
    stem_spectra[out] = vec2<f32>(z.x * mask_h, z.y * mask_h);
    if stems > 1u {
        stem_spectra[out + params.bins] = vec2<f32>(z.x * mask_p, z.y * mask_p);
    }
}
