//! Reading an OCI image layout (as `hack/image.sh` writes it): `oci-layout`, `index.json`, the image
//! manifest and config, with every blob's size and sha256 digest checked.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::tools::run;

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One single-platform image from a layout.
#[derive(Debug)]
pub struct Image {
    /// The reference recorded in the index (`io.containerd.image.name`), if any.
    pub name: Option<String>,
    pub manifest: Value,
    pub config: Value,
    /// The layer blobs, base first (gzip-compressed tarballs).
    pub layers: Vec<PathBuf>,
}

/// Checks a descriptor (`mediaType`, `digest`, `size`) against the blob it names and returns the
/// blob's path.
pub fn blob(layout: &Path, descriptor: &Value, media_type: &str) -> Result<PathBuf> {
    let got_type = descriptor
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("");
    ensure!(
        got_type == media_type,
        "descriptor media type {got_type:?}, expected {media_type:?}"
    );
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .context("descriptor without digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest} is not sha256"))?;
    ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "malformed digest {digest}"
    );
    let path = layout.join("blobs/sha256").join(hex);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("blob {digest} missing from the layout"))?
        .len();
    let want = descriptor
        .get("size")
        .and_then(Value::as_u64)
        .context("descriptor without size")?;
    ensure!(
        size == want,
        "blob {digest} has {size} bytes, descriptor says {want}"
    );
    let actual = sha256_hex(&path)?;
    ensure!(actual == hex, "blob {digest} has digest sha256:{actual}");
    Ok(path)
}

/// The sha256 of a file, with the system's `sha256sum`.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let out = run(Command::new("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("empty sha256sum output")
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads the one image of the layout at `layout`.
pub fn read_layout(layout: &Path) -> Result<Image> {
    let marker = read_json(&layout.join("oci-layout"))?;
    ensure!(
        marker.get("imageLayoutVersion").and_then(Value::as_str) == Some("1.0.0"),
        "oci-layout: unexpected {marker}"
    );
    let index = read_json(&layout.join("index.json"))?;
    ensure!(
        index.get("schemaVersion").and_then(Value::as_u64) == Some(2),
        "index.json: schemaVersion is not 2"
    );
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .context("index.json without manifests")?;
    let [descriptor] = manifests.as_slice() else {
        bail!("index.json lists {} manifests, expected 1", manifests.len());
    };
    let name = descriptor
        .pointer("/annotations/io.containerd.image.name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let manifest = read_json(&blob(layout, descriptor, MANIFEST_MEDIA_TYPE)?)?;
    ensure!(
        manifest.get("schemaVersion").and_then(Value::as_u64) == Some(2),
        "manifest: schemaVersion is not 2"
    );
    let config_descriptor = manifest.get("config").context("manifest without config")?;
    let config = read_json(&blob(layout, config_descriptor, CONFIG_MEDIA_TYPE)?)?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .context("manifest without layers")?
        .iter()
        .map(|d| blob(layout, d, LAYER_MEDIA_TYPE))
        .collect::<Result<Vec<_>>>()?;
    let diff_ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    ensure!(
        diff_ids == layers.len(),
        "config lists {diff_ids} diff_ids for {} layers",
        layers.len()
    );
    Ok(Image {
        name,
        manifest,
        config,
        layers,
    })
}
