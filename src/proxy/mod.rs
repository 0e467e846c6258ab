//! Backend pools and balancing.
