// common.wgsl: declarations shared by every stage shader; prepended (after the generated
// constants N_FFT, FFT_M, FFT_LOG2_M, FFT_WG, FFT_VPT) to each stage file.
// Twin: src/gpu/params.rs (GpuParams, PassParams): same fields, same order, 4-byte scalars only.

// Per-block parameters (binding 0 of every stage). Frame indices are relative to held frame 0,
// sample indices relative to the first uploaded PCM sample.
struct Params {
    n_fft: u32,
    hop_length: u32,
    bins: u32,
    channels: u32,
    held_frames: u32,
    out_frames: u32,
    out_offset: u32,
    n_frames_rel: u32,
    pcm_len: u32,
    frame0_sample: i32,
    harmonic_kernel: u32,
    percussive_kernel: u32,
    power: f32,
    margin_harmonic: f32,
    margin_percussive: f32,
    mask_mode: u32,
    split_zeros: u32,
    inverted_stems: u32,
    n_stems: u32,
    emit_count: u32,
    emit_pos0: u32,
    emit_sample: i32,
    oa_frames: u32,
    interior_lo: u32,
    interior_hi: u32,
    wss_phase0: u32,
    harm_frames: u32,
    harm_held: u32,
    harm_offset: u32,
    bin_hz: f32,
    comb_ratio: f32,
    bass_partials: u32,
    melody_partials: u32,
    stem_kinds: u32,
    line_bins: u32,
    comb_lobe_hz: f32,
    bass_comb_fade_hz: f32,
    points_frames: u32,
    points_held: u32,
    steady_rows: u32,
    steady_offset: u32,
    n_points_rel: u32,
    steady_phase: u32,
    steady_base: u32,
    steady_kernel: u32,
    steady_margin: f32,
    comb_growth: f32,
    comb_plaw: f32,
    tonal_window: u32,
    tonal_threshold: f32,
    tail_bins: u32,
    tail_frames: u32,
    tail_rho: f32,
    spatial_segment: u32,
    spatial_phase: u32,
    spatial_bins: u32,
    spatial_stride: u32,
    drums_below: f32,
    melody_lobe_hz: f32,
    melody_min_sigma_hz: f32,
    harmonic_tap: u32,
    mid_margin: f32,
    mid_lo: u32,
    mid_hi: u32,
    sustain_ratio: f32,
    sustain_from: u32,
    sustain_to: u32,
    sustain_lo: u32,
    sustain_hi: u32,
    hold_segment: u32,
    hold_phase: u32,
    hold_stride: u32,
    hold_radius: u32,
    hold_bins: u32,
    _pad0: u32,
    _pad1: u32,
}

// One pass of the global-memory Stockham FFT (fft_global.wgsl).
struct PassParams {
    span: u32,
    radix: u32,
    inverse: u32,
    rows_mode: u32,
}

// The tonal shift's fixed-point ratio scale and ramp width (src/production.rs, TONAL_ONE and
// TONAL_SOFT).
const TONAL_ONE: f32 = 1048576.0;
const TONAL_SOFT: f32 = 0.05;

// The note sustain's ramp width (src/production.rs, SUSTAIN_SOFT).
const SUSTAIN_SOFT: f32 = 0.2;

// Frames between the steady estimate's grid points (src/production.rs, STEADY_STEP).
const STEADY_STEP: u32 = 4u;

// Rust's f32::MIN_POSITIVE (numpy's finfo(float32).tiny): the smallest normal f32.
const F32_MIN_POSITIVE: f32 = 1.17549435e-38;

// mask_mode values (src/gpu/params.rs, mod mask_mode).
const MASK_GENERAL: u32 = 0u;
const MASK_LINEAR: u32 = 1u;
const MASK_SQUARE: u32 = 2u;
const MASK_HARD: u32 = 3u;
const MASK_FOURTH: u32 = 4u;

// stem_kinds values (src/gpu/params.rs, mod stem_kind).
const STEM_DRUMS: u32 = 0u;
const STEM_BASS: u32 = 1u;
const STEM_MELODY: u32 = 2u;
const STEM_HARMONY: u32 = 3u;
const STEM_FX: u32 = 4u;

// The settings of the HPSS masks (from Params; common.wgsl declares no bindings).
struct MaskSettings {
    mode: u32,
    power: f32,
    margin_harmonic: f32,
    margin_percussive: f32,
    split_zeros: u32,
}

fn mask_pow(x: f32, m: MaskSettings) -> f32 {
    switch m.mode {
        case MASK_SQUARE: { return x * x; }
        case MASK_LINEAR: { return x; }
        case MASK_FOURTH: { let x2 = x * x; return x2 * x2; }
        default: { return pow(x, m.power); }
    }
}

// softmask_with of src/stages/mask.rs (finite power).
fn softmask(x: f32, x_ref: f32, s: MaskSettings) -> f32 {
    var z = select(x_ref, x, x > x_ref);
    let bad = z < F32_MIN_POSITIVE;
    z = select(z, 1.0, bad);
    let m = mask_pow(x / z, s);
    let r = mask_pow(x_ref / z, s);
    let mask = m / (m + r);
    return select(mask, select(0.0, 0.5, s.split_zeros == 1u), bad);
}

// steady_gate of src/stages/mask.rs for one bin: the factor on the percussive mask, softmask of
// the percussive estimate q against margin·(its steady level s), no split of zeros; hard for
// power = inf. margin ≤ 0: no gate.
fn steady_gate(q: f32, s: f32, margin: f32, m: MaskSettings) -> f32 {
    if margin <= 0.0 {
        return 1.0;
    }
    if m.mode == MASK_HARD {
        return select(0.0, 1.0, q > s * margin);
    }
    let no_split = MaskSettings(m.mode, m.power, m.margin_harmonic, m.margin_percussive, 0u);
    return softmask(q, s * margin, no_split);
}

// The HPSS masks (harmonic, percussive) of a bin with harmonic estimate h and percussive q, as
// crate::stages::mask::hpss_masks: soft masks with margins, or hard ones for power = inf
// (strict comparison: ties go to neither).
fn hpss_mask_pair(h: f32, q: f32, s: MaskSettings) -> vec2<f32> {
    if s.mode == MASK_HARD {
        return vec2<f32>(select(0.0, 1.0, h > q * s.margin_harmonic),
                         select(0.0, 1.0, q > h * s.margin_percussive));
    }
    return vec2<f32>(softmask(h, q * s.margin_harmonic, s),
                     softmask(q, h * s.margin_percussive, s));
}

// production::drums_below_bins: the bins below ratio · f0 whose harmonic share goes to the drums
// where the bass comb does not hold it.
fn drums_below_bins(f0: f32, ratio: f32, bin_hz: f32) -> u32 {
    if f0 > 0.0 && ratio > 0.0 {
        return u32(ceil((ratio * f0) / bin_hz));
    }
    return 0u;
}

// stages::hold::apply_hold on one bin's bass, melody and harmony masks m (from production_masks:
// h·b, h·(1 − b)·m, h·(1 − b)·(1 − m), at a bin from drums_below_bins up), the harmony's floor
// there and the bin's magnitude x. With h = the masks' sum, u, v, w their shares of it and
// r = max(w, floor / (h·x)), the shares become u / d, v / d and the rest, d = u + v + r; the
// masks are rebuilt from them as production_masks builds them. Bins without harmonic magnitude
// keep their masks.
fn hold_masks(m: vec3<f32>, floor: f32, x: f32) -> vec3<f32> {
    let h = m.x + m.y + m.z;
    let hx = h * x;
    if !(hx > 0.0) {
        return m;
    }
    let u = m.x / h;
    let v = m.y / h;
    let w = m.z / h;
    let d = u + v + max(w, floor / hx);
    let u2 = u / d;
    let rest = 1.0 - u2;
    let m2 = select(0.0, min(v / d / rest, 1.0), rest > 0.0);
    return vec3<f32>(h * u2, h * (1.0 - u2) * m2, h * (1.0 - u2) * (1.0 - m2));
}

// hold_masks on the bass, melody and harmony of a bin's five masks (STEM_* order), in place.
fn hold_five(m: ptr<function, array<f32, 5>>, floor: f32, x: f32) {
    let held = hold_masks(vec3<f32>((*m)[STEM_BASS], (*m)[STEM_MELODY], (*m)[STEM_HARMONY]), floor, x);
    (*m)[STEM_BASS] = held.x;
    (*m)[STEM_MELODY] = held.y;
    (*m)[STEM_HARMONY] = held.z;
}

// Half-sample symmetric reflection (scipy 'reflect'), repeating with period 2n:
// the twin of crate::stages::median::reflect_index. Needs 2n < 2^31.
fn reflect_index(i: i32, n: i32) -> i32 {
    let period = 2 * n;
    let m = ((i % period) + period) % period;
    return select(period - 1 - m, m, m < n);
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

// -i·a (forward) or +i·a (inverse).
fn rot_i(a: vec2<f32>, inverse: bool) -> vec2<f32> {
    return select(vec2<f32>(a.y, -a.x), vec2<f32>(-a.y, a.x), inverse);
}

// Radix-4 DFT of a0..a3 (already twiddled), in place; the inverse uses +i.
fn dft4(a: ptr<function, array<vec2<f32>, 4>>, inverse: bool) {
    let b0 = (*a)[0] + (*a)[2];
    let b1 = (*a)[0] - (*a)[2];
    let b2 = (*a)[1] + (*a)[3];
    let b3 = rot_i((*a)[1] - (*a)[3], inverse);
    (*a)[0] = b0 + b2;
    (*a)[1] = b1 + b3;
    (*a)[2] = b0 - b2;
    (*a)[3] = b1 - b3;
}

// Real-FFT post-processing: bin k (0 < k < M) of the n_fft-point real transform from the
// M-point complex transform Z of z[m] = x[2m] + i·x[2m+1]; w = exp(-2πik/n_fft).
fn real_split(zk: vec2<f32>, zmk: vec2<f32>, w: vec2<f32>) -> vec2<f32> {
    let b = conj(zmk);
    let even = 0.5 * (zk + b);
    let odd = rot_i(0.5 * (zk - b), false);
    return even + cmul(w, odd);
}

// Inverse of real_split, unnormalised (2·Z[k]): from bins X[k] and X[M-k]; w = exp(-2πik/n_fft).
fn real_merge(xk: vec2<f32>, xmk: vec2<f32>, w: vec2<f32>) -> vec2<f32> {
    let b = conj(xmk);
    let even = xk + b;
    let odd = cmul(xk - b, conj(w));
    return even + rot_i(odd, true);
}
