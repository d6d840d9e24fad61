//! Which path a request takes: a small pure function over what the request says.
//!
//! Order: an explicit override (`metadata.janus_path`, or a named agent) → a long prompt →
//! a URL to read → words that ask for work only tools can do (files to make or convert,
//! code to run or test, data to analyse, research, images to produce) → the fast path.
//! A question *about* something ("what is a CSV file?", "how do I run a script?") stays on
//! the fast path unless it also needs fresh or external information. Images in the input
//! pick the vision model on the fast path; they do not by themselves need tools.

/// The two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// One streaming call to platform inference.
    Fast,
    /// A CLI agent in a sandbox.
    Agent,
}

impl Path {
    /// `fast` or `agent`, as in `metadata.janus_path`.
    pub fn parse(value: &str) -> Option<Path> {
        match value.trim().to_ascii_lowercase().as_str() {
            "fast" => Some(Path::Fast),
            "agent" => Some(Path::Agent),
            _ => None,
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Fast => "fast",
            Path::Agent => "agent",
        }
    }
}

/// What the router looks at.
#[derive(Debug, Clone, Default)]
pub struct RouteInput<'a> {
    /// The last user message's text.
    pub text: &'a str,
    /// Estimated tokens of the whole conversation.
    pub prompt_tokens: u64,
    /// The input carries images.
    pub has_images: bool,
    /// An explicit choice (`metadata.janus_path`, or an agent named by the request).
    pub forced: Option<Path>,
}

/// The decision and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path.
    pub path: Path,
    /// A few words on why, shown to the client as reasoning.
    pub reason: &'static str,
    /// Use the vision model (fast path with images).
    pub vision: bool,
}

/// Phrases that need tools even inside a question: fresh or external information, or an
/// explicit request for a produced file.
const STRONG: &[(&str, &str)] = &[
    ("download", "it downloads something"),
    ("search the web", "it needs a web search"),
    ("search online", "it needs a web search"),
    ("look up", "it needs a web search"),
    ("browse", "it needs a browser"),
    ("scrape", "it reads web pages"),
    ("fetch", "it fetches something"),
    ("latest", "it needs current information"),
    ("current price", "it needs current information"),
    ("today s news", "it needs current information"),
    ("this week", "it needs current information"),
    ("news about", "it needs current information"),
    ("research", "it is multi-step research"),
    ("find sources", "it is multi-step research"),
    ("cite sources", "it is multi-step research"),
    ("make me a file", "it asks for a file"),
    ("as a file", "it asks for a file"),
    ("file named", "it asks for a file"),
    ("save it", "it asks for a file"),
    ("save the", "it asks for a file"),
    ("save as", "it asks for a file"),
    ("attach", "it asks for a file"),
    ("run this", "it runs code"),
    ("run it", "it runs code"),
    ("execute this", "it runs code"),
    ("and run", "it runs code"),
    ("run the tests", "it runs tests"),
    ("plot", "it makes a chart"),
    ("chart", "it makes a chart"),
    ("histogram", "it makes a chart"),
    ("generate an image", "it produces an image"),
    ("generate a picture", "it produces an image"),
    ("create an image", "it produces an image"),
    ("draw", "it produces an image"),
    ("render", "it produces an image"),
];

/// Words that ask for tool work when the message is an instruction, not a question about
/// the word ("run the benchmark" vs "how do I run a benchmark?").
const ACTION: &[(&str, &str)] = &[
    ("run", "it runs code"),
    ("execute", "it runs code"),
    ("test", "it tests code"),
    ("compile", "it compiles code"),
    ("install", "it installs software"),
    ("benchmark", "it measures code"),
    ("debug", "it debugs code"),
    ("csv", "it makes or reads a data file"),
    ("xlsx", "it makes or reads a data file"),
    ("spreadsheet", "it makes or reads a data file"),
    ("excel", "it makes or reads a data file"),
    ("pdf", "it makes or converts a document"),
    ("docx", "it makes or converts a document"),
    ("zip", "it makes an archive"),
    ("png", "it produces an image"),
    ("jpg", "it produces an image"),
    ("svg", "it produces an image"),
    ("image", "it produces an image"),
    ("picture", "it produces an image"),
    ("logo", "it produces an image"),
    ("diagram", "it produces an image"),
    ("file", "it makes or converts a file"),
    ("files", "it makes or converts files"),
    ("convert", "it converts a file"),
    ("analyze", "it analyses data"),
    ("analyse", "it analyses data"),
    ("dataset", "it analyses data"),
    ("statistics", "it analyses data"),
    ("visualize", "it makes a chart"),
    ("visualise", "it makes a chart"),
    ("script", "it writes and runs a script"),
    ("compare", "it is multi-step research"),
    ("investigate", "it is multi-step research"),
    ("report", "it is multi-step research"),
];

/// Openings of a question about something, answered from knowledge.
const QUESTION_OPENINGS: &[&str] = &[
    "what is",
    "what s",
    "what are",
    "what does",
    "what do",
    "what was",
    "what were",
    "why",
    "how does",
    "how do",
    "how is",
    "how are",
    "how can",
    "how should",
    "how would",
    "when",
    "where",
    "who",
    "which",
    "define",
    "explain",
    "describe",
    "tell me",
    "can you explain",
    "could you explain",
    "is it",
    "is there",
    "are there",
    "should i",
    "do you",
    "what",
];

/// Lower-case words separated by single spaces, padded with a space on each side, so
/// phrases match on word boundaries.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if !space {
        out.push(' ');
    }
    out
}

fn find(words: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .find(|(phrase, _)| words.contains(&format!(" {phrase} ")))
        .map(|(_, reason)| *reason)
}

fn has_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

/// Decides the path of one request.
pub fn route(input: &RouteInput<'_>, long_prompt_tokens: u64) -> Route {
    let decide = |path: Path, reason: &'static str| Route {
        path,
        reason,
        vision: path == Path::Fast && input.has_images,
    };
    if let Some(path) = input.forced {
        return decide(path, "the request chose it");
    }
    if input.prompt_tokens > long_prompt_tokens {
        return decide(Path::Agent, "the prompt is long");
    }
    if has_url(input.text) {
        return decide(Path::Agent, "it reads a URL");
    }
    let words = normalize(input.text);
    if let Some(reason) = find(&words, STRONG) {
        return decide(Path::Agent, reason);
    }
    let question = QUESTION_OPENINGS
        .iter()
        .any(|opening| words.starts_with(&format!(" {opening} ")))
        || input.text.trim_end().ends_with('?');
    if !question {
        if let Some(reason) = find(&words, ACTION) {
            return decide(Path::Agent, reason);
        }
    }
    if input.has_images {
        return decide(Path::Fast, "it is about the images, no tools needed");
    }
    decide(Path::Fast, "a chat answer needs no tools")
}

/// A rough token estimate: four characters per token.
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}
