//! baton's own TCP state machine.
