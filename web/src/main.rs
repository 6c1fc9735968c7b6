//! The dashboard in the browser: `cargo xtask run` builds this binary for wasm32, binds it
//! with wasm-bindgen and writes the page that loads it. On the host it only says so.

#[cfg(target_arch = "wasm32")]
mod app;

#[cfg(target_arch = "wasm32")]
fn main() {
    dioxus::launch(app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the dashboard runs in a browser: `cargo xtask run` builds it and serves it");
}
