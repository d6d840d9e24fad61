//! Runs against the echo competitor and scripted competitors.

use std::collections::BTreeMap;
use std::time::Duration;

use echo_competitor::Echo;
use janus_bench::{CostSource, Report, Suite, Weights};
use janus_competitor_sdk::janus_core::{CompetitorEvent, FunctionCallDelta, ToolCallDelta};
use janus_competitor_sdk::{
    async_trait, publish_artifact, ChatCompletionRequest, Competitor, CompetitorError, EventWriter,
    RequestContext, Usage,
};
use serde_json::{json, Value};

use crate::{config, run, stack, suite};

/// The report without what timing changes: for comparing two runs.
fn timeless(report: &Report) -> Value {
    let mut value = serde_json::to_value(report).unwrap();
    let object = value.as_object_mut().unwrap();
    for key in [
        "run_id",
        "started_at",
        "completed_at",
        "avg_latency_seconds",
        "p50_latency_seconds",
        "avg_ttft_seconds",
        "max_gap_seconds",
    ] {
        object.remove(key);
    }
    for category in object["categories"].as_object_mut().unwrap().values_mut() {
        let c = category.as_object_mut().unwrap();
        c.remove("avg_latency_seconds");
        c.remove("avg_ttft_seconds");
    }
    for result in object["results"].as_array_mut().unwrap() {
        let r = result.as_object_mut().unwrap();
        for key in ["latency_seconds", "streaming_metrics", "tokens_per_second"] {
            r.remove(key);
        }
    }
    value
}

fn rounded(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[tokio::test]
async fn echo_scores_are_pinned_and_the_same_seed_gives_the_same_report() {
    let stack = stack(Echo::new(Duration::ZERO)).await;
    let suite = Suite::load("public/dev").unwrap();
    let mut cfg = config(&stack.gateway, suite);
    cfg.subset_percent = 50;
    let first = run(cfg.clone()).await;
    let second = run(cfg).await;
    assert_eq!(timeless(&first), timeless(&second));
    assert!(!first.partial);
    assert_eq!(first.total_tasks, 25); // half of each category's 10, rounded up
    assert_eq!(first.errored_tasks, 0, "{}", first.summary_table());
    // Echo repeats the question, which never holds the answer: full marks for speed, cost
    // and streaming, none for quality or the image facts.
    let pinned = [
        ("composite", first.composite_score),
        ("quality", first.quality_score),
        ("speed", first.speed_score),
        ("cost", first.cost_score),
        ("streaming", first.streaming_score),
        ("multimodal", first.multimodal_score),
    ]
    .map(|(n, s)| (n, rounded(s)));
    assert_eq!(pinned, PINNED, "{}", first.summary_table());
    assert_eq!(
        first.passed_tasks,
        PINNED_PASSED,
        "{}",
        first.summary_table()
    );
    // Echo reports its own usage; no platform metering is involved.
    assert_eq!(
        first.cost_sources,
        BTreeMap::from([("competitor".to_owned(), 25)])
    );
}

const PINNED: [(&str, f64); 6] = [
    ("composite", 45.0),
    ("quality", 0.0),
    ("speed", 100.0),
    ("cost", 100.0),
    ("streaming", 100.0),
    ("multimodal", 0.0),
];
const PINNED_PASSED: usize = 0;

/// Answers from a table keyed by a phrase of the question; everything else gets "no idea".
#[derive(Clone)]
struct Scripted {
    answers: Vec<(&'static str, Answer)>,
}

#[derive(Clone)]
enum Answer {
    Text(&'static str),
    Call(&'static str, Value),
    File(&'static str, &'static str, &'static str),
    /// Text, then the connection dies before [DONE].
    Crash,
    /// Usage with a platform measurement, as a gateway with platform metering adds it.
    Metered(&'static str),
}

#[async_trait]
impl Competitor for Scripted {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let question = request.last_user_text().unwrap_or_default();
        let answer = self
            .answers
            .iter()
            .find(|(k, _)| question.contains(k))
            .map(|(_, a)| a.clone());
        let mut usage = Usage::new(10, 20);
        match answer {
            None => out.content("no idea").await?,
            Some(Answer::Text(text)) => out.content(text).await?,
            Some(Answer::Call(name, args)) => {
                out.send(CompetitorEvent::ToolCall(ToolCallDelta {
                    index: 0,
                    id: Some("call_1".to_owned()),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(name.to_owned()),
                        arguments: Some(args.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }))
                .await?;
                out.finish("tool_calls").await?;
            }
            Some(Answer::File(name, mime, body)) => {
                out.content(&format!("Here is {name}.")).await?;
                out.artifact(publish_artifact(body.as_bytes(), name, mime).await?)
                    .await?;
            }
            Some(Answer::Crash) => {
                out.content("partial").await?;
                return Err(CompetitorError::Internal("crashed mid-answer".to_owned()));
            }
            Some(Answer::Metered(text)) => {
                out.content(text).await?;
                usage.extra.insert("platform".to_owned(), json!({"calls": 2, "prompt_tokens": 5000, "completion_tokens": 1000, "cost_usd": 0.05, "sandbox_seconds": 0.0, "by_service": {"inference": 2}}));
            }
        }
        out.usage(usage).await?;
        Ok(())
    }
}

fn chat(id: &str, question: &str, contains: &[&str]) -> String {
    json!({"id": id, "category": "chat", "input": {"messages": [{"role": "user", "content": question}]}, "expected": {"type": "text", "contains": contains}}).to_string()
}

#[tokio::test]
async fn a_scripted_competitor_gets_exactly_the_expected_quality() {
    let competitor = Scripted {
        answers: vec![
            ("capital of France", Answer::Text("It is Paris.")),
            ("12 * 12", Answer::Text("144")),
            (
                "Who founded",
                Answer::Text("Bill Gates and Paul Allen founded it [1][2]."),
            ),
            (
                "weather in Madrid",
                Answer::Call("get_weather", json!({"location": "Madrid"})),
            ),
            (
                "weather in Oslo",
                Answer::Call("search", json!({"query": "Oslo"})),
            ),
            (
                "notes.txt",
                Answer::File("notes.txt", "text/plain", "alpha beta"),
            ),
        ],
    };
    let stack = stack(competitor).await;
    let lines = [
        chat("c1", "What is the capital of France?", &["Paris"]),
        chat("c2", "What is 12 * 12?", &["144"]),
        chat("c3", "What is the capital of Peru?", &["Lima"]),
        chat("c4", "Name two primes.", &["2", "3"]),
        json!({"id": "r1", "category": "research", "input": {"messages": [{"role": "user", "content": "Who founded Microsoft?"}]}, "expected": {"contains": ["Bill Gates", "Paul Allen"], "requires_citations": true, "min_sources": 4}}).to_string(),
        json!({"id": "a1", "category": "agentic", "input": {"messages": [{"role": "user", "content": "Get the weather in Madrid."}]}, "available_tools": [], "expected_call": {"function": "get_weather", "arguments": {"location": "Madrid"}}, "expected": {"requires_tool_use": true}}).to_string(),
        json!({"id": "a2", "category": "agentic", "input": {"messages": [{"role": "user", "content": "Get the weather in Oslo."}]}, "expected_call": {"function": "get_weather", "arguments": {"location": "Oslo"}}, "expected": {}}).to_string(),
        json!({"id": "a3", "category": "agentic", "input": {"messages": [{"role": "user", "content": "Create notes.txt with alpha."}]}, "expected": {"artifacts": [{"name": "notes.txt", "mime_type": "text/plain", "contains": ["alpha"]}]}}).to_string(),
        json!({"id": "a4", "category": "agentic", "input": {"messages": [{"role": "user", "content": "Create notes.txt with gamma."}]}, "expected": {"artifacts": [{"name": "notes.txt", "contains": ["gamma"]}]}}).to_string(),
    ];
    let report = run(config(&stack.gateway, suite(&lines.join("\n")))).await;
    let quality: BTreeMap<&str, f64> = report
        .results
        .iter()
        .map(|r| (r.task_id.as_str(), r.quality_score))
        .collect();
    let expected = BTreeMap::from([
        ("c1", 1.0),
        ("c2", 1.0),
        ("c3", 0.0),
        ("c4", 0.0),
        // contains 1, citations 2 of 4
        ("r1", 0.75),
        ("a1", 1.0),
        ("a2", 0.0), // the wrong function
        ("a3", 1.0),
        ("a4", 0.0), // the file lacks "gamma"
    ]);
    assert_eq!(quality, expected, "{}", report.summary_table());
    assert_eq!(report.passed_tasks, 5);
    assert_eq!(report.errored_tasks, 0);
    assert!((report.quality_score - 4.75 / 9.0 * 100.0).abs() < 1e-9);
    let a4 = report.results.iter().find(|r| r.task_id == "a4").unwrap();
    assert!(
        a4.evaluation
            .notes
            .iter()
            .any(|n| n.contains("does not contain \"gamma\"")),
        "{:?}",
        a4.evaluation
    );
    assert_eq!(report.categories["chat"].passed_tasks, 2);
    assert_eq!(report.categories["agentic"].total_tasks, 4);
}

#[tokio::test]
async fn a_crash_mid_run_scores_zero_and_the_run_goes_on() {
    let competitor = Scripted {
        answers: vec![
            ("crash", Answer::Crash),
            ("metered", Answer::Metered("ok fine")),
        ],
    };
    let stack = stack(competitor).await;
    let lines = [
        chat("t1", "please crash now", &["x"]),
        chat("t2", "a metered question", &["fine"]),
        chat("t3", "anything", &["idea"]),
    ];
    let report = run(config(&stack.gateway, suite(&lines.join("\n")))).await;
    let t1 = &report.results[0];
    assert_eq!(t1.task_id, "t1");
    assert!(
        t1.error.as_deref().unwrap().contains("crashed mid-answer"),
        "{:?}",
        t1.error
    );
    assert_eq!(
        (
            t1.quality_score,
            t1.speed_score,
            t1.cost_score,
            t1.streaming_score,
            t1.composite_score
        ),
        (0.0, 0.0, 0.0, 0.0, 0.0)
    );
    // The platform's measurement wins over the competitor's own usage.
    let t2 = &report.results[1];
    assert_eq!(t2.cost_source, CostSource::Platform);
    assert_eq!((t2.total_tokens, t2.cost_usd), (Some(6000), Some(0.05)));
    // tokens 6000 → 0.1 (0.5 weight); usd 0.05 → 0.2 (0.3); sandbox 0 → 1 (0.2)
    assert!(
        (t2.cost_score - (0.5 * 0.1 + 0.3 * 0.2 + 0.2 * 1.0)).abs() < 1e-9,
        "{}",
        t2.cost_score
    );
    let t3 = &report.results[2];
    assert_eq!(
        (t3.cost_source, t3.quality_score, t3.success),
        (CostSource::Competitor, 1.0, true)
    );
    assert_eq!(report.errored_tasks, 1);
    assert_eq!(
        report.cost_sources,
        BTreeMap::from([
            ("competitor".to_owned(), 1),
            ("none".to_owned(), 1),
            ("platform".to_owned(), 1)
        ])
    );
}

#[tokio::test]
async fn a_file_in_the_reference_format_runs_unchanged() {
    // Lines in the reference runner's own format, fields it has and Janus ignores included.
    let reference = concat!(
        r#"{"id": "chat_dev_002", "category": "chat", "input": {"messages": [{"role": "user", "content": "What is 12 * 12?"}]}, "expected": {"type": "text", "contains": ["144"], "max_latency_ms": 2000}}"#,
        "\n",
        r#"{"id": "research_dev_002", "category": "research", "input": {"messages": [{"role": "user", "content": "Who founded Microsoft? Provide citations."}]}, "expected": {"type": "text", "contains": ["Bill Gates", "Paul Allen"], "requires_citations": true, "min_sources": 2}}"#,
        "\n",
        r#"{"id": "code_dev_001", "category": "code", "input": {"messages": [{"role": "user", "content": "Write a Python function to_fahrenheit(celsius) that converts Celsius to Fahrenheit."}]}, "expected": {"type": "code", "language": "python", "function_name": "to_fahrenheit", "test_cases": [{"input": [0], "output": 32}, {"input": [100], "output": 212}], "must_execute": true}}"#,
        "\n",
        r#"{"id": "multimodal_dev_001", "category": "multimodal", "input": {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is the image showing in terms of color?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="}}]}]}, "expected": {"type": "text", "contains": ["red"]}}"#,
        "\n",
        r#"{"id": "agentic_dev_002", "category": "agentic", "input": {"messages": [{"role": "user", "content": "Get the weather in Madrid."}]}, "available_tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get current weather for a location", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}], "tool_use_task_type": "function_calling", "expected_call": {"function": "get_weather", "arguments": {"location": "Madrid"}}, "expected": {"type": "text", "requires_tool_use": true, "tools_expected": ["get_weather"], "min_length": 40}}"#,
        "\n",
        r#"{"id": "deep_1", "category": "deep_research", "input": {"messages": [{"role": "user", "content": "Summarise X."}]}, "expected": {"type": "text", "must_cover": ["x"]}}"#,
        "\n",
    );
    let competitor = Scripted {
        answers: vec![
            ("12 * 12", Answer::Text("144")),
            (
                "Microsoft",
                Answer::Text("Bill Gates and Paul Allen, see https://127.0.0.1/a and [2]."),
            ),
            ("color", Answer::Text("The pixel is red.")),
            (
                "Madrid",
                Answer::Call(
                    "get_weather",
                    json!({"location": "Madrid", "units": "celsius"}),
                ),
            ),
            ("Summarise", Answer::Text("About x.")),
        ],
    };
    let stack = stack(competitor).await;
    let report = run(config(&stack.gateway, suite(reference))).await;
    assert_eq!(report.total_tasks, 6);
    let by_id: BTreeMap<&str, &janus_bench::TaskResult> = report
        .results
        .iter()
        .map(|r| (r.task_id.as_str(), r))
        .collect();
    for id in [
        "chat_dev_002",
        "research_dev_002",
        "multimodal_dev_001",
        "agentic_dev_002",
        "deep_1",
    ] {
        assert_eq!(
            by_id[id].quality_score, 1.0,
            "{id}: {:?}",
            by_id[id].evaluation
        );
    }
    assert_eq!(by_id["deep_1"].category, janus_bench::Category::Research);
    assert_eq!(by_id["multimodal_dev_001"].multimodal_score, 1.0);
    // No sandbox was given: the code task cannot be scored, says so, and the run goes on.
    let code = by_id["code_dev_001"];
    assert_eq!(code.error, None, "{:?}", code.evaluation);
    assert_eq!(code.quality_score, 0.0);
    assert!(
        code.evaluation.notes[0].contains("no code block"),
        "{:?}",
        code.evaluation
    );
    // The reference's field names are all there.
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    for field in [
        "composite_score",
        "quality_score",
        "speed_score",
        "cost_score",
        "streaming_score",
        "multimodal_score",
        "total_tasks",
        "passed_tasks",
        "failed_tasks",
        "avg_latency_seconds",
        "p50_latency_seconds",
        "avg_ttft_seconds",
        "max_gap_seconds",
        "total_tokens",
        "total_cost_usd",
        "results",
        "weights",
        "categories",
        "seed",
        "suite_hash",
        "target_url",
    ] {
        assert!(json.get(field).is_some(), "{field} missing");
    }
    let back = Report::from_json(&report.to_json()).unwrap();
    assert_eq!(back.results.len(), report.results.len());
    assert!((back.composite_score - report.composite_score).abs() < 1e-9);
    assert_eq!(back.suite_hash, report.suite_hash);
}

#[tokio::test]
async fn weights_change_the_composite_and_cancel_writes_a_partial_report() {
    let stack = stack(Scripted { answers: vec![] }).await;
    let lines: Vec<String> = (0..6)
        .map(|i| chat(&format!("t{i}"), "anything", &["idea"]))
        .collect();
    let mut cfg = config(&stack.gateway, suite(&lines.join("\n")));
    cfg.weights = Weights::parse("100,0,0,0,0").unwrap();
    let report = run(cfg.clone()).await;
    assert_eq!(report.composite_score, 100.0);
    assert_eq!(report.weights["quality"], 100);
    // Cancelled before anything finished: a partial report with what was done (nothing).
    cfg.concurrency = 1;
    let partial = janus_bench::run(cfg, &mut janus_bench::NoProgress, std::future::ready(())).await;
    assert!(partial.partial);
    assert_eq!((partial.planned_tasks, partial.total_tasks), (6, 0));
    assert!(partial.summary_table().contains("PARTIAL"));
}

/// A judge double: an OpenAI-compatible endpoint that grades every answer 8 of 10.
struct Grader;

#[async_trait]
impl Competitor for Grader {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let prompt = request.last_user_text().unwrap_or_default();
        // The judge sees the question and the answer.
        let score = if prompt.contains("capital of France") && prompt.contains("It is Paris.") {
            8
        } else {
            0
        };
        out.content(&format!("{{\"score\": {score}, \"reason\": \"fine\"}}"))
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn the_judge_is_blended_into_quality() {
    let target = stack(Scripted {
        answers: vec![("capital of France", Answer::Text("It is Paris."))],
    })
    .await;
    let judge = stack(Grader).await;
    let mut cfg = config(
        &target.gateway,
        suite(&chat(
            "j1",
            "What is the capital of France?",
            &["Paris", "Seine"],
        )),
    );
    cfg.judge = Some(janus_bench::Judge {
        url: format!("{}/v1", judge.gateway),
        model: "c".to_owned(),
        api_key: None,
        timeout: Duration::from_secs(10),
    });
    let report = run(cfg).await;
    let r = &report.results[0];
    assert_eq!(r.judge_score, Some(0.8));
    // 0.7 × judge + 0.3 × heuristic (contains 1 of 2)
    assert!(
        (r.quality_score - (0.7 * 0.8 + 0.3 * 0.5)).abs() < 1e-9,
        "{:?}",
        r.evaluation
    );
    assert_eq!(report.judge_model.as_deref(), Some("c"));
}
