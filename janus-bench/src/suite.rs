//! Suites: JSONL items in the reference runner's format, where they come from, their hash,
//! and deterministic sampling.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The shipped public suites, compiled in so `janus bench` runs from any directory.
const PUBLIC_TRAIN: &str = include_str!("../suites/public/train.jsonl");
const PUBLIC_DEV: &str = include_str!("../suites/public/dev.jsonl");

/// Where `private/test` is read from: a `.jsonl` file or a folder of them.
pub const PRIVATE_DIR_ENV: &str = "JANUS_BENCH_PRIVATE_DIR";

/// The five categories; each scores quality its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Plain questions and instructions.
    Chat,
    /// Fact finding, with citations where required.
    Research,
    /// Code run against test cases inside a sandbox.
    Code,
    /// Questions about images sent as `data:` URLs.
    Multimodal,
    /// Tool calls or files (artifacts) expected back.
    Agentic,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 5] = [
        Category::Chat,
        Category::Research,
        Category::Code,
        Category::Multimodal,
        Category::Agentic,
    ];

    /// The name used in suites and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Chat => "chat",
            Category::Research => "research",
            Category::Code => "code",
            Category::Multimodal => "multimodal",
            Category::Agentic => "agentic",
        }
    }

    /// The reference runner's task type for this category (its `task_type` field).
    pub fn task_type(self) -> &'static str {
        match self {
            Category::Chat => "chat_quality",
            Category::Research => "research",
            Category::Code => "coding",
            Category::Multimodal => "multimodal",
            Category::Agentic => "tool_use",
        }
    }

    /// A category by name; the reference's `deep_research` and `tool_use` are aliases.
    pub fn parse(name: &str) -> Option<Category> {
        Some(match name {
            "chat" => Category::Chat,
            "research" | "deep_research" => Category::Research,
            "code" => Category::Code,
            "multimodal" => Category::Multimodal,
            "agentic" | "tool_use" => Category::Agentic,
            _ => return None,
        })
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One test case of a code item: the function's arguments and its expected return value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    /// Positional arguments.
    pub input: Vec<Value>,
    /// Expected return value (floats compare within 1e-6).
    pub output: Value,
}

/// A file an agentic item expects back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpectedArtifact {
    /// The artifact's `display_name`, when the item names it.
    pub name: Option<String>,
    /// Its MIME type, when the item names it.
    pub mime_type: Option<String>,
    /// Strings its bytes (as UTF-8 text) must contain.
    pub contains: Vec<String>,
    /// Smallest acceptable size.
    pub min_size: Option<u64>,
}

/// What a good answer looks like: the reference's `expected` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// `type`: `text`, `code`, `multimodal`, `artifact`, …
    pub kind: Option<String>,
    /// Strings the answer must contain (case-insensitive).
    pub contains: Vec<String>,
    /// Topics the answer must cover (case-insensitive substrings).
    pub must_cover: Vec<String>,
    /// Shortest acceptable answer, in characters.
    pub min_length: Option<f64>,
    /// Latency above which the latency component of quality drops.
    pub max_latency_ms: Option<f64>,
    /// Code: the function to call.
    pub function_name: Option<String>,
    /// Code: its test cases.
    pub test_cases: Vec<TestCase>,
    /// Code: the language (only Python runs).
    pub language: Option<String>,
    /// Research: citations are required.
    pub requires_citations: bool,
    /// Research: how many sources to cite.
    pub min_sources: Option<f64>,
    /// Agentic: a tool call is required.
    pub requires_tool_use: bool,
    /// Agentic: tool names of which the first call must be one.
    pub tools_expected: Vec<String>,
    /// Agentic: files expected back.
    pub artifacts: Vec<ExpectedArtifact>,
}

/// One benchmark item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique id.
    pub id: String,
    /// Its category.
    pub category: Category,
    /// `input.messages`, sent as they are.
    pub messages: Vec<Value>,
    /// What a good answer looks like.
    pub expected: Expected,
    /// `available_tools` (or `tools`), sent as `tools`.
    pub tools: Option<Value>,
    /// `tool_choice`, sent when tools are.
    pub tool_choice: Option<Value>,
    /// `temperature`, when the item sets one.
    pub temperature: Option<Value>,
    /// Agentic: `expected_call` `{function, arguments}`.
    pub expected_call: Option<Value>,
}

impl Item {
    /// True when a message carries an `image_url` part.
    pub fn has_image(&self) -> bool {
        self.messages.iter().any(|m| {
            m.get("content")
                .and_then(Value::as_array)
                .is_some_and(|parts| {
                    parts
                        .iter()
                        .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
                })
        })
    }
}

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Its name (`public/dev`) or the path it was read from.
    pub name: String,
    /// sha256 (hex) over the bytes of its files, in load order.
    pub hash: String,
    /// The items, in file order.
    pub items: Vec<Item>,
}

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// A file or folder could not be read.
    #[error("cannot read suite {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A line is not a valid item.
    #[error("{source_name}:{line}: {reason}")]
    Item {
        /// The file (or suite name).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The suite has no items.
    #[error("suite {0} has no items")]
    Empty(String),
    /// `private/test` without its folder.
    #[error(
        "suite private/test is read from {PRIVATE_DIR_ENV}, which is not set (it is never shipped)"
    )]
    NoPrivateDir,
    /// Two items share an id (sampling and comparisons key on it).
    #[error("{source_name}: item id '{id}' appears twice")]
    DuplicateId {
        /// The file (or suite name).
        source_name: String,
        /// The id.
        id: String,
    },
}

/// Names of the suites shipped in the binary, plus `private/test`.
pub const SUITE_NAMES: [&str; 3] = ["public/train", "public/dev", "private/test"];

impl Suite {
    /// Loads a suite by name (`public/train`, `public/dev`, `private/test`) or path (a
    /// `.jsonl` file, or a folder whose `*.jsonl` files are read in name order).
    pub fn load(name_or_path: &str) -> Result<Suite, SuiteError> {
        match name_or_path {
            "public/train" => Suite::parse(name_or_path, &[(name_or_path, PUBLIC_TRAIN)]),
            "public/dev" => Suite::parse(name_or_path, &[(name_or_path, PUBLIC_DEV)]),
            "private/test" => {
                let dir = std::env::var_os(PRIVATE_DIR_ENV).ok_or(SuiteError::NoPrivateDir)?;
                Suite::load_path(name_or_path, Path::new(&dir))
            }
            path if !Path::new(path).exists() => Err(SuiteError::Read {
                path: path.to_owned(),
                reason: "no such file or folder (suites: public/train, public/dev, private/test, or a .jsonl file or folder)".to_owned(),
            }),
            path => Suite::load_path(path, Path::new(path)),
        }
    }

    fn load_path(name: &str, path: &Path) -> Result<Suite, SuiteError> {
        let read_error = |path: &Path, e: std::io::Error| SuiteError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| read_error(path, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "jsonl"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut texts = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| read_error(file, e))?;
            texts.push((file.display().to_string(), text));
        }
        let borrowed: Vec<(&str, &str)> = texts
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Suite::parse(name, &borrowed)
    }

    /// Parses `(source name, JSONL text)` pairs into one suite.
    pub fn parse(name: &str, sources: &[(&str, &str)]) -> Result<Suite, SuiteError> {
        let mut hasher = Sha256::new();
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (source_name, text) in sources {
            hasher.update(text.as_bytes());
            for (index, line) in text.lines().enumerate() {
                let line_no = index + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let item = parse_item(line).map_err(|reason| SuiteError::Item {
                    source_name: (*source_name).to_owned(),
                    line: line_no,
                    reason,
                })?;
                if !seen.insert(item.id.clone()) {
                    return Err(SuiteError::DuplicateId {
                        source_name: (*source_name).to_owned(),
                        id: item.id,
                    });
                }
                items.push(item);
            }
        }
        if items.is_empty() {
            return Err(SuiteError::Empty(name.to_owned()));
        }
        Ok(Suite {
            name: name.to_owned(),
            hash: hex(&hasher.finalize()),
            items,
        })
    }

    /// Items per category.
    pub fn counts(&self) -> Vec<(Category, usize)> {
        Category::ALL
            .iter()
            .map(|&c| (c, self.items.iter().filter(|i| i.category == c).count()))
            .collect()
    }

    /// A deterministic sample: per category, `percent` of its items (at least one), picked
    /// by a shuffle seeded with `seed` and the category's name, returned sorted by id.
    pub fn sample(&self, percent: u8, seed: u64) -> Vec<Item> {
        let percent = usize::from(percent.clamp(1, 100));
        let mut picked = Vec::new();
        for category in Category::ALL {
            let mut group: Vec<&Item> = self
                .items
                .iter()
                .filter(|i| i.category == category)
                .collect();
            if group.is_empty() {
                continue;
            }
            let take = (group.len() * percent).div_ceil(100).max(1);
            if take < group.len() {
                let mut rng = SplitMix64::new(seed, category.as_str());
                // Fisher–Yates: only the order the seed gives matters.
                for i in (1..group.len()).rev() {
                    let j = (rng.next() % (i as u64 + 1)) as usize;
                    group.swap(i, j);
                }
                group.truncate(take);
            }
            picked.extend(group.into_iter().cloned());
        }
        picked.sort_by(|a, b| a.id.cmp(&b.id));
        picked
    }
}

/// splitmix64, seeded from sha256(seed:category): tiny, portable and stable across
/// platforms and releases, which a crate's RNG would not promise.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64, category: &str) -> SplitMix64 {
        let digest = Sha256::digest(format!("{seed}:{category}").as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        SplitMix64(u64::from_le_bytes(first))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn strings(value: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("expected.{field}[{i}] must be a string")),
            })
            .collect(),
        Some(_) => Err(format!(
            "expected.{field} must be a string or a list of strings"
        )),
    }
}

fn number(value: Option<&Value>, field: &str) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(format!("expected.{field} must be a number")),
    }
}

fn parse_expected(value: Option<&Value>) -> Result<Expected, String> {
    let empty = serde_json::Map::new();
    let object = match value {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("expected must be an object".to_owned()),
    };
    let test_cases = match object.get("test_cases") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<TestCase>>(v.clone()).map_err(|e| {
            format!("expected.test_cases must be a list of {{input: [..], output}}: {e}")
        })?,
    };
    let artifacts = match object.get("artifacts") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<ExpectedArtifact>>(v.clone()).map_err(|e| {
            format!(
                "expected.artifacts must be a list of {{name, mime_type, contains, min_size}}: {e}"
            )
        })?,
    };
    let text = |field: &str| -> Result<Option<String>, String> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("expected.{field} must be a string")),
        }
    };
    Ok(Expected {
        kind: text("type")?,
        contains: strings(object.get("contains"), "contains")?,
        must_cover: strings(object.get("must_cover"), "must_cover")?,
        min_length: number(object.get("min_length"), "min_length")?,
        max_latency_ms: number(object.get("max_latency_ms"), "max_latency_ms")?,
        function_name: text("function_name")?,
        test_cases,
        language: text("language")?,
        requires_citations: object
            .get("requires_citations")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        min_sources: number(object.get("min_sources"), "min_sources")?,
        requires_tool_use: object
            .get("requires_tool_use")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        tools_expected: strings(object.get("tools_expected"), "tools_expected")?,
        artifacts,
    })
}

/// One JSONL line → an item; the error names the offending field.
fn parse_item(line: &str) -> Result<Item, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("an item must be a JSON object".to_owned());
    };
    let id = match object.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("id must be a non-empty string".to_owned()),
    };
    let category_name = object
        .get("category")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("item {id}: category must be a string"))?;
    let category = Category::parse(category_name).ok_or_else(|| {
        format!(
            "item {id}: unknown category '{category_name}' (chat, research, code, multimodal, agentic)"
        )
    })?;
    let messages = object
        .get("input")
        .and_then(|i| i.get("messages"))
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| format!("item {id}: input.messages must be a non-empty list"))?
        .clone();
    for (i, message) in messages.iter().enumerate() {
        if !message.is_object() || message.get("role").and_then(Value::as_str).is_none() {
            return Err(format!(
                "item {id}: input.messages[{i}] must be an object with a role"
            ));
        }
    }
    let expected = parse_expected(object.get("expected")).map_err(|e| format!("item {id}: {e}"))?;
    let tools = object
        .get("available_tools")
        .or_else(|| object.get("tools"))
        .filter(|t| !t.is_null())
        .cloned();
    Ok(Item {
        id,
        category,
        messages,
        expected,
        tools,
        tool_choice: object.get("tool_choice").filter(|t| !t.is_null()).cloned(),
        temperature: object.get("temperature").filter(|t| !t.is_null()).cloned(),
        expected_call: object
            .get("expected_call")
            .filter(|t| !t.is_null())
            .cloned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bad_lines_name_the_line_and_field() {
        let text = "{\"id\":\"a\",\"category\":\"chat\",\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}\n\n{\"id\":\"b\",\"category\":\"poetry\",\"input\":{\"messages\":[]}}\n";
        let error = Suite::parse("x.jsonl", &[("x.jsonl", text)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.jsonl:3: item b: unknown category 'poetry' (chat, research, code, multimodal, agentic)"
        );
        let error = Suite::parse("y", &[("y", "{\"id\":\"a\",\"category\":\"chat\",\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]},\"expected\":{\"min_length\":\"long\"}}")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "y:1: item a: expected.min_length must be a number"
        );
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_category() {
        let suite = Suite::load("public/train").unwrap();
        let a: Vec<String> = suite.sample(25, 42).into_iter().map(|i| i.id).collect();
        let b: Vec<String> = suite.sample(25, 42).into_iter().map(|i| i.id).collect();
        let c: Vec<String> = suite.sample(25, 7).into_iter().map(|i| i.id).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // 25 % of each category's items, rounded up, at least one.
        for (category, count) in suite.counts() {
            let picked = suite
                .sample(25, 42)
                .iter()
                .filter(|i| i.category == category)
                .count();
            assert_eq!(picked, (count * 25).div_ceil(100).max(1), "{category}");
        }
        assert_eq!(suite.sample(100, 1).len(), suite.items.len());
    }
}
