// hold.wgsl: the harmony hold of the production stems. CPU twin: src/stages/hold.rs (and the
// points' pass of src/separator.rs, hold_points / spatial_stats).
//
// production_masks wrote every channel's five unheld masks (stem_masks). The hold's grid points
// are the signal frames that are multiples of hold_stride; the block's point q lies at output
// frame q·hold_stride − lead, lead = hold_phase mod hold_stride (so point 0 lies before output
// frame 0 when the lead is not 0), and output frame j reads point (lead + j) / hold_stride.
// When hold_phase is not 0, output frame 0 lies in the segment before the block's own: the
// floors of that segment's points (the rebuilt frames read them) were uploaded by the host, and
// these entries compute only the points from the block's first segment boundary on.
//
// hold_points: each computed point's harmony amplitude, its unheld mask times the magnitude, per
// channel, over bins 0 .. hold_bins.
// hold_floors: each computed point's floor, the mean of the points within ±hold_radius in its
// segment, summed in point order (segment_floors).
// hold_spectra: without the spatial filter, each inverted stem's spectrum from the held masks
// (hold_masks in common.wgsl, from drums_below_bins of the bass line up); with the filter,
// spatial_apply holds the masks itself as it reads them.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> spectra: array<vec2<f32>>;           // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read> stem_masks: array<f32>;              // [channel][out_frames][5][bins]
@group(0) @binding(3) var<storage, read> mag: array<f32>;                     // [channel][held_frames][bins]
@group(0) @binding(4) var<storage, read> lines: array<vec2<f32>>;             // [out_frames] (bass, melody) f0, ...
@group(0) @binding(5) var<storage, read_write> points: array<f32>;            // [point][channel][hold_bins]
@group(0) @binding(6) var<storage, read_write> floors: array<f32>;            // [point][channel][hold_bins]
@group(0) @binding(7) var<storage, read_write> stem_spectra: array<vec2<f32>>; // [channel][out_frames][stems][bins]

const HOLD_STEMS: u32 = 5u;
// PRODUCTION order (STEM_* values): the harmony's row.
const HOLD_HARMONY_ROW: u32 = 3u;

fn hold_lead() -> u32 {
    return params.hold_phase % params.hold_stride;
}

// Points the block holds: the grid points of output frames 0 .. out_frames.
fn hold_point_count() -> u32 {
    return (hold_lead() + max(params.out_frames, 1u) - 1u) / params.hold_stride + 1u;
}

// Points of the carried segment (floors uploaded): those before the first segment boundary.
fn hold_carried() -> u32 {
    if params.hold_phase == 0u {
        return 0u;
    }
    return min((params.hold_segment - params.hold_phase + hold_lead()) / params.hold_stride,
               hold_point_count());
}

fn hold_mask(ch: u32, j: u32, k: u32, b: u32) -> f32 {
    return stem_masks[((ch * params.out_frames + j) * HOLD_STEMS + k) * params.bins + b];
}

// Dispatch (ceil(hold_bins/64), computed points, channels); no workgroups with the hold off.
@compute @workgroup_size(64)
fn hold_points(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let ch = gid.z;
    let q = hold_carried() + gid.y;
    if b >= params.hold_bins || params.hold_segment == 0u || q >= hold_point_count() {
        return;
    }
    let j = q * params.hold_stride - hold_lead();
    let x = mag[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
    points[(q * params.channels + ch) * params.hold_bins + b] = hold_mask(ch, j, HOLD_HARMONY_ROW, b) * x;
}

// Dispatch as hold_points.
@compute @workgroup_size(64)
fn hold_floors(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let ch = gid.z;
    let q = hold_carried() + gid.y;
    let n = hold_point_count();
    if b >= params.hold_bins || params.hold_segment == 0u || q >= n {
        return;
    }
    let seg = params.hold_segment;
    let stride = params.hold_stride;
    let lead = hold_lead();
    // The point's segment and that segment's points in the block (phase + frame ≥ 0 and the
    // segment boundaries fall on points: segments hold whole strides).
    let s = (params.hold_phase + q * stride - lead) / seg;
    let first = (s * seg + lead - params.hold_phase) / stride;
    let end = min(((s + 1u) * seg + lead - params.hold_phase) / stride, n);
    let r = params.hold_radius;
    let lo = max(select(0u, q - r, q > r), first);
    let hi = min(q + r + 1u, end);
    let cw = params.channels * params.hold_bins;
    var sum = points[lo * cw + ch * params.hold_bins + b];
    for (var p = lo + 1u; p < hi; p++) {
        sum += points[p * cw + ch * params.hold_bins + b];
    }
    floors[q * cw + ch * params.hold_bins + b] = sum * (1.0 / f32(hi - lo));
}

// Dispatch (ceil(bins/64), out_frames, channels) with the hold on and the spatial filter off;
// no workgroups otherwise.
@compute @workgroup_size(64)
fn hold_spectra(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let j = gid.y;
    let ch = gid.z;
    if b >= params.bins || j >= params.out_frames || params.hold_segment == 0u {
        return;
    }
    var m: array<f32, 5>;
    for (var k = 0u; k < HOLD_STEMS; k++) {
        m[k] = hold_mask(ch, j, k, b);
    }
    let below = drums_below_bins(lines[j].x, params.drums_below, params.bin_hz);
    if b >= below && b < params.hold_bins {
        let q = (hold_lead() + j) / params.hold_stride;
        let f = floors[(q * params.channels + ch) * params.hold_bins + b];
        let x = mag[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
        hold_five(&m, f, x);
    }
    let z = spectra[(ch * params.held_frames + params.out_offset + j) * params.bins + b];
    let stems = params.inverted_stems;
    let out = ((ch * params.out_frames + j) * stems) * params.bins + b;
    for (var i = 0u; i < stems; i++) {
        let k = (params.stem_kinds >> (4u * i)) & 15u;
        let mk = select(0.0, m[min(k, HOLD_STEMS - 1u)], k < HOLD_STEMS);
        stem_spectra[out + i * params.bins] = vec2<f32>(z.x * mk, z.y * mk);
    }
}
