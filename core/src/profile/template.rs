//! Header and body templates: strings with `{access_token}`, `{refresh_credential}` (aliases
//! `{refresh_token}`, `{entity_token}`), `{client_id}`, `{client_secret}`, `{scope}` and
//! `{api_key}` placeholders, parsed once when a profile is loaded and rendered per request.
//! A template that is exactly one placeholder with no value renders to nothing, so its field is
//! left out of the request.

use crate::error::{Result, VaultError};
use crate::secret::SecretString;

/// A part of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    AccessToken,
    RefreshCredential,
    ClientId,
    ClientSecret,
    Scope,
    ApiKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template(pub(super) Vec<Piece>);

impl Template {
    pub(super) fn parse(s: &str) -> Result<Template> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| VaultError::invalid("a template has an unclosed '{'"))?;
            let var = match &after[..close] {
                "access_token" => Var::AccessToken,
                "refresh_credential" | "refresh_token" | "entity_token" => Var::RefreshCredential,
                "client_id" => Var::ClientId,
                "client_secret" => Var::ClientSecret,
                "scope" => Var::Scope,
                "api_key" => Var::ApiKey,
                // The name is not quoted: a mistyped template may hold a literal secret.
                _ => return Err(VaultError::invalid("unknown placeholder in a template")),
            };
            pieces.push(Piece::Var(var));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(VaultError::invalid("a template has a stray '}'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    pub(super) fn sole_var(&self) -> Option<Var> {
        match self.0.as_slice() {
            [Piece::Var(v)] => Some(*v),
            _ => None,
        }
    }

    /// Render; `Ok(None)` when a sole placeholder has no value (the field is left out).
    pub(super) fn render(&self, vals: &Values<'_>) -> Result<Option<SecretString>> {
        if let Some(v) = self.sole_var() {
            return Ok(vals.get(v).map(SecretString::new));
        }
        // Sized exactly up front: growing would leave copies of the secret parts in freed memory.
        let len = self
            .0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Var(v) => vals.get(*v).map_or(0, str::len),
            })
            .sum();
        let mut out = String::with_capacity(len);
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match vals.get(*v) {
                    Some(s) => out.push_str(s),
                    None => {
                        let s = SecretString::new(out);
                        drop(s);
                        return Err(VaultError::invalid(format!(
                            "the profile needs {v:?}, which is not set"
                        )));
                    }
                },
            }
        }
        Ok(Some(SecretString::new(out)))
    }
}

pub(super) struct Values<'a> {
    pub(super) access_token: &'a str,
    pub(super) refresh_credential: Option<&'a str>,
    pub(super) client_id: Option<&'a str>,
    pub(super) client_secret: Option<&'a str>,
    pub(super) scope: Option<&'a str>,
    pub(super) api_key: Option<&'a str>,
}

impl Values<'_> {
    fn get(&self, v: Var) -> Option<&str> {
        let s = match v {
            Var::AccessToken => Some(self.access_token),
            Var::RefreshCredential => self.refresh_credential,
            Var::ClientId => self.client_id,
            Var::ClientSecret => self.client_secret,
            Var::Scope => self.scope,
            Var::ApiKey => self.api_key,
        };
        s.filter(|s| !s.is_empty())
    }
}
