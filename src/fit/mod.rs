//! Pure numerics for scaling laws: power laws, Chinchilla approaches 1–3, allocation,
//! bootstrap and hold-out checks. Filled in by the fitting issue; the study's
//! [`crate::study::FitSpec`] lists what to fit.
