//! Training one run: initialisation, AdamW, the token-budget-matched LR schedule, gradient
//! clipping, periodic evaluation, divergence detection and the learning curve.
//! Filled in by the training-engine issue; the study's [`crate::study::TrainSpec`] already
//! fixes every hyper-parameter it will read.
