//! Sans-IO TLS 1.3 server.
