//! demo (placeholder until its owner lands it).
