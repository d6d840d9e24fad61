//! Scoring: piecewise targets for speed, cost and streaming, the quality rules per category
//! (text, citations, tool calls), and the composite weights. Everything here is pure: the
//! parts that need I/O (code in a sandbox, artifacts, the judge) hand their findings in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::measure::{ToolCall, UsageFigures};
use crate::suite::Expected;

/// The piecewise targets: at or under a target scores 1, then the score falls (see
/// [`piecewise`]). Defaults are the reference runner's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Total latency, seconds (8).
    pub latency_seconds: f64,
    /// Time to first token, seconds (2).
    pub ttft_seconds: f64,
    /// Tokens per second at which speed is full (10).
    pub tokens_per_second: f64,
    /// Tokens per task (1,000).
    pub tokens: f64,
    /// USD per task (0.01).
    pub cost_usd: f64,
    /// Sandbox seconds per task (30).
    pub sandbox_seconds: f64,
    /// Largest gap between stream lines, seconds (2).
    pub max_gap_seconds: f64,
}

impl Default for Targets {
    fn default() -> Targets {
        Targets {
            latency_seconds: 8.0,
            ttft_seconds: 2.0,
            tokens_per_second: 10.0,
            tokens: 1000.0,
            cost_usd: 0.01,
            sandbox_seconds: 30.0,
            max_gap_seconds: 2.0,
        }
    }
}

/// Composite weights in percent; they sum to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Quality (45).
    pub quality: u32,
    /// Speed (20).
    pub speed: u32,
    /// Cost (15).
    pub cost: u32,
    /// Streaming continuity (10).
    pub streaming: u32,
    /// Multimodal (10).
    pub multimodal: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            quality: 45,
            speed: 20,
            cost: 15,
            streaming: 10,
            multimodal: 10,
        }
    }
}

/// Bad `--weights`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--weights {given:?}: {reason}")]
pub struct WeightsError {
    /// What was given.
    pub given: String,
    /// What is wrong.
    pub reason: String,
}

impl Weights {
    /// Parses `q,s,c,st,m` (five whole percentages summing to 100).
    pub fn parse(text: &str) -> Result<Weights, WeightsError> {
        let error = |reason: String| WeightsError {
            given: text.to_owned(),
            reason,
        };
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() != 5 {
            return Err(error(format!(
                "expected 5 comma-separated weights (quality,speed,cost,streaming,multimodal), got {}",
                parts.len()
            )));
        }
        let mut values = [0u32; 5];
        for (slot, part) in values.iter_mut().zip(&parts) {
            *slot = part
                .parse()
                .map_err(|_| error(format!("'{part}' is not a whole number")))?;
        }
        let weights = Weights {
            quality: values[0],
            speed: values[1],
            cost: values[2],
            streaming: values[3],
            multimodal: values[4],
        };
        weights.check().map_err(error)?;
        Ok(weights)
    }

    /// The weights must sum to 100.
    pub fn check(&self) -> Result<(), String> {
        let sum = self.quality + self.speed + self.cost + self.streaming + self.multimodal;
        if sum != 100 {
            return Err(format!("the weights must sum to 100, they sum to {sum}"));
        }
        Ok(())
    }

    /// The composite (0–100) of component scores (each 0–1).
    pub fn composite(&self, s: &Components) -> f64 {
        // The weights sum to 100, so this is already on the 0–100 scale.
        f64::from(self.quality) * s.quality
            + f64::from(self.speed) * s.speed
            + f64::from(self.cost) * s.cost
            + f64::from(self.streaming) * s.streaming
            + f64::from(self.multimodal) * s.multimodal
    }
}

/// The five component scores of a task, each 0–1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Components {
    /// Quality.
    pub quality: f64,
    /// Speed.
    pub speed: f64,
    /// Cost.
    pub cost: f64,
    /// Streaming continuity.
    pub streaming: f64,
    /// Multimodal.
    pub multimodal: f64,
}

/// At or under `target` scores 1; up to twice the target it falls linearly to 0.5; beyond,
/// it loses `tail` per target's worth more, down to 0 (the reference's curve).
pub fn piecewise(value: f64, target: f64, tail: f64) -> f64 {
    if target <= 0.0 || value <= target {
        return 1.0;
    }
    if value <= 2.0 * target {
        return 1.0 - 0.5 * (value - target) / target;
    }
    (0.5 - tail * (value - 2.0 * target) / target).max(0.0)
}

/// Speed: the mean of the latency, TTFT and tokens-per-second scores that could be measured
/// (TTFT is missing when nothing was ever streamed; tokens/s when no tokens were counted).
pub fn speed(
    targets: &Targets,
    latency: Duration,
    ttft: Option<Duration>,
    tps: Option<f64>,
) -> f64 {
    let mut scores = vec![piecewise(
        latency.as_secs_f64(),
        targets.latency_seconds,
        0.1,
    )];
    if let Some(ttft) = ttft {
        scores.push(piecewise(ttft.as_secs_f64(), targets.ttft_seconds, 0.1));
    }
    if let Some(tps) = tps {
        scores.push(if targets.tokens_per_second <= 0.0 {
            1.0
        } else {
            (tps / targets.tokens_per_second).clamp(0.0, 1.0)
        });
    }
    mean(&scores)
}

/// Cost: tokens, USD and sandbox seconds weighted 0.5 / 0.3 / 0.2 over those reported; 0.5
/// (neutral) when nothing was reported.
pub fn cost(targets: &Targets, usage: &UsageFigures) -> f64 {
    let mut weighted = Vec::new();
    if let Some(tokens) = usage.total_tokens {
        weighted.push((piecewise(tokens as f64, targets.tokens, 0.1), 0.5));
    }
    if let Some(usd) = usage.cost_usd {
        weighted.push((piecewise(usd, targets.cost_usd, 0.1), 0.3));
    }
    if let Some(seconds) = usage.sandbox_seconds {
        weighted.push((piecewise(seconds, targets.sandbox_seconds, 0.1), 0.2));
    }
    if weighted.is_empty() {
        return 0.5;
    }
    let total: f64 = weighted.iter().map(|(_, w)| w).sum();
    weighted.iter().map(|(s, w)| s * w).sum::<f64>() / total
}

/// Streaming continuity: TTFT 0.5, max gap 0.4, chunk count 0.1 (the reference's generic
/// rule). No first token at all scores the TTFT part 0.
pub fn streaming(targets: &Targets, ttft: Option<Duration>, max_gap: Duration, chunks: u32) -> f64 {
    let ttft_score = ttft.map_or(0.0, |t| {
        piecewise(t.as_secs_f64(), targets.ttft_seconds, 0.2)
    });
    let gap_score = piecewise(max_gap.as_secs_f64(), targets.max_gap_seconds, 0.2);
    let chunk_score = match chunks {
        10.. => 1.0,
        5..=9 => 0.8,
        2..=4 => 0.5,
        _ => 0.2,
    };
    0.5 * ttft_score + 0.4 * gap_score + 0.1 * chunk_score
}

/// A quality verdict: the score and the parts it was averaged from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// 0–1.
    pub score: f64,
    /// Named parts (`contains`, `min_length`, `citations`, `tests`, …), each 0–1.
    pub components: BTreeMap<String, f64>,
    /// The `max_latency_ms` factor (limit over latency, at most 1) the mean is scaled by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_factor: Option<f64>,
    /// The `min_length` factor (length over minimum, at most 1) the mean is scaled by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_factor: Option<f64>,
    /// Why, for people reading the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Evaluation {
    fn from_components(components: BTreeMap<String, f64>, empty_score: f64) -> Evaluation {
        let score = if components.is_empty() {
            empty_score
        } else {
            mean(&components.values().copied().collect::<Vec<_>>())
        };
        Evaluation {
            score,
            components,
            latency_factor: None,
            length_factor: None,
            notes: Vec::new(),
        }
    }

    /// Adds a component and re-averages.
    pub fn add(&mut self, name: &str, value: f64) {
        self.components
            .insert(name.to_owned(), value.clamp(0.0, 1.0));
        self.score = mean(&self.components.values().copied().collect::<Vec<_>>());
    }

    /// A failed verdict with a note.
    pub fn zero(note: impl Into<String>) -> Evaluation {
        Evaluation {
            score: 0.0,
            components: BTreeMap::new(),
            latency_factor: None,
            length_factor: None,
            notes: vec![note.into()],
        }
    }
}

fn fraction_found(text_lower: &str, needles: &[String]) -> f64 {
    if needles.is_empty() {
        return 1.0;
    }
    let found = needles
        .iter()
        .filter(|n| text_lower.contains(&n.to_lowercase()))
        .count();
    found as f64 / needles.len() as f64
}

/// Text rules: `contains` and `must_cover` (fractions found, case-insensitive) are
/// averaged; `min_length` (length over minimum) and `max_latency_ms` (limit over latency)
/// scale that mean, each capped at 1. The reference averaged length and latency in as
/// parts of their own, which gave a long or fast wrong answer half marks; Janus does not.
/// An empty answer scores 0; an answer with no rule to meet scores 1.
pub fn text_quality(answer: &str, expected: &Expected, latency: Duration) -> Evaluation {
    if answer.trim().is_empty() {
        return Evaluation::zero("empty answer");
    }
    let lower = answer.to_lowercase();
    let mut components = BTreeMap::new();
    if !expected.contains.is_empty() {
        components.insert(
            "contains".to_owned(),
            fraction_found(&lower, &expected.contains),
        );
    }
    if !expected.must_cover.is_empty() {
        components.insert(
            "must_cover".to_owned(),
            fraction_found(&lower, &expected.must_cover),
        );
    }
    let mut evaluation = Evaluation::from_components(components, 1.0);
    if let Some(min) = expected.min_length.filter(|m| *m > 0.0) {
        let factor = (answer.chars().count() as f64 / min).min(1.0);
        evaluation.length_factor = Some(factor);
        evaluation.score *= factor;
    }
    if let Some(max_ms) = expected.max_latency_ms.filter(|m| *m > 0.0) {
        let ms = latency.as_secs_f64() * 1000.0;
        let factor = if ms <= 0.0 {
            1.0
        } else {
            (max_ms / ms).min(1.0)
        };
        evaluation.latency_factor = Some(factor);
        evaluation.score *= factor;
    }
    evaluation
}

/// Citations in an answer: URLs plus bracketed numbers like `[1]`.
pub fn count_citations(answer: &str) -> usize {
    let urls = answer
        .match_indices("http")
        .filter(|(i, _)| {
            let rest = &answer[*i..];
            rest.starts_with("http://") || rest.starts_with("https://")
        })
        .count();
    let bytes = answer.as_bytes();
    let mut brackets = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b']' {
                brackets += 1;
                i = j;
            }
        }
        i += 1;
    }
    urls + brackets
}

/// Research: the text rules plus a `citations` part (citations over `min_sources`, 1 when
/// citations are required and none given as a minimum; 0 when required and absent).
pub fn research_quality(answer: &str, expected: &Expected, latency: Duration) -> Evaluation {
    let mut evaluation = text_quality(answer, expected, latency);
    if answer.trim().is_empty() {
        return evaluation;
    }
    let min_sources = match expected.min_sources.filter(|m| *m > 0.0) {
        Some(m) => m,
        None if expected.requires_citations => 1.0,
        None => return evaluation,
    };
    let citations = count_citations(answer) as f64;
    evaluation.add("citations", (citations / min_sources).min(1.0));
    evaluation
}

fn loosely_equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) => a.to_lowercase().contains(&e.to_lowercase()),
        (Value::Number(e), Value::Number(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() < 1e-6,
            _ => e == a,
        },
        (Value::String(_), _) | (_, Value::String(_)) => {
            let e = value_text(expected).to_lowercase();
            let a = value_text(actual).to_lowercase();
            a.contains(&e) || e.contains(&a)
        }
        _ => expected == actual,
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Agentic tool use: with `expected_call`, the first call must name its function (else 0)
/// and carry its arguments (missing → 0.3, wrong → 0.6, right → 1, the reference's scale);
/// with only `tools_expected`, the first call must be one of them. `None` when the item
/// expects no tool call.
pub fn tool_quality(
    expected: &Expected,
    expected_call: Option<&Value>,
    calls: &[ToolCall],
) -> Option<Evaluation> {
    let wants_call = expected_call.is_some()
        || !expected.tools_expected.is_empty()
        || expected.requires_tool_use;
    if !wants_call {
        return None;
    }
    let mut evaluation = Evaluation::default();
    let Some(first) = calls.first() else {
        evaluation.add("tool_call", 0.0);
        evaluation.notes.push("no tool call was made".to_owned());
        return Some(evaluation);
    };
    if let Some(call) = expected_call {
        let function = call.get("function").and_then(Value::as_str).unwrap_or("");
        if first.function != function {
            evaluation.add("tool_call", 0.0);
            evaluation
                .notes
                .push(format!("called {}, expected {function}", first.function));
            return Some(evaluation);
        }
        let empty = serde_json::Map::new();
        let wanted = call
            .get("arguments")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let given = first.arguments.as_object().unwrap_or(&empty);
        let missing: Vec<&String> = wanted.keys().filter(|k| !given.contains_key(*k)).collect();
        let wrong: Vec<&String> = wanted
            .iter()
            .filter(|(k, v)| given.get(*k).is_some_and(|g| !loosely_equal(v, g)))
            .map(|(k, _)| k)
            .collect();
        let score = if !missing.is_empty() {
            evaluation
                .notes
                .push(format!("missing arguments: {missing:?}"));
            0.3
        } else if !wrong.is_empty() {
            evaluation
                .notes
                .push(format!("wrong argument values: {wrong:?}"));
            0.6
        } else {
            1.0
        };
        evaluation.add("tool_call", score);
    } else if !expected.tools_expected.is_empty() {
        let right = expected.tools_expected.contains(&first.function);
        evaluation.add("tool_call", if right { 1.0 } else { 0.0 });
        if !right {
            evaluation.notes.push(format!(
                "called {}, expected one of {:?}",
                first.function, expected.tools_expected
            ));
        }
    } else {
        evaluation.add("tool_call", 1.0);
    }
    Some(evaluation)
}

/// The judge's score blended into a heuristic verdict: 0.7 judge + 0.3 heuristic, the
/// reference's research blend, for every category the judge grades.
pub fn blend_judge(heuristic: &Evaluation, judge: f64) -> Evaluation {
    let mut blended = heuristic.clone();
    blended.components.insert("judge".to_owned(), judge);
    blended.score = 0.7 * judge.clamp(0.0, 1.0) + 0.3 * heuristic.score;
    blended
}

/// The arithmetic mean (0 for none).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn piecewise_follows_the_reference_curve() {
        assert_eq!(piecewise(8.0, 8.0, 0.1), 1.0);
        assert_eq!(piecewise(12.0, 8.0, 0.1), 0.75);
        assert_eq!(piecewise(16.0, 8.0, 0.1), 0.5);
        assert!((piecewise(24.0, 8.0, 0.1) - 0.4).abs() < 1e-12);
        assert_eq!(piecewise(1000.0, 8.0, 0.1), 0.0);
    }

    #[test]
    fn weights_must_sum_to_100() {
        assert_eq!(
            Weights::parse("45,20,15,10,10").unwrap(),
            Weights::default()
        );
        let e = Weights::parse("50,20,15,10,10").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--weights \"50,20,15,10,10\": the weights must sum to 100, they sum to 105"
        );
        assert!(Weights::parse("1,2,3").is_err());
        assert!(Weights::parse("a,20,15,10,10").is_err());
    }

    #[test]
    fn citations_count_urls_and_brackets() {
        assert_eq!(
            count_citations("see [1] and [2], http://127.0.0.1/a and [x]"),
            3
        );
        assert_eq!(count_citations("no sources"), 0);
    }

    #[test]
    fn text_rules_average() {
        let expected = Expected {
            contains: vec!["Paris".into(), "France".into()],
            min_length: Some(20.0),
            ..Expected::default()
        };
        let e = text_quality("paris", &expected, Duration::from_secs(1));
        // contains 1/2, scaled by the length 5/20
        assert!((e.score - 0.5 * 0.25).abs() < 1e-12, "{e:?}");
        // Long but wrong is still wrong.
        let e = text_quality(
            "the capital is Lyon, I believe",
            &expected,
            Duration::from_secs(1),
        );
        assert_eq!(e.score, 0.0, "{e:?}");
    }
}
