// select.wgsl: one median by exact selection, shared by median.wgsl (large kernels) and
// production.wgsl (the drum tail's earlier frames). Both declare `mag`. CPU twins:
// src/stages/median.rs, production::freq_median_at (the same value: exact selection).

// Window element o of the median around `center` of an n-long sequence whose element e is
// mag[base + e·stride], for a window of k taps `tap` elements apart (1: every element).
fn window_value(base: u32, stride: u32, center: i32, n: i32, k: u32, o: u32, tap: i32) -> f32 {
    let e = reflect_index(center + tap * (i32(o) - i32(k / 2u)), n);
    return mag[base + u32(e) * stride];
}

// Unsigned key with the order of the floats (negative values below positive ones).
fn order_key(v: f32) -> u32 {
    let u = bitcast<u32>(v);
    return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn key_value(key: u32) -> f32 {
    return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
}

// Radix select of rank k/2 of the window around `center`: fix the key 4 bits at a time, most
// significant first, counting the window's keys that share the prefix fixed so far.
fn select_median(base: u32, stride: u32, center: i32, n: i32, k: u32, tap: i32) -> f32 {
    var rank = k / 2u;
    var prefix = 0u;
    var mask = 0u;
    var hist: array<u32, 16>;
    for (var shift = 28i; shift >= 0i; shift -= 4i) {
        for (var d = 0u; d < 16u; d++) {
            hist[d] = 0u;
        }
        for (var o = 0u; o < k; o++) {
            let key = order_key(window_value(base, stride, center, n, k, o, tap));
            if (key & mask) == prefix {
                hist[(key >> u32(shift)) & 15u] += 1u;
            }
        }
        var d = 0u;
        while rank >= hist[d] {
            rank -= hist[d];
            d += 1u;
        }
        prefix |= d << u32(shift);
        mask |= 15u << u32(shift);
    }
    return key_value(prefix);
}
