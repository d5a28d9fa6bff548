//! nixoci as a library: build an OCI image layout from an image spec, then
//! verify it, through the public API only.
//!
//! ```sh
//! cargo run --example build_layout -- examples/hello/image.json hello-image
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints each layer as it is written.
struct PrintLayers;

impl nixoci::progress::Progress for PrintLayers {
    fn layer_done(&self, digest: &str, size: u64) {
        eprintln!("layer {digest} ({size} bytes)");
    }
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [spec, out] = args.as_slice() else {
        eprintln!("usage: build_layout SPEC OUT");
        return ExitCode::from(2);
    };
    match build_and_verify(spec, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", err.chain());
            ExitCode::FAILURE
        }
    }
}

fn build_and_verify(spec_path: &Path, out: &Path) -> nixoci::Result<()> {
    // Relative paths in the spec are relative to its directory.
    let spec: nixoci::spec::ImageSpec = nixoci::spec::load(spec_path)?;
    // Options structs are non-exhaustive: start from the default.
    let mut options = nixoci::BuildOptions::default();
    options.progress = &PrintLayers;
    let report = nixoci::build(&spec, spec_path, out, &options)?;
    for image in &report.manifests {
        println!(
            "{}: {} for {}, {} layer(s), tagged {}",
            report.layout.display(),
            image.digest,
            image.platform,
            image.layers.len(),
            report.tags.join(", ")
        );
    }
    let verified = nixoci::verify(&report.layout);
    if !verified.ok {
        return Err(nixoci::Error::Invalid(format!(
            "{}: {}",
            report.layout.display(),
            verified.problems.join("; ")
        )));
    }
    println!(
        "verified: {} manifest(s), {} blob(s)",
        verified.manifests, verified.blobs_checked
    );
    Ok(())
}
