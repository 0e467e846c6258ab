//! Versioned handoff encoding of a whole connection.
