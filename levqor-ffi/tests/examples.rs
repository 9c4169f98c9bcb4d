//! The C and Python examples, built and run against the library this test run built: the C one
//! compiled with `-Wall -Wextra -Werror` and linked statically (and run under valgrind when it
//! is installed; CI installs it), the Python one through ctypes and the shared library. Each
//! runs on the in-memory store and on SQLite.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cargo put this run's `liblevqor_ffi.a` and `.so`: beside this test's executable.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent().expect("deps").to_path_buf()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("levqor-ffi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

fn expect_flow(stdout: &str, who: &str) {
    assert!(stdout.contains("screening: allow"), "{stdout}");
    assert!(stdout.contains("price: "), "{stdout}");
    assert!(stdout.contains("a bad workflow"), "{stdout}");
    assert!(stdout.contains("validation_failed"), "{stdout}");
    assert!(stdout.contains(": succeeded"), "{stdout}");
    assert!(stdout.contains("ran 1 job(s)"), "{stdout}");
    let _ = who;
}

#[test]
fn the_c_example_compiles_cleanly_links_statically_and_runs() {
    let dir = scratch("c");
    let exe = dir.join("levqor-example");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("levqor-ffi/include"))
        .arg(root().join("examples/c/main.c"))
        .arg(library_dir().join("liblevqor_ffi.a"))
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-o",
        ])
        .arg(&exe));
    expect_flow(&run(&mut Command::new(&exe)), "C");
    let sqlite = format!("sqlite:{}", dir.join("example.db").display());
    expect_flow(&run(Command::new(&exe).arg(&sqlite)), "C");

    let ci = std::env::var_os("CI").is_some_and(|v| v == "true");
    if has("valgrind") {
        let stdout = run(Command::new("valgrind")
            .args([
                "--leak-check=full",
                "--error-exitcode=1",
                "--errors-for-leak-kinds=definite,possible",
                "--num-callers=40",
                "--quiet",
            ])
            .arg(format!(
                "--suppressions={}",
                root().join("levqor-ffi/tests/valgrind.supp").display()
            ))
            .arg(&exe));
        expect_flow(&stdout, "C");
    } else {
        assert!(!ci, "CI runs the C example under valgrind: install it");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_python_example_drives_the_shared_library_with_ctypes() {
    let dir = scratch("python");
    let library = library_dir().join("liblevqor_ffi.so");
    let script = root().join("examples/python/levqor_example.py");
    let stdout = run(Command::new("python3").arg(&script).arg(&library));
    expect_flow(&stdout, "Python");
    let sqlite = format!("sqlite:{}", dir.join("example.db").display());
    expect_flow(
        &run(Command::new("python3")
            .arg(&script)
            .arg(&library)
            .arg(&sqlite)),
        "Python",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
