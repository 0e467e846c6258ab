//! Poll-mode worker loop.
