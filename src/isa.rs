//! Instruction-set dispatch for the hand-vectorised kernels (the scaling-law objective in
//! [`crate::fit::lanes`], the training engine's element-wise kernels in
//! [`crate::model::cpu::simd`]): each is compiled for AVX-512, AVX2 + FMA and the baseline,
//! and runs the widest copy the CPU supports. Only the vector width differs between copies
//! (Rust never contracts a·b + c into an FMA or reorders a sum on its own), so all give the
//! same bits — a claim the engine's golden test checks on every instruction set the CPU has.
//!
//! An [`Isa`] is a proof: only [`detect`], [`Isa::available`] and [`Isa::BASELINE`] make
//! one, each after checking the CPU, so safe code can never send AVX-512 code to a CPU
//! without it.

/// Which compiled copy of a vectorised kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Avx512,
    Avx2,
    Baseline,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Avx512, Kind::Avx2, Kind::Baseline];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Avx512 => "avx512",
            Kind::Avx2 => "avx2",
            Kind::Baseline => "baseline",
        }
    }
}

/// An instruction set this CPU runs (see the module docs: holding one proves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(Kind);

impl Isa {
    /// Every CPU runs the baseline copy.
    pub const BASELINE: Isa = Isa(Kind::Baseline);

    /// `kind`, if this CPU has its features.
    pub fn available(kind: Kind) -> Option<Isa> {
        cpu_has(kind).then_some(Isa(kind))
    }

    /// Every instruction set this CPU runs, widest first.
    pub fn all_available() -> Vec<Isa> {
        Kind::ALL.into_iter().filter_map(Isa::available).collect()
    }

    pub fn kind(self) -> Kind {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

fn cpu_has(kind: Kind) -> bool {
    match kind {
        Kind::Baseline => true,
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512 => {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// The widest instruction set available; `SCALEBOOK_ISA=avx2|baseline` picks a narrower
/// one (for measuring and for the cross-ISA tests; an unknown or unavailable choice is
/// ignored).
pub fn detect() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let native = native();
        std::env::var("SCALEBOOK_ISA")
            .ok()
            .and_then(|name| Kind::ALL.into_iter().find(|k| k.name() == name))
            .and_then(Isa::available)
            .unwrap_or(native)
    })
}

/// The widest instruction set this CPU runs.
pub fn native() -> Isa {
    Isa::all_available()[0]
}

/// The engine's instruction-set path, recorded with every run: the architecture, the
/// widest set the CPU has (which the matrix-multiply kernels of `gemm` use), and the copy of
/// scalebook's own kernels when `SCALEBOOK_ISA` chose a narrower one — `x86_64-avx512`,
/// `x86_64-avx512-kernels-avx2`.
pub fn path() -> String {
    let (native, chosen) = (native(), detect());
    if native == chosen {
        format!("{}-{}", std::env::consts::ARCH, native.name())
    } else {
        format!(
            "{}-{}-kernels-{}",
            std::env::consts::ARCH,
            native.name(),
            chosen.name()
        )
    }
}
