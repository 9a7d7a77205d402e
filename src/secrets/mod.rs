//! What Herald keeps secret, and how: tokens it hands out (`keys`: random, shown once,
//! stored only as hashes) and the deployment's secret key outside the database
//! (`secret_key`: it seals endpoint secrets at rest and signs sessions), so a copied
//! database reveals neither.

pub mod keys;
pub mod secret_key;
