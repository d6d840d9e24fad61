//! The router on labelled prompts: at least 60, accuracy at least 90 %.

use janus_baseline::{route, Path, RouteInput};

const FAST: Path = Path::Fast;
const AGENT: Path = Path::Agent;

/// (prompt, expected path). Written to cover the categories, including the easy
/// traps: questions *about* files, code or images, which need no tools.
const LABELLED: &[(&str, Path)] = &[
    // trivial chat
    ("hello", FAST),
    ("hi there!", FAST),
    ("thanks, that helped", FAST),
    ("good morning, how are you?", FAST),
    ("Tell me a joke about penguins.", FAST),
    ("Write a haiku about autumn rain.", FAST),
    ("ok", FAST),
    ("Can you say that more politely?", FAST),
    // short factual questions
    ("What is the capital of Australia?", FAST),
    ("Who wrote Pride and Prejudice?", FAST),
    ("How many bytes are in a kilobyte?", FAST),
    ("What is 17 times 23?", FAST),
    ("Explain what a monad is in simple terms.", FAST),
    ("Why is the sky blue?", FAST),
    ("Define entropy.", FAST),
    ("When did the Berlin wall fall?", FAST),
    ("What does HTTP 418 mean?", FAST),
    ("Summarize the plot of Hamlet in three sentences.", FAST),
    (
        "Translate 'good night' into French, German and Spanish.",
        FAST,
    ),
    ("Is a tomato a fruit or a vegetable?", FAST),
    // questions about files, code and images: knowledge, not tools
    ("What is a CSV file?", FAST),
    ("How do I run a Python script from the terminal?", FAST),
    ("What is the difference between PNG and JPG?", FAST),
    (
        "Explain how unit tests differ from integration tests.",
        FAST,
    ),
    ("Write a Rust function that reverses a string.", FAST),
    ("Give me a SQL query that counts orders per customer.", FAST),
    ("What's a good name for a coffee shop?", FAST),
    (
        "Rewrite this sentence in the passive voice: the cat chased the mouse.",
        FAST,
    ),
    // files to make or convert
    (
        "Make me a file named notes.txt with a shopping list.",
        AGENT,
    ),
    (
        "Create a CSV with the first 20 prime numbers and their squares.",
        AGENT,
    ),
    (
        "Convert this JSON to a spreadsheet: [{\"a\":1},{\"a\":2}]",
        AGENT,
    ),
    (
        "Generate a PDF report of these sales numbers: 10, 20, 30.",
        AGENT,
    ),
    ("Please send it as a file.", AGENT),
    ("Zip these three text files together.", AGENT),
    ("Save the result as results.json.", AGENT),
    // running or testing code
    (
        "Write a Python script that prints the Fibonacci numbers below 1000 and run it.",
        AGENT,
    ),
    (
        "Run this code and tell me the output: print(sum(range(10)))",
        AGENT,
    ),
    ("Execute the following shell command: ls -la", AGENT),
    (
        "Test this function with a few edge cases and show me the results.",
        AGENT,
    ),
    (
        "Benchmark quicksort against mergesort on a million integers.",
        AGENT,
    ),
    ("Compile this C program and fix any warnings.", AGENT),
    (
        "Install numpy and compute the eigenvalues of [[2,1],[1,2]].",
        AGENT,
    ),
    ("Debug this script, it crashes on empty input.", AGENT),
    // URLs
    ("Summarize https://example.com/article for me.", AGENT),
    ("Read www.example.org and list its headings.", AGENT),
    (
        "Download the file at http://127.0.0.1/data.csv and count its rows.",
        AGENT,
    ),
    // data analysis
    (
        "Analyze this dataset and find the outliers: 3, 4, 5, 99, 4, 3.",
        AGENT,
    ),
    ("Plot the function sin(x) from 0 to 2 pi.", AGENT),
    ("Make a bar chart of these values: a=3, b=7, c=5.", AGENT),
    (
        "Compute summary statistics for the attached data and visualize the distribution.",
        AGENT,
    ),
    ("Draw a histogram of 1000 normal samples.", AGENT),
    // research
    (
        "Research the history of the SSE protocol and write a report with sources.",
        AGENT,
    ),
    ("Search the web for the latest Rust release notes.", AGENT),
    ("What is the latest stable version of Python?", AGENT),
    (
        "Compare the three most popular JavaScript bundlers with benchmarks.",
        AGENT,
    ),
    ("Look up the current price of bitcoin.", AGENT),
    (
        "Investigate why these two sorting implementations give different results and report back.",
        AGENT,
    ),
    // images to produce
    ("Generate an image of a lighthouse at dusk.", AGENT),
    ("Draw a logo for my bakery.", AGENT),
    (
        "Create an SVG diagram of a client, a gateway and two servers.",
        AGENT,
    ),
    ("Render a PNG of the Mandelbrot set.", AGENT),
    ("Make a picture of a cat wearing a hat.", AGENT),
];

#[test]
fn the_router_labels_at_least_ninety_percent_of_the_table_right() {
    assert!(
        LABELLED.len() >= 60,
        "only {} labelled prompts",
        LABELLED.len()
    );
    let mut wrong = Vec::new();
    for (prompt, expected) in LABELLED {
        let decided = route(
            &RouteInput {
                text: prompt,
                prompt_tokens: janus_baseline::estimate_tokens(prompt.len()),
                ..RouteInput::default()
            },
            6000,
        );
        if decided.path != *expected {
            wrong.push(format!(
                "{prompt:?}: expected {}, got {} ({})",
                expected.as_str(),
                decided.path.as_str(),
                decided.reason
            ));
        }
    }
    let right = LABELLED.len() - wrong.len();
    let accuracy = right as f64 / LABELLED.len() as f64;
    println!(
        "router accuracy: {right}/{} = {:.1} %",
        LABELLED.len(),
        accuracy * 100.0
    );
    for line in &wrong {
        println!("  misrouted: {line}");
    }
    assert!(
        accuracy >= 0.9,
        "accuracy {:.1} %: {wrong:#?}",
        accuracy * 100.0
    );
}

#[test]
fn an_explicit_choice_wins_and_long_prompts_go_to_the_agent() {
    let input = |text: &'static str, forced, tokens, images| RouteInput {
        text,
        prompt_tokens: tokens,
        has_images: images,
        forced,
    };
    assert_eq!(
        route(&input("plot this", Some(FAST), 3, false), 6000).path,
        FAST
    );
    assert_eq!(
        route(&input("hello", Some(AGENT), 1, false), 6000).path,
        AGENT
    );
    assert_eq!(route(&input("hello", None, 6001, false), 6000).path, AGENT);
    assert_eq!(route(&input("hello", None, 6000, false), 6000).path, FAST);
    // Images pick the vision model on the fast path, unless tools are needed.
    let seen = route(&input("What is in this picture?", None, 10, true), 6000);
    assert_eq!((seen.path, seen.vision), (FAST, true));
    let plotted = route(
        &input(
            "Plot the colours of this image as a histogram",
            None,
            10,
            true,
        ),
        6000,
    );
    assert_eq!((plotted.path, plotted.vision), (AGENT, false));
    assert_eq!(Path::parse(" Agent "), Some(AGENT));
    assert_eq!(Path::parse("slow"), None);
}
