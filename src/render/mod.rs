//! Handlebars templates fed view models.
//!
//! Template files are named `<name>[.<locale>].<format>.hbs`, where format is
//! `json`, `txt`, `md` or `html`. Defaults ship in `templates/` and are
//! embedded in the binary; a directory named in the config adds templates or
//! replaces defaults file by file. Lookup for (name, locale) tries
//! `name.locale`, then `name`, then `name.en`.
//!
//! Escaping follows the format: inside JSON templates every `{{value}}` is
//! escaped as JSON string content (so `"title": "{{room.name}}"` is always
//! valid JSON), HTML templates escape HTML, text and Markdown templates
//! escape nothing. Rendered for a chat service ([`Target::Chat`]: Feishu/Lark
//! cards and posts, Slack, DingTalk, WeCom), every `{{value}}` is first made
//! [`inert`] markup, whatever the template, so text from an event or a
//! directory (a room id, a title) can never mention everyone, link, or
//! format. JSON output is checked to be JSON. Strict mode: a
//! template naming a variable the view model lacks fails to render.

pub mod ics;
mod lint;
pub mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;

use crate::locale::Locale;

/// The built-in templates' names (what sinks and the HTTP face render).
pub mod names {
    /// A room snapshot as JSON (panels, `/rooms/{id}.json`).
    pub const PANEL: &str = "panel";
    /// A room snapshot as a line of text (stdout and file sinks).
    pub const ROOM: &str = "room";
    /// A change notice as a line of text.
    pub const TEXT: &str = "text";
    pub const FEISHU_CARD: &str = "feishu_card";
    pub const FEISHU_POST: &str = "feishu_post";
    pub const SLACK: &str = "slack";
    pub const DINGTALK: &str = "dingtalk";
    pub const WECOM: &str = "wecom";
    pub const WEBHOOK: &str = "webhook";
    /// The live room page, and the part of it that changes.
    pub const ROOM_PAGE: &str = "room_page";
    pub const ROOM_PANEL: &str = "room_panel";
    /// A board page, the part of it that changes, and the script a live
    /// page (room or board) runs.
    pub const BOARD_PAGE: &str = "board_page";
    pub const BOARD_PANEL: &str = "board_panel";
    pub const LIVE_SCRIPT: &str = "live_script";
    /// The daily agenda, per service.
    pub const DIGEST_FEISHU_CARD: &str = "digest_feishu_card";
    pub const DIGEST_SLACK: &str = "digest_slack";
    pub const DIGEST_DINGTALK: &str = "digest_dingtalk";
    pub const DIGEST_WECOM: &str = "digest_wecom";
    pub const DIGEST_WEBHOOK: &str = "digest_webhook";
    pub const DIGEST_TEXT: &str = "digest_text";
}

/// The embedded default templates (file name, source).
pub(crate) const DEFAULTS: &[(&str, &str)] = &[
    (
        "panel.json.hbs",
        include_str!("../../templates/panel.json.hbs"),
    ),
    (
        "text.en.txt.hbs",
        include_str!("../../templates/text.en.txt.hbs"),
    ),
    (
        "text.zh-CN.txt.hbs",
        include_str!("../../templates/text.zh-CN.txt.hbs"),
    ),
    (
        "room.en.txt.hbs",
        include_str!("../../templates/room.en.txt.hbs"),
    ),
    (
        "room.zh-CN.txt.hbs",
        include_str!("../../templates/room.zh-CN.txt.hbs"),
    ),
    (
        "feishu_card.en.json.hbs",
        include_str!("../../templates/feishu_card.en.json.hbs"),
    ),
    (
        "feishu_card.zh-CN.json.hbs",
        include_str!("../../templates/feishu_card.zh-CN.json.hbs"),
    ),
    (
        "feishu_post.en.json.hbs",
        include_str!("../../templates/feishu_post.en.json.hbs"),
    ),
    (
        "feishu_post.zh-CN.json.hbs",
        include_str!("../../templates/feishu_post.zh-CN.json.hbs"),
    ),
    (
        "slack.en.json.hbs",
        include_str!("../../templates/slack.en.json.hbs"),
    ),
    (
        "slack.zh-CN.json.hbs",
        include_str!("../../templates/slack.zh-CN.json.hbs"),
    ),
    (
        "dingtalk.json.hbs",
        include_str!("../../templates/dingtalk.json.hbs"),
    ),
    (
        "wecom.json.hbs",
        include_str!("../../templates/wecom.json.hbs"),
    ),
    (
        "webhook.json.hbs",
        include_str!("../../templates/webhook.json.hbs"),
    ),
    (
        "room_page.html.hbs",
        include_str!("../../templates/room_page.html.hbs"),
    ),
    (
        "room_panel.html.hbs",
        include_str!("../../templates/room_panel.html.hbs"),
    ),
    (
        "live_script.html.hbs",
        include_str!("../../templates/live_script.html.hbs"),
    ),
    (
        "board_page.html.hbs",
        include_str!("../../templates/board_page.html.hbs"),
    ),
    (
        "board_panel.html.hbs",
        include_str!("../../templates/board_panel.html.hbs"),
    ),
    (
        "digest_feishu_card.json.hbs",
        include_str!("../../templates/digest_feishu_card.json.hbs"),
    ),
    (
        "digest_slack.json.hbs",
        include_str!("../../templates/digest_slack.json.hbs"),
    ),
    (
        "digest_dingtalk.json.hbs",
        include_str!("../../templates/digest_dingtalk.json.hbs"),
    ),
    (
        "digest_wecom.json.hbs",
        include_str!("../../templates/digest_wecom.json.hbs"),
    ),
    (
        "digest_webhook.json.hbs",
        include_str!("../../templates/digest_webhook.json.hbs"),
    ),
    (
        "digest_text.txt.hbs",
        include_str!("../../templates/digest_text.txt.hbs"),
    ),
];

/// What a template produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Text,
    Markdown,
    Html,
}

impl Format {
    /// The file-name extension of templates of this format.
    pub(crate) fn ext(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Text => "txt",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    pub(crate) fn from_ext(e: &str) -> Option<Self> {
        Some(match e {
            "json" => Format::Json,
            "txt" => Format::Text,
            "md" => Format::Markdown,
            "html" => Format::Html,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Text => "text/plain; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// A problem with a template file, shown as config problems are:
/// `file:line L, column C: message`, then the line with a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateIssue {
    pub file: String,
    /// 1-based line and column, when the problem has a place.
    pub at: Option<(usize, usize)>,
    pub message: String,
    pub snippet: Option<String>,
}

impl TemplateIssue {
    fn new(file: String, message: String) -> Self {
        TemplateIssue {
            file,
            at: None,
            message,
            snippet: None,
        }
    }
}

impl std::fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((l, c)) => write!(f, "{}:line {l}, column {c}: {}", self.file, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateIssue {}

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no template named `{name}` for locale {locale}")]
    Unknown { name: String, locale: &'static str },
    #[error("template `{template}`: {message}")]
    Failed { template: String, message: String },
    #[error("template `{template}` produced invalid JSON: {message}")]
    NotJson { template: String, message: String },
}

/// Rendered output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    pub format: Format,
}

#[derive(Debug, Clone)]
struct Entry {
    format: Format,
    /// Where it came from: a file, or built-in (tests check overrides).
    #[cfg_attr(not(test), allow(dead_code))]
    origin: String,
}

/// Who reads the output, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Programs (panels, webhooks, the HTTP face) and plain text: escaping
    /// by format only.
    Data,
    /// A chat service that reads markup in what it is sent: every value is
    /// also made [`inert`].
    Chat,
}

/// The targets a template of this format is compiled for: HTML has one
/// registry (its escaping is the same for every reader).
fn targets(format: Format) -> &'static [Target] {
    match format {
        Format::Html => &[Target::Data],
        Format::Json | Format::Text | Format::Markdown => &[Target::Data, Target::Chat],
    }
}

/// Every compiled template.
pub struct Templates {
    json: Handlebars<'static>,
    text: Handlebars<'static>,
    html: Handlebars<'static>,
    /// The JSON and text templates again, escaping for [`Target::Chat`].
    chat_json: Handlebars<'static>,
    chat_text: Handlebars<'static>,
    /// Registered name (`name` or `name.locale`) → entry.
    index: HashMap<String, Entry>,
    /// Base name → the registered name each locale resolves to (indexed
    /// by `Locale::ALL` order), computed once after loading.
    resolved: HashMap<String, [Option<(String, Format)>; 2]>,
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
}

fn chat_json_escape(s: &str) -> String {
    json_escape(&inert(s))
}

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(escape);
    h.register_helper("md", Box::new(md));
    h
}

/// Text people typed (meeting titles, names) made inert in chat markup:
/// every character that Feishu/Lark cards (`lark_md`), Slack mrkdwn,
/// DingTalk or WeCom markdown read as markup, a link or a mention
/// (`<at id=all>`, `<!channel>`, `**`, `[…](…)`, `<font>`) becomes its
/// full-width twin, and line breaks become spaces. Full-width twins rather
/// than each service's escape syntax: they read the same to people and mean
/// nothing to every one of the services (several have no escape syntax).
/// An underscore inside a word (`America/New_York`, `ou_1a2b`) stays: no
/// service's markup starts or ends emphasis there. Output escaping (JSON,
/// HTML) still applies after.
pub fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
        let mapped = match c {
            '_' if word(prev.as_ref()) && word(chars.peek()) => '_',
            c => markup_twin(c),
        };
        out.push(mapped);
        prev = Some(c);
    }
    out
}

fn markup_twin(c: char) -> char {
    match c {
        '<' => '＜',
        '>' => '＞',
        '*' => '＊',
        '_' => '＿',
        '~' => '～',
        '`' => '｀',
        '[' => '［',
        ']' => '］',
        '#' => '＃',
        '|' => '｜',
        '&' => '＆',
        '@' => '＠',
        '\n' | '\r' => ' ',
        c => c,
    }
}

handlebars::handlebars_helper!(md: |v: Json| match v {
    serde_json::Value::String(s) => inert(s),
    serde_json::Value::Null => String::new(),
    other => inert(&other.to_string()),
});

/// Split `name[.locale].format.hbs` into (registered name, format).
fn parse_file_name(file: &str) -> Result<(String, Format), String> {
    let stem = file
        .strip_suffix(".hbs")
        .ok_or_else(|| "template files must end in .hbs".to_string())?;
    let (rest, ext) = stem
        .rsplit_once('.')
        .ok_or_else(|| "name it <name>[.<locale>].<json|txt|md|html>.hbs".to_string())?;
    let format = Format::from_ext(ext)
        .ok_or_else(|| format!("unknown format `.{ext}` (expected json, txt, md or html)"))?;
    if rest.is_empty() {
        return Err("empty template name".into());
    }
    if let Some((_, loc)) = rest.rsplit_once('.') {
        loc.parse::<Locale>()?;
    }
    Ok((rest.to_string(), format))
}

impl Templates {
    /// The embedded defaults, then every `*.hbs` file in `dir` (which may
    /// replace a default). Returns every problem found.
    pub fn load(dir: Option<&Path>) -> Result<Self, Vec<TemplateIssue>> {
        let mut issues = Vec::new();
        let mut files: Vec<(String, String, String)> = Vec::new();
        if let Some(dir) = dir {
            let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "hbs"))
                    .collect(),
                Err(e) => {
                    issues.push(TemplateIssue::new(
                        dir.display().to_string(),
                        format!("cannot read directory: {e}"),
                    ));
                    Vec::new()
                }
            };
            paths.sort();
            for path in paths {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match std::fs::read_to_string(&path) {
                    Ok(src) => files.push((file, src, path.display().to_string())),
                    Err(e) => issues.push(TemplateIssue::new(
                        path.display().to_string(),
                        format!("cannot read: {e}"),
                    )),
                }
            }
        }
        Self::build(DEFAULTS, files, issues)
    }

    /// These `(file name, source)` pairs alone, as if they were the files
    /// of a template directory and there were no built-in templates
    /// (fuzzing: each input is loaded as `check` loads a directory).
    pub fn from_sources(files: &[(&str, &str)]) -> Result<Self, Vec<TemplateIssue>> {
        let files = files
            .iter()
            .map(|(f, s)| (f.to_string(), s.to_string(), f.to_string()))
            .collect();
        Self::build(&[], files, Vec::new())
    }

    /// `defaults`, then `files`: (file name, source, origin shown in
    /// messages).
    fn build(
        defaults: &[(&str, &str)],
        files: Vec<(String, String, String)>,
        mut issues: Vec<TemplateIssue>,
    ) -> Result<Self, Vec<TemplateIssue>> {
        let mut t = Templates {
            json: registry(json_escape),
            text: registry(handlebars::no_escape),
            html: registry(handlebars::html_escape),
            chat_json: registry(chat_json_escape),
            chat_text: registry(inert),
            index: HashMap::new(),
            resolved: HashMap::new(),
        };
        // Each template's partial references, for the recursion check
        // across templates (a later file replaces an earlier one's).
        let mut refs: HashMap<String, (String, lint::Refs)> = HashMap::new();
        let mut note = |file: &str, src: &str, origin: &str| {
            if let Ok((name, _)) = parse_file_name(file) {
                let r = lint::refs(&name, src);
                refs.insert(name, (origin.to_string(), r));
            }
        };
        for (file, src) in defaults {
            let origin = format!("(built-in) {file}");
            note(file, src, &origin);
            if let Err(e) = t.add(file, src, origin) {
                issues.push(e);
            }
        }
        for (file, src, origin) in files {
            note(&file, &src, &origin);
            if let Err(e) = t.add(&file, &src, origin) {
                issues.push(e);
            }
        }
        if issues.is_empty()
            && let Some((origin, cycle)) = lint::cycle(&refs)
        {
            issues.push(TemplateIssue::new(
                origin,
                format!(
                    "partials include each other ({}): recursion is not allowed in templates",
                    cycle.join(" → ")
                ),
            ));
        }
        t.build_resolution();
        if issues.is_empty() {
            Ok(t)
        } else {
            Err(issues)
        }
    }

    fn add(&mut self, file: &str, src: &str, origin: String) -> Result<(), TemplateIssue> {
        let issue = |message: String| TemplateIssue::new(origin.clone(), message);
        let (name, format) = parse_file_name(file).map_err(issue)?;
        // Before the parser sees it: a template is input too, and the
        // engine recurses on nesting and on partials.
        lint::check(&name, src).map_err(issue)?;
        // A replaced template may change format: drop the old one.
        if let Some(old) = self.index.remove(&name) {
            for &target in targets(old.format) {
                self.registry_mut(old.format, target)
                    .unregister_template(&name);
            }
        }
        // Compiled once per target it may be rendered for; the templates
        // are small.
        for &target in targets(format) {
            self.registry_mut(format, target)
                .register_template_string(&name, src)
                .map_err(|e| lint::syntax_issue(&origin, src, &e))?;
        }
        self.index.insert(name, Entry { format, origin });
        Ok(())
    }

    fn registry_mut(&mut self, f: Format, target: Target) -> &mut Handlebars<'static> {
        match (f, target) {
            (Format::Json, Target::Data) => &mut self.json,
            (Format::Json, Target::Chat) => &mut self.chat_json,
            (Format::Text | Format::Markdown, Target::Data) => &mut self.text,
            (Format::Text | Format::Markdown, Target::Chat) => &mut self.chat_text,
            (Format::Html, _) => &mut self.html,
        }
    }

    fn registry(&self, f: Format, target: Target) -> &Handlebars<'static> {
        match (f, target) {
            (Format::Json, Target::Data) => &self.json,
            (Format::Json, Target::Chat) => &self.chat_json,
            (Format::Text | Format::Markdown, Target::Data) => &self.text,
            (Format::Text | Format::Markdown, Target::Chat) => &self.chat_text,
            (Format::Html, _) => &self.html,
        }
    }

    /// The registered name a (name, locale) pair resolves to: `name.locale`,
    /// then `name`, then `name.en`.
    fn resolve_uncached(&self, name: &str, locale: Locale) -> Option<(String, Format)> {
        [
            format!("{name}.{}", locale.tag()),
            name.to_string(),
            format!("{name}.en"),
        ]
        .into_iter()
        .find_map(|k| self.index.get(&k).map(|e| (k, e.format)))
    }

    /// Fill `resolved` for every base name.
    fn build_resolution(&mut self) {
        let bases: std::collections::HashSet<String> = self
            .index
            .keys()
            .map(|k| match k.rsplit_once('.') {
                Some((base, loc)) if loc.parse::<Locale>().is_ok() => base.to_string(),
                _ => k.clone(),
            })
            .collect();
        self.resolved = bases
            .into_iter()
            .map(|b| {
                let r = Locale::ALL.map(|l| self.resolve_uncached(&b, l));
                (b, r)
            })
            .collect();
    }

    /// The registered name and format a (name, locale) pair resolves to.
    pub fn resolve(&self, name: &str, locale: Locale) -> Option<(&str, Format)> {
        let i = Locale::ALL.iter().position(|l| *l == locale)?;
        self.resolved
            .get(name)
            .and_then(|r| r[i].as_ref())
            .map(|(k, f)| (k.as_str(), *f))
    }

    /// Is there a template of this name for this locale?
    pub fn has(&self, name: &str, locale: Locale) -> bool {
        self.resolve(name, locale).is_some()
    }

    /// Where a resolved template came from (file path or built-in).
    #[cfg(test)]
    pub(crate) fn origin(&self, registered: &str) -> Option<&str> {
        self.index.get(registered).map(|e| e.origin.as_str())
    }

    /// Render for programs and plain text ([`Target::Data`]).
    pub fn render(
        &self,
        name: &str,
        locale: Locale,
        vm: view::ViewModel,
    ) -> Result<Rendered, RenderError> {
        self.render_for(name, locale, vm, Target::Data)
    }

    pub fn render_for(
        &self,
        name: &str,
        locale: Locale,
        vm: view::ViewModel,
        target: Target,
    ) -> Result<Rendered, RenderError> {
        let (key, format) = self
            .resolve(name, locale)
            .ok_or_else(|| RenderError::Unknown {
                name: name.to_string(),
                locale: locale.tag(),
            })?;
        let ctx = handlebars::Context::from(vm.0);
        let body = self
            .registry(format, target)
            .render_with_context(key, &ctx)
            .map_err(|e| RenderError::Failed {
                template: key.to_string(),
                message: render_error_message(&e),
            })?;
        if format == Format::Json
            && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
        {
            return Err(RenderError::NotJson {
                template: key.to_string(),
                message: e.to_string(),
            });
        }
        Ok(Rendered { body, format })
    }
}

fn render_error_message(e: &handlebars::RenderError) -> String {
    let reason = e.reason().to_string();
    match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!("{reason} (line {l}, column {c})"),
        _ => reason,
    }
}

#[cfg(test)]
mod tests;
