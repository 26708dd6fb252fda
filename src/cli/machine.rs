//! What machine a benchmark ran on: the CPU's name, family and model, its x86-64 level and the
//! matrix-product kernels gemm picks on it; this process's memory.

/// The CPU's name from /proc/cpuinfo, or "unknown".
pub(super) fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// "family/model" from /proc/cpuinfo (e.g. "25/17"), or "unknown".
pub(super) fn cpu_family_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{f}/{m}"),
        _ => "unknown".into(),
    }
}

/// The x86-64 micro-architecture level this CPU reaches.
pub(super) fn isa_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl")
        {
            return "x86-64-v4 (AVX-512)";
        }
        if has!("avx2") && has!("fma") && has!("bmi2") {
            return "x86-64-v3 (AVX2, FMA)";
        }
        if has!("sse4.2") && has!("popcnt") {
            return "x86-64-v2";
        }
        "x86-64"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// The f32 kernels gemm picks at run time: its AVX-512 ones (the `x86-v4` feature is on) where
/// the CPU has AVX-512F, else AVX2 + FMA, else its portable ones.
pub(super) fn gemm_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            return "avx512f";
        }
        if has!("avx2") && has!("fma") {
            return "avx2 + fma";
        }
        "sse (portable)"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "portable"
    }
}

/// A memory figure of this process from /proc/self/status in MB (Linux): `VmRSS` the resident set
/// now, `VmHWM` its peak.
pub(super) fn memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
