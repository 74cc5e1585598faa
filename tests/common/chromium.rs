//! Headless Chromium (Debian's `chromium` package) loading a page the way an operator's browser
//! does: `--dump-dom` prints the DOM after parsing (and after any script would have run), and
//! `--screenshot` renders a PNG. Each run gets its own profile directory and is killed if it
//! outlives [`BROWSER_PATIENCE`]. Where Chromium is missing the tests are skipped with an
//! install hint, except under `CI=true` (`.ci/run` installs it), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest one browser run may take.
const BROWSER_PATIENCE: Duration = Duration::from_secs(90);

/// Debian's Chromium, if installed.
pub(crate) struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// Chromium, or `None` (after saying why) when it is not installed outside CI.
    pub(crate) fn find() -> Option<Self> {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        match binary {
            Some(binary) => Some(Self { binary }),
            None => {
                let hint = "chromium is not installed: apt-get install -y chromium";
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{hint} (.ci/run does this)"
                );
                eprintln!("skipped: {hint}");
                None
            }
        }
    }

    /// The DOM of `url` after it loaded, serialized as HTML.
    pub(crate) fn dump_dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom", url]);
        String::from_utf8(out.stdout).expect("the DOM is UTF-8")
    }

    /// Renders `url` at `width`×`height` into the PNG `to`.
    pub(crate) fn screenshot(&self, url: &str, to: &Path, (width, height): (u32, u32)) {
        let shot = format!("--screenshot={}", to.display());
        let size = format!("--window-size={width},{height}");
        self.run(&[&shot, &size, "--hide-scrollbars", url]);
        let png = std::fs::read(to).expect("the screenshot was written");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            to.display()
        );
    }

    fn run(&self, args: &[&str]) -> Output {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                // Tests run as root in CI, where Chromium's sandbox refuses to start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let pid = child.id();
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let deadline = Instant::now() + BROWSER_PATIENCE;
            if done
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_err()
            {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", &pid.to_string()])
                    .status();
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let read_err = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { stderr }, &mut text);
            text
        });
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stdout }, &mut text);
        let status = child.wait().expect("chromium ends");
        let _ = done_tx.send(());
        let _ = watchdog.join();
        let stderr = read_err.join().unwrap_or_default();
        assert!(
            status.success(),
            "chromium {args:?} failed ({status}):\n{}",
            String::from_utf8_lossy(&stderr)
        );
        Output {
            status,
            stdout: text,
            stderr,
        }
    }
}
