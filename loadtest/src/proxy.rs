//! The HTTP CONNECT proxy towards the relay, with the rules of `hycod forward`: `--proxy
//! http://[USER@]HOST:PORT` (a password in the URL is refused) with `--proxy-password-file` or
//! `--proxy-password-env`, `--proxy none` for direct connections, and without `--proxy` the
//! environment's proxy variables for the relay's scheme with `NO_PROXY`. A proxy's refusal is
//! printed once (it names the proxy, never a password); each request it fails counts as `proxy`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hycod::proxy::no_proxy::NoProxy;
use hycod::proxy::{ProxyError, ProxyRoute};
use hycod::secret::Secret;

use crate::cli::TargetArgs;

/// The route to the relay, `None` for direct connections; `tls` for a `wss://` relay. The
/// error names the flag or variable and why.
pub(crate) fn route(args: &TargetArgs, tls: bool) -> Result<Option<Arc<ProxyRoute>>, String> {
    let env = |name: &str| std::env::var(name).ok();
    let password_flag = match (&args.proxy_password_file, &args.proxy_password_env) {
        (Some(_), _) => Some("--proxy-password-file"),
        (None, Some(_)) => Some("--proxy-password-env"),
        (None, None) => None,
    };
    let Some(text) = args.proxy.as_deref().map(str::trim) else {
        if let Some(flag) = password_flag {
            return Err(format!("{flag} needs --proxy http://USER@HOST:PORT"));
        }
        let found = hycod::proxy::env::from_environment(tls, &env).map_err(|e| {
            format!(
                "the proxy variable {} is invalid: {}",
                e.variable, e.problem
            )
        })?;
        return Ok(found.map(|found| {
            Arc::new(ProxyRoute::new(
                found.proxy.address,
                found.proxy.password.as_ref(),
                found.no_proxy,
            ))
        }));
    };
    if text == "none" {
        return match password_flag {
            Some(flag) => Err(format!("{flag} needs a user in --proxy, not `none`")),
            None => Ok(None),
        };
    }
    let parsed = hycod::proxy::url::parse(text, false)
        .map_err(|problem| format!("--proxy must be http://[USER@]HOST:PORT or none: {problem}"))?;
    if parsed.password.is_some() {
        return Err(
            "--proxy must not carry a password: use --proxy-password-file or \
                    --proxy-password-env"
                .to_owned(),
        );
    }
    let password = match (&args.proxy_password_file, &args.proxy_password_env) {
        (Some(file), _) => Some(read_password_file(file)?),
        (None, Some(variable)) => Some(Secret::new(
            env(variable)
                .ok_or_else(|| format!("--proxy-password-env: {variable} is not set"))?
                .trim(),
        )),
        (None, None) => None,
    };
    match (parsed.address.user.is_some(), password_flag, &password) {
        (false, Some(flag), _) => Err(format!(
            "{flag} needs a user in --proxy (http://USER@HOST:PORT)"
        )),
        (true, None, _) => Err(
            "--proxy names a user: give its password with --proxy-password-file or \
             --proxy-password-env"
                .to_owned(),
        ),
        _ => Ok(Some(Arc::new(ProxyRoute::new(
            parsed.address,
            password.as_ref(),
            NoProxy::default(),
        )))),
    }
}

fn read_password_file(file: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--proxy-password-file {}: {e}", file.display()))?;
    let whole = Secret::new(text);
    Ok(Secret::new(whole.expose().trim()))
}

/// Prints the first refusal of a run (every worker meets the same one; the summary counts them).
pub(crate) fn report(error: &ProxyError) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if !REPORTED.swap(true, Ordering::Relaxed) {
        eprintln!("error: {error}");
    }
}
