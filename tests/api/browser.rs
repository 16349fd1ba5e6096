//! The dashboard and the widget in a real browser: runs web/tests/ (node's
//! test runner, playwright-core, Debian's Chromium) against the real binary
//! and a fresh database. `.ci/run` installs Chromium and the npm packages;
//! without them this test fails and says what is missing.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

#[tokio::test]
async fn the_dashboard_and_widget_work_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(Path::new("/usr/bin/chromium").exists(), "Chromium is missing: apt-get install chromium (bash .ci/run does)");
    assert!(
        root.join("web/node_modules/playwright-core").exists(),
        "playwright-core is missing: (cd web && npm ci) (bash .ci/run does)"
    );
    let database_url = fresh_database().await;
    let artifacts = root.join("target/browser-artifacts");
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-concurrency=1", "tests/"])
        .current_dir(root.join("web"))
        .env("CHATHUB_BIN", env!("CARGO_BIN_EXE_chathub"))
        .env("DATABASE_URL", &database_url)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ARTIFACTS", &artifacts);
    if std::env::var_os("UPDATE_DOCS_SCREENSHOTS").is_some() {
        command.env("DOCS_DIR", root.join("docs"));
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "browser tests failed; screenshots in {}", artifacts.display());
}
