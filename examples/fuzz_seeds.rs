//! Write the fuzz targets' seed corpus (`fuzz/corpus/<target>/`) from the
//! shipped examples: `cargo run --example fuzz_seeds` (README "Fuzzing").

fn main() -> std::io::Result<()> {
    roomcast::fuzz::write_seeds(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
}
