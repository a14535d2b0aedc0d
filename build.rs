//! Compiles the protos with protox (pure Rust), so `cargo build` needs no
//! system `protoc`. Also writes the encoded descriptor set that gRPC server
//! reflection serves. Envoy's rate-limit service and its imports are
//! vendored under `proto/vendor/` (see its README) and compiled the same way.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/prescient/v1/admission.proto",
        "proto/vendor/envoy/service/ratelimit/v3/rls.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // The vendored tree first: its files are named from its own root
    // (`envoy/...`, `validate/...`), as upstream imports them.
    let fds = protox::compile(protos, ["proto/vendor", "proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("prescient_descriptor.bin"), fds.encode_to_vec())?;
    // Our codec: a request that does not decode is INVALID_ARGUMENT, not
    // tonic_prost's INTERNAL (src/grpc/codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds(fds)?;
    keda(&out)?;
    Ok(())
}

/// KEDA's external-scaler protocol (vendored, `proto/vendor/externalscaler`):
/// the server with our codec for the library, and a client with tonic's own
/// codec in `keda_client/` for the tests, generated from KEDA's file alone.
fn keda(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["externalscaler/externalscaler.proto"], ["proto/vendor"])?;
    std::fs::write(
        out.join("externalscaler_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .codec_path("crate::grpc::codec::ProtoCodec")
        .build_client(false)
        .compile_fds(fds.clone())?;
    let client = out.join("keda_client");
    std::fs::create_dir_all(&client)?;
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(client)
        .compile_fds(fds)?;
    Ok(())
}
