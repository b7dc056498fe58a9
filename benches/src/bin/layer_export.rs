//! COPY-like benchmark: a directory tree (default: the Python standard
//! library) into one gzip layer in a fresh store, then exported as an OCI
//! archive. Prints seconds per phase and throughput; run it through
//! `benches/layer_export.sh` for peak memory.
use std::path::PathBuf;
use std::time::Instant;

use builder_core::export::{export, parse_output, ExportOptions};
use builder_core::image::{ImageConfig, Platform};
use builder_core::layer::{entries_from_dir, write_layer, CompressionOptions, LayerOptions};
use builder_core::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let src = PathBuf::from(
        args.next()
            .ok_or("usage: layer_export SRC WORKDIR [THREADS]")?,
    );
    let work = PathBuf::from(
        args.next()
            .ok_or("usage: layer_export SRC WORKDIR [THREADS]")?,
    );
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(0);
    let _ = std::fs::remove_dir_all(&work);
    let store = Store::open(&work.join("store"))?;

    let t0 = Instant::now();
    let entries = entries_from_dir(&src)?;
    let files = entries.len();
    let t_scan = t0.elapsed().as_secs_f64();

    let opts = LayerOptions {
        compression: CompressionOptions {
            threads,
            ..CompressionOptions::default()
        },
        source_date_epoch: None,
    };
    let layer = write_layer(&store, entries, &opts)?;
    let t_layer = t0.elapsed().as_secs_f64();

    let mut cfg = ImageConfig::scratch(&Platform::host());
    cfg.add_history("COPY stdlib /", None, None, Some(layer.diff_id.clone()));
    let img = store.put_image(&cfg, std::slice::from_ref(&layer.descriptor))?;
    store.tag("bench/stdlib", &img)?;
    let out = work.join("image.tar");
    let spec = parse_output(&format!("type=oci,dest={}", out.display()))?;
    export(&store, &img, &spec, &ExportOptions::default())?;
    let total = t0.elapsed().as_secs_f64();

    let mb = layer.uncompressed_size as f64 / 1e6;
    println!("entries            {files}");
    println!("uncompressed tar   {mb:.1} MB");
    println!(
        "gzip layer         {:.1} MB",
        layer.descriptor.size as f64 / 1e6
    );
    println!("scan               {t_scan:.2} s");
    println!(
        "tar+gzip+store     {:.2} s ({:.1} MB/s)",
        t_layer - t_scan,
        mb / (t_layer - t_scan)
    );
    println!("export oci archive {:.2} s", total - t_layer);
    println!("total              {total:.2} s ({:.1} MB/s)", mb / total);
    if std::env::var_os("KILN_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
