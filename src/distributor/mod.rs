//! The edge distributor: what Pyroscope's distributor does before it stores a profile,
//! applied at the gateway when configured (`[distributor]`): tenant checks, per-tenant
//! limits, validation with Pyroscope's exact answers, and normalisation
//! (docs/distributor.md).

pub mod normalize;
