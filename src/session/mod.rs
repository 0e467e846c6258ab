//! Session table, sealing, repository (issue 3 and 4).
