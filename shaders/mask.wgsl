// mask.wgsl: stage `mask`: HPSS masks as librosa.util.softmask, applied to the spectrum.
// CPU twin: src/stages/mask.rs (hpss_masks, then apply_mask per stem): the same branch-free
// formula, the same fast paths for power 1 and 2, hard masks for power = inf (strict comparison:
// ties go to neither). Writes every inverted stem: H = X·mask_H and, when the set has a residual,
// P = X·mask_P; the last stem (P or the residual) is the time-domain remainder (overlap_add.wgsl).

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;          // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read> harm: array<f32>;                   // [channel][harm_frames][bins]
@group(0) @binding(3) var<storage, read> perc: array<f32>;                   // [channel][out_frames][bins]
@group(0) @binding(4) var<storage, read_write> stem_spectra: array<vec2<f32>>; // [channel][out_frames][stems][bins]

fn mask_settings() -> MaskSettings {
    return MaskSettings(params.mask_mode, params.power, params.margin_harmonic,
                        params.margin_percussive, params.split_zeros);
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
    let h = harm[(ch * params.harm_frames + params.harm_offset + j) * params.bins + b];
    let q = perc[(ch * params.out_frames + j) * params.bins + b];
    let masks = hpss_mask_pair(h, q, mask_settings());
    let mask_h = masks.x;
    let mask_p = masks.y;
    let z = spectra[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
    let stems = params.inverted_stems;
    let out = ((ch * params.out_frames + j) * stems) * params.bins + b;
    stem_spectra[out] = vec2<f32>(z.x * mask_h, z.y * mask_h);
    if stems > 1u {
        stem_spectra[out + params.bins] = vec2<f32>(z.x * mask_p, z.y * mask_p);
    }
}
