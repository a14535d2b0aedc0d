//! Compiles the daemon's API (`proto/prescient/v1/admission.proto`, shared
//! with the root crate) with protox (pure Rust: no system `protoc`), client
//! stubs only: the client does not depend on the daemon's crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([format!("{proto}/prescient/v1/admission.proto")], [proto])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
