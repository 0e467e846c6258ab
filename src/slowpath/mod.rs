//! Slow path: the handshake job pool.
