//! The Debian package that `dist/build-deb.sh` builds, at the path in `HYCOD_DEB` (`.ci/run`
//! builds it and sets the variable; under `CI=true` an unset variable fails these tests instead
//! of skipping them). Its file list and control data are read with `dpkg-deb -c` / `-I`, and it
//! is unpacked into a scratch root with `dpkg -x`, where the installed binary checks the shipped
//! configuration. Run with `--nocapture` to see both listings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use hycod::cli::Cli;

/// The package, or `None` (with a note) outside CI when it has not been built.
fn package() -> Option<PathBuf> {
    match std::env::var_os("HYCOD_DEB") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!("HYCOD_DEB is not set: under CI=true the package must be built first (dist/build-deb.sh)")
        }
        None => {
            eprintln!("skipping: HYCOD_DEB is not set (HYCOD_DEB=$(dist/build-deb.sh) cargo test --test deb_package)");
            None
        }
    }
}

/// Runs `program args`, expects success; its stdout.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let mut all: Vec<&std::ffi::OsStr> = vec![args[0].as_ref(), deb.as_os_str()];
    all.extend(args[1..].iter().map(std::ffi::OsStr::new));
    run("dpkg-deb", &all)
}

/// `dpkg-deb -c`: every regular file's path (without the leading `.`) and its mode string.
fn files(deb: &Path) -> BTreeMap<String, String> {
    let listing = dpkg_deb(&["-c"], deb);
    println!("dpkg-deb -c:\n{listing}");
    listing
        .lines()
        .filter(|line| line.starts_with('-'))
        .map(|line| {
            let mode = line.split_whitespace().next().expect("a mode");
            let path = line.rsplit_once(" ./").expect("a path").1;
            (format!("/{path}"), mode.to_owned())
        })
        .collect()
}

fn subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect()
}

#[test]
fn the_package_holds_binary_unit_config_docs_man_pages_and_completions() {
    let Some(deb) = package() else { return };
    let files = files(&deb);
    let mut expected = vec![
        ("/usr/bin/hycod", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/hycod.service", "-rw-r--r--"),
        ("/usr/lib/systemd/system/hycod-relay.service", "-rw-r--r--"),
        ("/etc/hycod/hycod.toml", "-rw-r--r--"),
        ("/etc/hycod/relay.toml", "-rw-r--r--"),
        ("/usr/share/doc/hycod/README.md", "-rw-r--r--"),
        ("/usr/share/doc/hycod/configuration.md", "-rw-r--r--"),
        ("/usr/share/doc/hycod/operations.md", "-rw-r--r--"),
        ("/usr/share/doc/hycod/emulator.md", "-rw-r--r--"),
        ("/usr/share/doc/hycod/copyright", "-rw-r--r--"),
        ("/usr/share/doc/hycod/grafana-dashboard.json", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/hycod", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_hycod", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/hycod.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/man/man1/hycod.1.gz", "-rw-r--r--"),
    ];
    let pages: Vec<String> = subcommands()
        .iter()
        .map(|name| format!("/usr/share/man/man1/hycod-{name}.1.gz"))
        .collect();
    expected.extend(pages.iter().map(|page| (page.as_str(), "-rw-r--r--")));
    for (path, mode) in expected {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(mode),
            "{path} in {files:#?}"
        );
    }
    let allowed = [
        "/usr/bin/hycod",
        "/usr/lib/systemd/system/",
        "/etc/hycod/",
        "/usr/share/doc/hycod/",
        "/usr/share/man/man1/hycod",
        "/usr/share/bash-completion/",
        "/usr/share/zsh/",
        "/usr/share/fish/",
    ];
    for path in files.keys() {
        assert!(
            allowed.iter().any(|prefix| path.starts_with(prefix)),
            "unexpected file {path}"
        );
    }
    let docs: Vec<&String> = files
        .keys()
        .filter(|path| path.starts_with("/usr/share/doc/hycod/") && path.ends_with(".md"))
        .collect();
    let in_repo = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs"))
        .expect("docs/")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".md"))
        })
        .count();
    assert_eq!(docs.len(), in_repo + 1, "every docs/*.md and the README");
}

#[test]
fn the_control_data_marks_the_configuration_a_conffile_and_enables_nothing() {
    let Some(deb) = package() else { return };
    let info = dpkg_deb(&["-I"], &deb);
    println!("dpkg-deb -I:\n{info}");
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim_start().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_owned()
    };
    assert_eq!(field("Package"), "hycod");
    assert_eq!(field("Version"), format!("{}-1", hycod::VERSION));
    assert_eq!(field("Section"), "net");
    assert!(field("Depends").contains("libc6"), "{info}");
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(
            info.lines()
                .any(|line| line.split_whitespace().any(|word| word == script)),
            "no {script} in:\n{info}"
        );
    }
    assert_eq!(
        dpkg_deb(&["-I", "conffiles"], &deb),
        "/etc/hycod/hycod.toml\n/etc/hycod/relay.toml\n"
    );

    for script in ["postinst", "prerm", "postrm"] {
        let text = dpkg_deb(&["-I", script], &deb);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(script);
        std::fs::write(&path, &text).expect("script written");
        run("sh", &["-n".as_ref(), path.as_os_str()]);
        assert!(!text.contains("DEBHELPER"), "{script}:\n{text}");
    }
    let postinst = dpkg_deb(&["-I", "postinst"], &deb);
    println!("postinst:\n{postinst}");
    // Enabling happens only where the unit was enabled before (a reinstall), restarting only
    // where it runs (an upgrade); nothing starts or gets enabled on a fresh install.
    assert!(
        postinst.contains("deb-systemd-helper --quiet was-enabled 'hycod.service'")
            || postinst.contains("deb-systemd-helper --quiet was-enabled hycod.service"),
        "{postinst}"
    );
    let enables: Vec<&str> = postinst
        .lines()
        .filter(|line| line.contains("enable") && !line.trim_start().starts_with('#'))
        .collect();
    assert!(
        enables
            .iter()
            .all(|line| line.contains("was-enabled") || line.contains("deb-systemd-helper enable")),
        "{enables:?}"
    );
    for forbidden in [
        "systemctl enable",
        "systemctl start",
        "deb-systemd-invoke start",
        "deb-systemd-invoke restart",
    ] {
        assert!(
            !postinst.contains(forbidden),
            "postinst runs {forbidden}:\n{postinst}"
        );
    }
    assert!(
        postinst.contains("try-restart"),
        "an upgrade restarts a running daemon:\n{postinst}"
    );
}

#[test]
fn the_installed_binary_checks_the_shipped_configuration_and_its_drop_ins() {
    let Some(deb) = package() else { return };
    let root = tempfile::tempdir().expect("scratch root");
    run(
        "dpkg",
        &["-x".as_ref(), deb.as_os_str(), root.path().as_os_str()],
    );
    let hycod = root.path().join("usr/bin/hycod");
    let config = root.path().join("etc/hycod/hycod.toml");
    let hycod = hycod.to_str().expect("UTF-8 path");

    assert_eq!(
        run(hycod, &["--version".as_ref()]),
        format!("hycod {}\n", hycod::VERSION)
    );
    let shipped = std::fs::read_to_string(&config).expect("shipped configuration");
    assert_eq!(
        shipped,
        include_str!("../examples/hycod.toml"),
        "the commented example"
    );
    let effective = run(
        hycod,
        &["check".as_ref(), "--config".as_ref(), config.as_os_str()],
    );
    assert!(effective.contains("name = \"sap-gateway\""), "{effective}");
    assert!(
        effective.contains(&format!("# from {}", config.display())),
        "{effective}"
    );
    assert!(
        !effective.contains("FAKE0KEY"),
        "the example key is redacted"
    );

    // The shipped file includes conf.d/*.toml next to it.
    let drop_in = root.path().join("etc/hycod/conf.d/web.toml");
    std::fs::create_dir_all(drop_in.parent().expect("conf.d")).expect("conf.d");
    std::fs::write(
        &drop_in,
        "[[hybrid_connection]]\nname = \"web\"\nconnection_string_env = \"HYCOD_TEST_UNSET_VARIABLE\"\nentity_path = \"web\"\nhttp_target = \"http://127.0.0.1:8080/\"\n",
    )
    .expect("drop-in");
    let output = Command::new(hycod)
        .args(["check", "--config"])
        .arg(&config)
        .env_remove("HYCOD_TEST_UNSET_VARIABLE")
        .output()
        .expect("hycod runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: {}: hybrid_connection[0].connection_string_env: the environment variable HYCOD_TEST_UNSET_VARIABLE is not set\n",
            drop_in.display()
        )
    );

    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/hycod.service"))
        .expect("unit");
    assert!(
        unit.lines()
            .any(|line| line == "ExecStart=/usr/bin/hycod run --config /etc/hycod/hycod.toml"),
        "{unit}"
    );
    assert!(unit.lines().any(|line| line == "DynamicUser=yes"));
    let relay_unit = std::fs::read_to_string(
        root.path()
            .join("usr/lib/systemd/system/hycod-relay.service"),
    )
    .expect("relay unit");
    assert!(
        relay_unit
            .lines()
            .any(|line| line == "ExecStart=/usr/bin/hycod relay --config /etc/hycod/relay.toml"),
        "{relay_unit}"
    );
    for line in [
        "DynamicUser=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "StateDirectory=hycod-relay",
        "StateDirectoryMode=0700",
        "ProtectSystem=strict",
    ] {
        assert!(
            relay_unit.lines().any(|l| l == line),
            "{line} in the relay unit:\n{relay_unit}"
        );
    }
    // The shipped relay.toml is valid up to its first key file, a systemd credential that only
    // exists inside the service.
    let relay_toml = root.path().join("etc/hycod/relay.toml");
    let output = Command::new(hycod)
        .args(["relay", "--config"])
        .arg(&relay_toml)
        .output()
        .expect("hycod runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: rule[0].key_file: cannot read /run/credentials/hycod-relay.service/relay-root.key: No such file or directory (os error 2)\n"
    );

    let page = root.path().join("usr/share/man/man1/hycod-check.1.gz");
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "200")
        .output()
        .expect("man runs");
    let rendered = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.contains("hycod-check - Validate a configuration file"),
        "{rendered}"
    );
    assert!(rendered.contains("--config"), "{rendered}");
    let bash = std::fs::read_to_string(
        root.path()
            .join("usr/share/bash-completion/completions/hycod"),
    )
    .expect("bash completion");
    assert!(bash.contains("complete -F _hycod"), "{bash}");
}
