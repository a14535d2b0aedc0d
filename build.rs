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
    Ok(())
}
