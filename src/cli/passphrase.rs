//! The passphrase of a private key, for every command that makes or reads
//! one, from the first of:
//!
//! 1. `COSIGN_PASSWORD`, cosign's variable (set and empty is an empty
//!    passphrase, as cosign takes it);
//! 2. `--password-stdin` (`--key-password-stdin` in a command that reaches
//!    a registry, whose `--password-stdin` is the registry's password): the
//!    first line of standard input;
//! 3. a prompt on the terminal, when standard input is one (twice for a
//!    new key);
//! 4. otherwise an error that says to set `COSIGN_PASSWORD` or pass
//!    `--password-stdin` (or `--key-password-stdin`).
//!
//! The passphrase is zeroed when dropped and never printed.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;

use clap::Args;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sign::key::PrivateKey;

/// The variable cosign reads the passphrase from.
const VARIABLE: &str = "COSIGN_PASSWORD";

/// `--password-stdin`, for `generate-key-pair` (which reaches no registry).
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from the first line of standard input
    /// (COSIGN_PASSWORD, when set, comes first; without either, it is asked
    /// on the terminal).
    #[arg(long)]
    password_stdin: bool,
}

impl PassphraseArgs {
    /// Where the passphrase comes from.
    pub fn source(&self) -> Passphrase {
        Passphrase {
            stdin: self.password_stdin,
            flag: "--password-stdin",
        }
    }
}

/// `--key-password-stdin`, for the commands that read a private key and
/// reach a registry, whose `--password-stdin` is the registry's password
/// (as `docker login` has it).
#[derive(Debug, Args)]
pub struct KeyPassphraseArgs {
    /// Read the passphrase of the private key (sign's --key, push's
    /// --sign-key) from the first line
    /// of standard input (COSIGN_PASSWORD, when set, comes first; without
    /// either, it is asked on the terminal). Not with --password-stdin,
    /// the registry's password.
    #[arg(long, conflicts_with = "password_stdin")]
    key_password_stdin: bool,
}

impl KeyPassphraseArgs {
    /// Where the passphrase comes from.
    pub fn source(&self) -> Passphrase {
        Passphrase {
            stdin: self.key_password_stdin,
            flag: "--key-password-stdin",
        }
    }
}

/// Where a command reads the passphrase of a key: the sources of the
/// module's list, standard input if its flag was given.
#[derive(Debug, Clone, Copy)]
pub struct Passphrase {
    /// Whether the flag that reads standard input was given.
    stdin: bool,
    /// That flag, for messages.
    flag: &'static str,
}

impl Passphrase {
    /// Read the private key file `path`, asking for its passphrase (once)
    /// only if it is encrypted: what every command that signs calls.
    pub fn load_private_key(&self, path: &Path) -> Result<PrivateKey> {
        let what = format!("the passphrase of {}", path.display());
        PrivateKey::load(path, &|| self.read(&what, false))
    }

    /// The passphrase, from the first source of the module's list; `what`
    /// names it in the prompt and the errors ("the passphrase of
    /// cosign.key"); `confirm` asks twice at a prompt (for a new key).
    pub fn read(&self, what: &str, confirm: bool) -> Result<Zeroizing<String>> {
        if let Some(value) = std::env::var_os(VARIABLE) {
            return value.into_string().map(Zeroizing::new).map_err(|_| {
                Error::Invalid(format!(
                    "{VARIABLE} is not valid UTF-8; give {what} in UTF-8"
                ))
            });
        }
        if self.stdin {
            return read_line(what, self.flag);
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::Invalid(format!(
                "{what} is needed and there is no terminal to ask it on: set {VARIABLE} \
                 or pass {} and give it on standard input",
                self.flag
            )));
        }
        let first = prompt(&format!("Enter {what}: "))?;
        if confirm {
            let again = prompt(&format!("Enter {what} again: "))?;
            if *again != *first {
                return Err(Error::Invalid(format!(
                    "the two entries of {what} differ; run the command again"
                )));
            }
        }
        Ok(first)
    }
}

/// The first line of standard input, without its line ending.
fn read_line(what: &str, flag: &str) -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(Vec::with_capacity(256));
    let read = std::io::stdin()
        .lock()
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::Invalid(format!("cannot read {what} from standard input: {e}")))?;
    if read == 0 {
        // Not even an empty line: nothing was piped in.
        return Err(Error::Invalid(format!(
            "{flag}: standard input is empty; give {what} as its first line"
        )));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| Error::Invalid(format!("{what} on standard input is not valid UTF-8")))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Ask on the terminal, without echo.
fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Error::Invalid(format!("cannot read the passphrase on the terminal: {e}")))
}
