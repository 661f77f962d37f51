//! TLS setup: rustls with the ring provider (builds without a C toolchain
//! beyond cc), installed once per process before any client is built.

/// Install the process-wide rustls provider; later calls do nothing.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only if another provider was installed first: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
