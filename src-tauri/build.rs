//! Declares the app's commands so each needs an explicit permission (least privilege). The list
//! is the one in `src/page_commands.rs`.

#[allow(unreachable_pub, reason = "the module is shared with the library, where COMMANDS is public")]
#[path = "src/page_commands.rs"]
mod page_commands;

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(page_commands::COMMANDS)),
    )
    .expect("tauri build script failed: see the message above");
}
