// median.wgsl: stage `median`: the two HPSS median filters, as scipy.ndimage.median_filter with
// mode='reflect' (half-sample symmetric, repeating for windows wider than the sequence). A window
// of k covers offsets -(k/2) ..= k-1-(k/2); the result is element k/2 of the sorted window (even
// k: the upper middle value). Exact selection, so results equal the CPU twin bit for bit.
// CPU twin: src/stages/median.rs (median_time, median_freq). Each invocation produces a run of
// MEDIAN_RUN outputs. k <= SMALL_K: a sorted window in a private array (insertion sort, then the
// twin's sliding remove/insert pass); larger k: a radix select per output over the values'
// order-preserving bit patterns, 4 bits per pass (no array of k values needed).

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mag: array<f32>;         // [channel][held_frames][bins]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // [channel][out_frames][bins]

const SMALL_K: u32 = 64u;
// Outputs per invocation for k <= SMALL_K: consecutive frames (time) or bins (frequency) share
// one sliding window. Larger kernels take one output per invocation: a radix select loops
// 8·k times, and Mesa's llvmpipe cuts any loop short after 65535 iterations per invocation
// (counted across re-entries), which 16 selects of k = 1025 would pass.
const MEDIAN_RUN: u32 = 16u;

// Outputs per invocation for a kernel of k (src/gpu/pipelines.rs, median_run_length).
fn run_length(k: u32) -> u32 {
    return select(MEDIAN_RUN, 1u, k > SMALL_K);
}

// Medians of `count` windows of k taps `tap` elements apart (centres first_center,
// first_center + tap, ..), written `out_stride` apart from out[out_base]. Small kernels keep the
// window sorted and slide it one tap at a time with the CPU twin's branch-free remove/insert
// pass (sliding_median_lanes in median.rs); large kernels select each median afresh.
fn median_run(base: u32, stride: u32, first_center: i32, n: i32, k: u32, tap: i32, count: u32,
              out_base: u32, out_stride: u32) {
    if k > SMALL_K {
        for (var j = 0u; j < count; j++) {
            out[out_base + j * out_stride] =
                select_median(base, stride, first_center + tap * i32(j), n, k, tap);
        }
        return;
    }
    var w: array<f32, SMALL_K>;
    for (var o = 0u; o < k; o++) {
        let v = window_value(base, stride, first_center, n, k, o, tap);
        var p = o;
        while p > 0u && w[p - 1u] > v {
            w[p] = w[p - 1u];
            p -= 1u;
        }
        w[p] = v;
    }
    out[out_base] = w[k / 2u];
    for (var j = 1u; j < count; j++) {
        let c = first_center + tap * i32(j);
        let outgoing = window_value(base, stride, c - tap, n, k, 0u, tap);
        let incoming = window_value(base, stride, c, n, k, k - 1u, tap);
        if k == 1u {
            w[0] = incoming;
        } else {
            // One pass: t = the window without (the first copy of) `outgoing`; then `incoming`
            // inserted:
            // max(t[i-1], min(t[i], new)).
            var cur = w[0];
            var t_prev = select(cur, w[1], cur >= outgoing);
            w[0] = min(t_prev, incoming);
            cur = w[1];
            for (var i = 1u; i < k - 1u; i++) {
                let next = w[i + 1u];
                let t = select(cur, next, cur >= outgoing);
                w[i] = max(t_prev, min(t, incoming));
                t_prev = t;
                cur = next;
            }
            w[k - 1u] = max(t_prev, incoming);
        }
        out[out_base + j * out_stride] = w[k / 2u];
    }
}

// Time medians (k taps `tap` rows apart) of bin gid.x, channel gid.z: input rows
// [channel][in_rows][bins], output row j centred on input row center0 + j, reflected at input
// row n; into out [channel][rows][bins]. Invocation gid.y takes a run of run_length(k) rows
// `tap` apart, j0, j0 + tap, .. with j0 = (gid.y / tap)·run·tap + gid.y % tap: each run slides
// one window over its taps. k = 0: nothing.
fn median_time_rows(gid: vec3<u32>, k: u32, tap_in: u32, rows: u32, in_rows: u32, center0: u32,
                    n: u32) {
    let tap = max(tap_in, 1u);
    let b = gid.x;
    let run = run_length(k);
    let j0 = (gid.y / tap) * run * tap + gid.y % tap;
    let ch = gid.z;
    if b >= params.bins || j0 >= rows || k == 0u {
        return;
    }
    let count = min(run, (rows - j0 + tap - 1u) / tap);
    let base = ch * in_rows * params.bins + b;
    let out_base = (ch * rows + j0) * params.bins + b;
    median_run(base, params.bins, i32(center0 + j0), i32(n), k, i32(tap), count, out_base,
               tap * params.bins);
}

// Harmonic estimate: median along time of bin gid.x for harmonic frames gid.y·run .. (a run of
// run_length(k); harmonic frame 0 is held frame harm_held), channel gid.z.
// Dispatch (ceil(bins/64), ceil(harm_frames/(run·tap))·tap, channels).
@compute @workgroup_size(64)
fn median_time(@builtin(global_invocation_id) gid: vec3<u32>) {
    median_time_rows(gid, params.harmonic_kernel, params.harmonic_tap, params.harm_frames,
                     params.held_frames, params.harm_held, params.n_frames_rel);
}

// Frequency medians of `rows` rows, row j being held frame held0 + j·stride, for bins gid.x·run ..
// (a run of run_length(k)), row gid.y, channel gid.z; into out [channel][rows][bins].
fn median_freq_rows(gid: vec3<u32>, rows: u32, held0: u32, stride: u32) {
    let run = run_length(params.percussive_kernel);
    let b0 = gid.x * run;
    let j = gid.y;
    let ch = gid.z;
    if b0 >= params.bins || j >= rows {
        return;
    }
    let count = min(run, params.bins - b0);
    let base = (ch * params.held_frames + held0 + j * stride) * params.bins;
    let out_base = (ch * rows + j) * params.bins + b0;
    median_run(base, 1u, i32(b0), i32(params.bins), params.percussive_kernel, 1, count, out_base,
               1u);
}

// Percussive estimate: median along frequency of output frame gid.y.
// Dispatch (ceil(ceil(bins/run)/64), out_frames, channels).
@compute @workgroup_size(64)
fn median_freq(@builtin(global_invocation_id) gid: vec3<u32>) {
    median_freq_rows(gid, params.out_frames, params.out_offset, 1u);
}

// The percussive estimate at the steady grid's points (production::SteadyGrid): point row gid.y
// is held frame points_held + gid.y·STEADY_STEP; into `out` [channel][points_frames][bins].
// Dispatch (ceil(ceil(bins/run)/64), points_frames, channels).
@compute @workgroup_size(64)
fn median_freq_points(@builtin(global_invocation_id) gid: vec3<u32>) {
    median_freq_rows(gid, params.points_frames, params.points_held, STEADY_STEP);
}

// Steady estimate (production stems): median along time of the percussive estimate at the grid's
// points, bound as `mag` ([channel][points_frames][bins], from median_freq_points), for steady
// rows gid.y·run .. (steady row 0 is point row steady_offset), bin gid.x, channel gid.z; into
// `out` [channel][steady_rows][bins]. CPU twin: median_time over the point rows.
// Dispatch (ceil(bins/64), ceil(steady_rows/run), channels); none when steady_kernel is 0.
@compute @workgroup_size(64)
fn median_steady(@builtin(global_invocation_id) gid: vec3<u32>) {
    median_time_rows(gid, params.steady_kernel, 1u, params.steady_rows, params.points_frames,
                     params.steady_offset, params.n_points_rel);
}
