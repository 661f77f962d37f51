//! What validation carries along: the text (for lines), the problems found
//! so far, the environment and the config's folder; and the parsers every
//! section shares (time zones, durations, URLs, secrets).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use toml::Spanned;
use url::Url;

use super::de::line_of;
use super::raw::Text;
use super::{ConfigIssue, Env};
use crate::locale::{HourCycle, Locale};

pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) issues: Vec<ConfigIssue>,
    pub(super) env: &'a dyn Env,
    pub(super) base: &'a Path,
    /// Keys the recovering deserializer took out (already reported).
    pub(super) removed: Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn line<T>(&self, at: &Spanned<T>) -> usize {
        line_of(self.text, at.span().start)
    }

    pub(super) fn push<T>(
        &mut self,
        key: impl Into<String>,
        at: &Spanned<T>,
        message: impl Into<String>,
    ) {
        let line = self.line(at);
        self.issues.push(ConfigIssue {
            key: key.into(),
            line: Some(line),
            column: None,
            message: message.into(),
            snippet: None,
        });
    }

    /// A required key that is absent: reported unless the recovering
    /// deserializer took it out (its value was wrong, and said so).
    pub(super) fn require<T, U>(
        &mut self,
        table: &str,
        field: &str,
        at: &Spanned<U>,
        value: Option<T>,
    ) -> Option<T> {
        if value.is_none()
            && !self
                .removed
                .iter()
                .any(|k| *k == format!("{table}.{field}"))
        {
            self.push(table, at, format!("missing field `{field}`"));
        }
        value
    }

    pub(super) fn parsed<T, E: fmt::Display>(
        &mut self,
        key: &str,
        v: &Text,
        f: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match f(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.push(key, v, e.to_string());
                None
            }
        }
    }

    pub(super) fn tz(&mut self, key: &str, v: &Option<Text>) -> Option<Tz> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| {
            s.parse::<Tz>().map_err(|_| {
                format!("unknown time zone `{s}` (use an IANA name such as Asia/Shanghai)")
            })
        })
    }

    pub(super) fn locale(&mut self, key: &str, v: &Option<Text>) -> Option<Locale> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| s.parse::<Locale>())
    }

    pub(super) fn hour_cycle(&mut self, key: &str, v: &Option<Text>) -> Option<HourCycle> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| s.parse::<HourCycle>())
    }

    pub(super) fn duration(&mut self, key: &str, v: &Option<Text>) -> Option<Duration> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| {
            humantime::parse_duration(s)
                .map_err(|e| format!("`{s}` is not a duration like \"10m\" or \"30s\": {e}"))
        })
    }

    /// A duration, or `None` for `"off"` (also `"0"`, `"0s"`); absent:
    /// `default`.
    pub(super) fn duration_or_off(
        &mut self,
        key: &str,
        v: &Option<Text>,
        default: Duration,
    ) -> Option<Duration> {
        match v {
            None => Some(default),
            Some(h) if matches!(h.get_ref().as_str(), "off" | "0" | "0s") => None,
            Some(_) => self.duration(key, v),
        }
    }

    pub(super) fn url(&mut self, key: &str, v: &Text) -> Option<Url> {
        self.parsed(key, v, |s| match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
            Ok(u) => Err(format!(
                "`{}` must be an http(s) URL with a host",
                u.scheme()
            )),
            Err(e) => Err(format!("not a valid URL: {e}")),
        })
    }

    /// Read a secret from the environment variable a key names. The
    /// variable's *name* may be shown; its value never is.
    pub(super) fn secret(&mut self, key: &str, v: &Text) -> Option<SecretString> {
        let name = v.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.push(
                key,
                v,
                format!("`{name}` is not an environment variable name"),
            );
            return None;
        }
        match self.env.var(name) {
            Some(val) if !val.is_empty() => Some(SecretString::from(val)),
            _ => {
                self.push(
                    key,
                    v,
                    format!("environment variable {name} is not set (or is empty)"),
                );
                None
            }
        }
    }

    /// A secret named by `<base>_env` (an environment variable) or by
    /// `<base>_file` (a file: a container secret, a systemd credential; a
    /// relative path is looked up in `$CREDENTIALS_DIRECTORY` first, then
    /// next to the config file). One of the two, not both; `None` when
    /// neither is set (the caller says whether that is a problem). The
    /// file's path may be shown; its contents never are.
    pub(super) fn secret_from(
        &mut self,
        base: &str,
        env: Option<&Text>,
        file: Option<&Text>,
    ) -> Option<SecretString> {
        match (env, file) {
            (Some(_), Some(f)) => {
                self.push(
                    format!("{base}_file"),
                    f,
                    format!("set `{base}_env` or `{base}_file`, not both"),
                );
                None
            }
            (Some(v), None) => self.secret(&format!("{base}_env"), v),
            (None, Some(f)) => self.secret_file(&format!("{base}_file"), f),
            (None, None) => None,
        }
    }

    fn secret_file(&mut self, key: &str, f: &Text) -> Option<SecretString> {
        let p = Path::new(f.get_ref());
        let path = if p.is_relative()
            && let Some(dir) = self
                .env
                .var("CREDENTIALS_DIRECTORY")
                .filter(|d| !d.is_empty())
            && Path::new(&dir).join(p).exists()
        {
            Path::new(&dir).join(p)
        } else {
            self.path(f.get_ref())
        };
        match self.env.file(&path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    self.push(key, f, format!("{} is empty", path.display()));
                    None
                } else {
                    Some(SecretString::from(value.to_string()))
                }
            }
            Err(e) => {
                self.push(key, f, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// A secret whose variable may be unset (then `None`, no problem).
    pub(super) fn optional_secret(&self, v: &Text) -> Option<SecretString> {
        self.env
            .var(v.get_ref())
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
    }

    /// Replace each `${NAME}` in a value with that environment variable.
    pub(super) fn expand_env(&mut self, key: &str, v: &Text) -> Option<SecretString> {
        let mut out = String::new();
        let mut rest = v.get_ref().as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find('}') else {
                self.push(key, v, "unclosed `${` placeholder");
                return None;
            };
            let name = Spanned::new(v.span(), rest[i + 2..i + j].to_string());
            let secret = self.secret(key, &name)?;
            out.push_str(secrecy::ExposeSecret::expose_secret(&secret));
            rest = &rest[i + j + 1..];
        }
        out.push_str(rest);
        Some(SecretString::from(out))
    }

    /// A path from the file, relative to the file's folder.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A count that must be at least `min`.
    pub(super) fn at_least(&mut self, key: &str, v: &Spanned<u64>, min: u64, why: &str) -> usize {
        if *v.get_ref() < min {
            self.push(key, v, format!("must be at least {min}{why}"));
        }
        usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)
    }
}
