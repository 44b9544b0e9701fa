//! The shared library's SONAME on Linux: `libtokenvault.so.0.<minor>` before 1.0 (a minor
//! version may change the ABI then), `libtokenvault.so.<major>` after. A program linked against
//! it records that name, so an incompatible later library is never picked up by mistake; the
//! package installs `libtokenvault.so.<version>` with the SONAME and the link-time name as
//! symbolic links. Android loads libraries by file name and gets no SONAME.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        return;
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    let soname = if major == "0" {
        format!("libtokenvault.so.0.{minor}")
    } else {
        format!("libtokenvault.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
}
