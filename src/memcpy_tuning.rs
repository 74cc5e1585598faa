//! Start-up step of the `hycod` binary: keep glibc's `memcpy` off `rep movsb` on AMD processors.
//!
//! glibc copies blocks from about 2 KiB on with `rep movsb` when the CPU reports ERMS
//! (`glibc.cpu.x86_rep_movsb_threshold`), which is slow on AMD processors for the 16 KiB record
//! copies of the TLS data path; with the threshold raised glibc uses its vector loop
//! (docs/operations.md "Memory copies on AMD processors", measurements in docs/performance.md).
//!
//! The dynamic loader reads `GLIBC_TUNABLES` only when a program starts, so on an AMD x86-64
//! Linux system whose environment does not set the threshold already, `hycod` adds it and
//! executes itself again, once, before it starts any thread. A threshold already present in
//! `GLIBC_TUNABLES` (the operator's choice) is kept as it is, and nothing is re-executed.

use std::ffi::{OsStr, OsString};

/// The glibc tunable that sets the smallest copy done with `rep movsb`.
pub(crate) const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";

/// The threshold hycod runs with: above every copy on its data path (the largest are 288 KiB
/// socket buffers), so glibc's vector loop does them all.
pub(crate) const THRESHOLD: u32 = 1 << 20;

/// The environment variable the dynamic loader reads tunables from.
const VARIABLE: &str = "GLIBC_TUNABLES";

/// The `GLIBC_TUNABLES` value to re-execute with, given the current one; `None` when the current
/// value already sets [`TUNABLE`].
pub(crate) fn tunables_with_threshold(current: Option<&OsStr>) -> Option<OsString> {
    let setting = format!("{TUNABLE}={THRESHOLD}");
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Some(setting.into());
    };
    let prefix = format!("{TUNABLE}=");
    let already_set = current
        .as_encoded_bytes()
        .split(|b| *b == b':')
        .any(|entry| entry.starts_with(prefix.as_bytes()));
    if already_set {
        return None;
    }
    let mut value = current.to_os_string();
    value.push(":");
    value.push(setting);
    Some(value)
}

/// Whether the processor is an AMD one (CPUID leaf 0 vendor string "AuthenticAMD").
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
fn is_amd() -> bool {
    let leaf = std::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&leaf.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD"
}

/// Re-executes this program with [`TUNABLE`] set, when that applies (see the module docs).
/// Returns only when nothing is re-executed, or when the re-execution failed: the program then
/// goes on with glibc's defaults.
pub(crate) fn apply() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    {
        use std::os::unix::process::CommandExt;

        if !is_amd() {
            return;
        }
        let Some(tunables) = tunables_with_threshold(std::env::var_os(VARIABLE).as_deref()) else {
            return;
        };
        let mut args = std::env::args_os();
        let Some(arg0) = args.next() else {
            return;
        };
        // `exec` only returns on failure; hycod then runs unchanged.
        let _ = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(VARIABLE, tunables)
            .exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_environment_gets_the_threshold_alone() {
        let expected = OsString::from("glibc.cpu.x86_rep_movsb_threshold=1048576");
        assert_eq!(tunables_with_threshold(None), Some(expected.clone()));
        assert_eq!(
            tunables_with_threshold(Some(OsStr::new(""))),
            Some(expected)
        );
    }

    #[test]
    fn other_tunables_are_kept_and_the_threshold_appended() {
        assert_eq!(
            tunables_with_threshold(Some(OsStr::new("glibc.malloc.arena_max=2"))),
            Some(OsString::from(
                "glibc.malloc.arena_max=2:glibc.cpu.x86_rep_movsb_threshold=1048576"
            ))
        );
    }

    #[test]
    fn a_threshold_the_operator_set_is_kept_and_nothing_re_executes() {
        let operator =
            OsStr::new("glibc.malloc.arena_max=2:glibc.cpu.x86_rep_movsb_threshold=4096");
        assert_eq!(tunables_with_threshold(Some(operator)), None);
    }

    #[test]
    fn a_similar_tunable_name_is_not_the_threshold() {
        let stop = OsStr::new("glibc.cpu.x86_rep_movsb_stop_threshold=4096");
        assert!(tunables_with_threshold(Some(stop)).is_some());
    }
}
