//! Instruction-set dispatch for the hand-vectorised kernels (the scaling-law objective in
//! [`crate::fit::lanes`], the training engine's element-wise kernels in
//! [`crate::model::cpu::simd`]): each is compiled for AVX-512, AVX2 + FMA and the baseline,
//! and runs the widest copy the CPU supports. Only the vector width differs between copies
//! (Rust never contracts a·b + c into an FMA or reorders a sum on its own), so all give the
//! same bits.

/// Which compiled copy of a vectorised kernel this CPU runs (decided once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

/// The widest instruction set available; `SCALEBOOK_ISA=avx2|baseline` picks a narrower
/// one (for measuring; every choice gives the same bits).
pub fn detect() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(detect_now)
}

fn detect_now() -> Isa {
    match std::env::var("SCALEBOOK_ISA").as_deref() {
        Ok("baseline") => return Isa::Baseline,
        #[cfg(target_arch = "x86_64")]
        Ok("avx2") if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => {
            return Isa::Avx2;
        }
        _ => {}
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}
