fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("descriptors.bin"))
        // bytes fields as bytes::Bytes: payload slices travel to Triton without copies.
        .bytes(".")
        .compile_protos(
            &["proto/multimodal.proto", "proto/inference.proto"],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
