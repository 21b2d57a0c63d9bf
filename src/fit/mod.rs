//! Pure numerics for scaling laws (no I/O): the Chinchilla approach-3 law and its
//! compute-optimal allocation ([`chinchilla`]) on an allocation-free L-BFGS ([`lbfgs`]).
//! IsoFLOP parabolas, the frontier, single-variable laws, bootstrap and hold-out checks
//! build on these.

pub mod chinchilla;
pub mod lbfgs;
