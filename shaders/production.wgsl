// production.wgsl: the production stems (drums, bass, melody, harmony, fx) as masks that
// partition unity at every bin. CPU twin: src/production.rs.
//
// line_input: the channel sums the pitch lines are tracked on (production::line_input): per
// harmonic frame, the summed harmonic estimate of bins < line_bins (the bass line's reach), then
// the summed magnitude of every bin. The host reads them back, tracks the bass and melody lines
// (stages::pitch: a Viterbi path per frame, sequential and branchy, a few µs per frame on one
// core) and uploads one (bass f0, melody f0) pair per output frame.
//
// production: the HPSS masks (as mask.wgsl), the percussive one times the steady gate (the
// steady estimate from median.wgsl's median_steady; stages::mask::steady_gate), the tonal shift
// (production::tonal_weights, tonal_shift), the bass weight max(low register, comb on the bass
// line's partials, each limited to its share of the partial) and the melody comb, then each
// inverted stem's mask applied to the spectrum (production::production_masks, add_comb).

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;          // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read> harm: array<f32>;                   // [channel][harm_frames][bins]
@group(0) @binding(3) var<storage, read> perc: array<f32>;                   // [channel][out_frames][bins]
@group(0) @binding(4) var<storage, read> low: array<f32>;                    // [bins]
// [out_frames] (bass, melody) f0, then [out_frames][PROFILE_PARTIALS / 2] the bass profile
@group(0) @binding(5) var<storage, read> lines: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> stem_spectra: array<vec2<f32>>; // [channel][out_frames][stems][bins]

@group(0) @binding(9) var<storage, read> steady: array<f32>;                 // [channel][steady_rows][bins]
// With the spatial filter on (spatial_segment > 0) or the harmony hold (hold_segment > 0),
// production_masks writes every channel's five masks here instead of production's stem spectra;
// spatial.wgsl (stereo with the filter) or hold.wgsl turns them into the stem spectra.
@group(0) @binding(10) var<storage, read_write> stem_masks: array<f32>;      // [channel][out_frames][5][bins]

// line_input's own bindings (a separate entry point, a separate bind group); production reads mag
// too (the tonal ratios).
@group(0) @binding(7) var<storage, read> mag: array<f32>;                    // [channel][held_frames][bins]
@group(0) @binding(8) var<storage, read_write> line_in: array<f32>;          // [harm_frames][line_bins + bins]

fn mask_settings() -> MaskSettings {
    return MaskSettings(params.mask_mode, params.power, params.margin_harmonic,
                        params.margin_percussive, params.split_zeros);
}

// Dispatch (ceil(bins/64), harm_frames, 1).
@compute @workgroup_size(64)
fn line_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let t = gid.y;
    if b >= params.bins || t >= params.harm_frames {
        return;
    }
    let row = t * (params.line_bins + params.bins);
    if b < params.line_bins {
        var s = harm[t * params.bins + b];
        for (var ch = 1u; ch < params.channels; ch++) {
            s += harm[(ch * params.harm_frames + t) * params.bins + b];
        }
        line_in[row + b] = s;
    }
    var s = mag[(params.harm_held + t) * params.bins + b];
    for (var ch = 1u; ch < params.channels; ch++) {
        s += mag[(ch * params.held_frames + params.harm_held + t) * params.bins + b];
    }
    line_in[row + params.line_bins + b] = s;
}

// Partial h's amplitude in the harmonic row at harm[base ..]: the larger of the two bins around
// h·f0 (0 past the top).
fn partial_amp(base: u32, h: u32, f0: f32) -> f32 {
    if h == 0u {
        return 0.0;
    }
    let lo = u32(floor(f32(h) * f0 / params.bin_hz));
    if lo + 1u >= params.bins {
        return 0.0;
    }
    return max(harm[base + lo], harm[base + lo + 1u]);
}

// add_comb of the twin at bin b: max of `init` and each partial's bump (times its share of the
// partial when `shared_row`, reading the harmonic row at harm[base ..]: the falling envelope
// model model_1 = a_1, model_h = min(a_h, comb_growth · min(a_1 … a_{h−1})), from h = 3 also at
// most comb_plaw · max(m_1, m_2) · h^(−α) with α = max(log2(m_1 / m_2), 0), from h = 4 also at
// most comb_plaw · max(m_1, m_2) · (h − 2)^(−BASS_UPPER_EXPONENT) (from the 3rd partial where it
// is the peak: BASS_THIRD_PEAK); from h = 2 the bump is
// replaced by the predicted amplitude pred = model_h · window_lobe(d), d the bin's distance from
// the partial less the pitch spread, and a bin above pred gives the share (pred / harm[b])²).
// comb_fade of the twin (pitch::low_weight over ±3 semitones): a partial's weight fading out
// around fade_hz (≤ 0: no fade).
// production::BASS_UPPER_EXPONENT: the comb's bound on the bass's partials from the 4th on.
const BASS_UPPER_EXPONENT: f32 = 2.0;
// production::BASS_THIRD_PEAK: where m_3 ≥ this · max(m_1, m_2) the bound runs from the 3rd
// partial, comb_plaw · max(m_1, m_2, m_3) · (h − 3)^(−BASS_UPPER_EXPONENT) (upper_anchor).
const BASS_THIRD_PEAK: f32 = 0.8;
// production::PROFILE_PARTIALS, PROFILE_MIN_HZ: the bass profile's partials (1 ..= this) and
// its lowest partial frequency. With a profile ratio c_h ≥ 0 (output frame j's segment's, after
// the lines: production::bass_profile, computed on the host), partial h from PROFILE_MIN_HZ is
// also capped at c_h · a_1, and there a bin above the prediction gives the share
// pred² / (pred² + (harm[b] − pred)²).
const PROFILE_PARTIALS: u32 = 8u;
const PROFILE_MIN_HZ: f32 = 150.0;

fn profile_ratio(j: u32, h: u32) -> f32 {
    let pair = lines[params.out_frames + j * (PROFILE_PARTIALS / 2u) + (h - 1u) / 2u];
    return select(pair.x, pair.y, (h - 1u) % 2u == 1u);
}

// production::window_lobe: the Hann window's main lobe as an amplitude d bins from a partial.
fn window_lobe(d: f32) -> f32 {
    if d < 2.0 {
        let c = cos(0.7853982 * d);
        return c * c;
    }
    return 0.0;
}

fn comb_fade(centre: f32, fade_hz: f32) -> f32 {
    if fade_hz > 0.0 {
        let st = 12.0 * log2(centre / fade_hz);
        return 1.0 / (1.0 + exp(st / 3.0));
    }
    return 1.0;
}

fn comb(b: u32, f0: f32, partials: u32, fade_hz: f32, lobe: f32, min_sigma: f32, shared_row: bool, base: u32, init: f32, j: u32) -> f32 {
    var w = init;
    if f0 <= 0.0 {
        return w;
    }
    let r = params.comb_ratio;
    let f = f32(b) * params.bin_hz;
    var h_hi = f32(partials);
    // σ = max(√((h·f0·r)² + lobe²), min_sigma) ≤ h·f0·r + lobe + min_sigma, so partial h
    // reaches bin b only if |f − h·f0| < 3·(h·f0·r + reach): a range of h, widened by one each
    // side against rounding.
    let reach = lobe + min_sigma;
    let h_lo = max(1.0, floor((f - 3.0 * reach) / ((1.0 + 3.0 * r) * f0)) - 1.0);
    if 3.0 * r < 1.0 {
        h_hi = min(h_hi, ceil((f + 3.0 * reach) / ((1.0 - 3.0 * r) * f0)) + 1.0);
    }
    // The envelope model runs over every partial from the first; the bumps only from h_lo.
    var run = 0.0;
    let hb = select(0.0, harm[base + b], shared_row);
    var m1 = 0.0;
    var m2 = 0.0;
    var m3 = 0.0;
    var alpha = 0.0;
    var a1 = 0.0;
    let h_first = select(u32(h_lo), 1u, shared_row);
    for (var h = h_first; f32(h) <= h_hi; h++) {
        var share = 1.0;
        if shared_row {
            let a = partial_amp(base, h, f0);
            var model = select(min(a, params.comb_growth * run), a, h == 1u);
            if h > 2u && m2 > 0.0 {
                model = min(model, params.comb_plaw * max(m1, m2) * pow(f32(h), -alpha));
            }
            if h > 3u && m2 > 0.0 {
                let peak3 = m3 >= BASS_THIRD_PEAK * max(m1, m2);
                let top = select(max(m1, m2), max(max(m1, m2), m3), peak3);
                let origin = select(2.0, 3.0, peak3);
                model = min(model, params.comb_plaw * top * pow(f32(h) - origin, -BASS_UPPER_EXPONENT));
            }
            if h == 1u {
                m1 = model;
            }
            if h == 2u {
                m2 = model;
                if m2 > 0.0 {
                    alpha = max(log2(m1 / m2), 0.0);
                }
            }
            if h == 3u {
                m3 = model;
            }
            run = select(min(run, a), a, h == 1u);
            if h == 1u {
                a1 = a;
            }
            var cap = model;
            var profiled = false;
            if h > 1u && h <= PROFILE_PARTIALS && f32(h) * f0 >= PROFILE_MIN_HZ {
                let c = profile_ratio(j, h);
                if c >= 0.0 {
                    cap = min(cap, c * a1);
                    profiled = true;
                }
            }
            if h > 1u {
                // From the 2nd partial: the predicted amplitude cap · window_lobe(d) at this bin
                // (d its distance in bins, less the pitch spread), and the share of the bin above it.
                if f32(h) < h_lo {
                    continue;
                }
                let centre = f32(h) * f0;
                let spread = centre * r / params.bin_hz;
                let c0 = centre / params.bin_hz;
                let d = max(abs(f32(b) - c0) - spread, 0.0);
                let pred = cap * window_lobe(d);
                // Nothing predicted, nothing taken (a bin with no harmonic magnitude included).
                share = select(0.0, 1.0, pred > 0.0);
                if pred > 0.0 && hb > pred {
                    if profiled {
                        let e = hb - pred;
                        share = (pred * pred) / (pred * pred + e * e);
                    } else {
                        share = (pred / hb) * (pred / hb);
                    }
                }
                w = max(w, comb_fade(centre, fade_hz) * share);
                continue;
            }
        }
        if f32(h) < h_lo {
            continue;
        }
        let centre = f32(h) * f0;
        let cr = centre * r;
        let sigma = max(sqrt(cr * cr + lobe * lobe), min_sigma);
        let d = (f - centre) * (1.0 / sigma);
        let x = 1.0 - d * d / 9.0;
        if x <= 0.0 {
            continue;
        }
        let x2 = x * x;
        w = max(w, share * comb_fade(centre, fade_hz) * (x2 * x2));
    }
    return w;
}

// The tonal weight of output frame j, bin b, channel ch (production::tonal_weights): the exact
// integer sum of the tonal ratios (production::tonal_ratio_q) of the harmonic rows within
// ±tonal_window of its own. The harmonic rows hold every signal frame within that reach, so the
// window ends where they end.
fn tonal_weight(ch: u32, j: u32, b: u32) -> f32 {
    let centre = params.harm_offset + j;
    let lo = select(0u, centre - params.tonal_window, centre > params.tonal_window);
    let hi = min(centre + params.tonal_window + 1u, params.harm_frames);
    var sum = 0u;
    for (var r = lo; r < hi; r++) {
        let m = mag[(ch * params.held_frames + params.harm_held + r) * params.bins + b];
        let h = harm[(ch * params.harm_frames + r) * params.bins + b];
        let top = max(m, h);
        let ratio = select(0.0, min(m, h) / top, top > 0.0);
        sum += u32(ratio * TONAL_ONE + 0.5);
    }
    let stability = f32(sum) / (f32(hi - lo) * TONAL_ONE);
    return clamp((stability - params.tonal_threshold) * (1.0 / TONAL_SOFT), 0.0, 1.0);
}

// The note sustain (production::sustain_weight): the share of bin b's percussive mask that
// moves to the harmonic one, from its magnitude now and the smallest over the frames
// sustain_from ..= sustain_to ahead (0 past the signal's end; the held rows hold every signal
// frame within that reach).
fn sustain_weight(ch: u32, j: u32, b: u32) -> f32 {
    let held = params.out_offset + j;
    let m = mag[(ch * params.held_frames + held) * params.bins + b];
    var ahead = 3.0e38;
    for (var d = params.sustain_from; d <= params.sustain_to; d++) {
        if held + d >= params.n_frames_rel {
            ahead = 0.0;
            break;
        }
        ahead = min(ahead, mag[(ch * params.held_frames + held + d) * params.bins + b]);
    }
    return select(0.0, clamp((ahead / m - params.sustain_ratio) * (1.0 / SUSTAIN_SOFT), 0.0, 1.0), m > 0.0);
}

// The drum tail (production::drum_tail): bin b's percussive estimate q held up along a drum's
// decay, off the bass line's comb. Earlier frames' estimates come from perc within the output
// frames and from a median of mag's held rows before them (the CPU twin's order and values).
fn drum_tail(ch: u32, j: u32, b: u32, q: f32, f_bass: f32) -> f32 {
    let held = params.out_offset + j;
    let x = mag[(ch * params.held_frames + held) * params.bins + b];
    var best = q;
    var g = 1.0;
    for (var back = 1u; back <= params.tail_frames; back++) {
        g *= params.tail_rho;
        var p = 0.0;
        if back <= j {
            p = perc[(ch * params.out_frames + j - back) * params.bins + b];
        } else if back <= held {
            let row = (ch * params.held_frames + held - back) * params.bins;
            p = select_median(row, 1u, i32(b), i32(params.bins), params.percussive_kernel, 1);
        } else {
            continue;
        }
        best = max(best, min(g * p, x));
    }
    let bass = comb(b, f_bass, params.bass_partials, params.bass_comb_fade_hz, params.comb_lobe_hz, 0.0, false, 0u, 0.0, 0u);
    return q + (best - q) * (1.0 - bass);
}

// One bin's inputs to the stems' masks: the HPSS masks h and p (drum tail, steady gate and tonal
// shift applied) and the bass and melody line weights bw and mw.
struct StemWeights {
    h: f32,
    p: f32,
    bw: f32,
    mw: f32,
    // The bass stem's weight (bw, or the comb alone below drums_below_bins) and the drums' extra
    // share of the harmonic part there (bw − bc; 0 elsewhere).
    bc: f32,
    kw: f32,
}

fn stem_weights(ch: u32, j: u32, b: u32) -> StemWeights {
    let harm_base = (ch * params.harm_frames + params.harm_offset + j) * params.bins;
    var q = perc[(ch * params.out_frames + j) * params.bins + b];
    let line = lines[j];
    if b < params.tail_bins {
        q = drum_tail(ch, j, b, q, line.x);
    }
    let settings = mask_settings();
    // The harmonic margin of the mid band (production::hpss_masks_banded).
    var hpss = settings;
    if b >= params.mid_lo && b < params.mid_hi {
        hpss.margin_harmonic = params.mid_margin;
        // librosa's split_zeros for the band's margins (HpssParams::split_zeros).
        hpss.split_zeros = select(0u, 1u, params.mid_margin == 1.0 && params.margin_percussive == 1.0);
    }
    let hp = hpss_mask_pair(harm[harm_base + b], q, hpss);
    var h = hp.x;
    var p = hp.y;
    if params.steady_margin > 0.0 {
        // The nearest grid point's steady estimate (production::SteadyGrid::row).
        let row = min((params.steady_phase + j) / STEADY_STEP + params.steady_base,
                      params.steady_rows - 1u);
        let s = steady[(ch * params.steady_rows + row) * params.bins + b];
        p *= steady_gate(q, s, params.steady_margin, settings);
    }
    if params.sustain_to > 0u && b >= params.sustain_lo && b < params.sustain_hi {
        let moved = sustain_weight(ch, j, b) * p;
        p -= moved;
        h += moved;
    }
    if params.tonal_window > 0u {
        h += tonal_weight(ch, j, b) * max(1.0 - h - p, 0.0);
    }
    // The comb alone, then the bass weight: the larger of it and the low register.
    let c = comb(b, line.x, params.bass_partials, params.bass_comb_fade_hz, params.comb_lobe_hz, 0.0, true, harm_base, 0.0, j);
    let bw = max(low[b], c);
    let mw = comb(b, line.y, params.melody_partials, 0.0, params.melody_lobe_hz, params.melody_min_sigma_hz, false, 0u, 0.0, j);
    var bc = bw;
    var kw = 0.0;
    if b < drums_below_bins(line.x, params.drums_below, params.bin_hz) {
        bc = c;
        kw = bw - c;
    }
    return StemWeights(h, p, bw, mw, bc, kw);
}

// The mask of the stem of kind `kind` (STEM_*).
fn stem_mask(w: StemWeights, kind: u32) -> f32 {
    switch kind {
        case STEM_DRUMS: { return w.p + w.h * w.kw; }
        case STEM_FX: { return max(1.0 - w.h - w.p, 0.0); }
        case STEM_BASS: { return w.h * w.bc; }
        case STEM_MELODY: { return w.h * (1.0 - w.bw) * w.mw; }
        case STEM_HARMONY: { return w.h * (1.0 - w.bw) * (1.0 - w.mw); }
        default: { return 0.0; }
    }
}

// Dispatch (ceil(bins/64), out_frames, channels); no workgroups with the spatial filter or the
// harmony hold on.
@compute @workgroup_size(64)
fn production(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let j = gid.y;
    let ch = gid.z;
    if b >= params.bins || j >= params.out_frames {
        return;
    }
    let w = stem_weights(ch, j, b);
    let z = spectra[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
    let stems = params.inverted_stems;
    let out = ((ch * params.out_frames + j) * stems) * params.bins + b;
    for (var s = 0u; s < stems; s++) {
        let m = stem_mask(w, (params.stem_kinds >> (4u * s)) & 15u);
        stem_spectra[out + s * params.bins] = vec2<f32>(z.x * m, z.y * m);
    }
}

// With the spatial filter or the harmony hold: every channel's five masks, in STEM_* order, for
// spatial.wgsl and hold.wgsl. Dispatch (ceil(bins/64), out_frames, channels); no workgroups with
// both off.
@compute @workgroup_size(64)
fn production_masks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let j = gid.y;
    let ch = gid.z;
    if b >= params.bins || j >= params.out_frames {
        return;
    }
    let w = stem_weights(ch, j, b);
    let at = ((ch * params.out_frames + j) * 5u) * params.bins + b;
    for (var k = 0u; k < 5u; k++) {
        stem_masks[at + k * params.bins] = stem_mask(w, k);
    }
}
