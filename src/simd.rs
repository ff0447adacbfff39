//! Runtime CPU-feature dispatch for the hot loops written as plain Rust: the body is compiled
//! twice, once for AVX2 + FMA (8-wide vectors, inline `floor`) and once for the baseline, and
//! the AVX2 copy runs where the CPU has those features. The sliding medians
//! (`stages::median`) dispatch the same way with hand-written lanes.

/// Defines `fn $name(args)` whose body runs compiled for AVX2 + FMA where the CPU has them.
/// The body must be safe code: only its compilation target differs.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                // SAFETY: the CPU has the features `wide` is compiled for.
                return unsafe { wide($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
