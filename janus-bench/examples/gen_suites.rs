//! Writes the shipped suites, `suites/public/{train,dev}.jsonl`, from the item tables below
//! (images drawn by [`janus_bench::Canvas`]). The test `shipped_suites_are_generated`
//! fails when the files and this generator disagree.
//!
//! ```text
//! cargo run -p janus-bench --example gen-suites
//! ```
#![allow(clippy::print_stdout)]

use janus_bench::Canvas;
use serde_json::{json, Value};

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn line(id: String, category: &str, input: Value, expected: Value, extra: Value) -> Value {
    let mut item = json!({"id": id, "category": category, "input": input, "expected": expected});
    if let (Value::Object(item), Value::Object(extra)) = (&mut item, extra) {
        item.extend(extra);
    }
    item
}

/// (question, words the answer must contain)
const CHAT: [(&str, &[&str]); 30] = [
    ("What is 12 * 12?", &["144"]),
    ("What is the capital of France?", &["Paris"]),
    (
        "What colour do you get by mixing blue and yellow?",
        &["green"],
    ),
    ("How many days are in a leap year?", &["366"]),
    ("What is the chemical symbol for gold?", &["Au"]),
    (
        "What is the largest planet in the solar system?",
        &["Jupiter"],
    ),
    ("What is 100 divided by 4?", &["25"]),
    ("Name the author of 'Pride and Prejudice'.", &["Austen"]),
    (
        "What gas do plants absorb from the air for photosynthesis?",
        &["carbon dioxide"],
    ),
    ("How many sides does a hexagon have?", &["6"]),
    (
        "What is the boiling point of water at sea level in Celsius?",
        &["100"],
    ),
    ("Which ocean is the largest?", &["Pacific"]),
    ("What is the square root of 81?", &["9"]),
    ("Translate 'thank you' into Spanish.", &["gracias"]),
    (
        "What is the freezing point of water in Fahrenheit?",
        &["32"],
    ),
    ("Which planet is known as the Red Planet?", &["Mars"]),
    ("How many minutes are in two hours?", &["120"]),
    ("What is the opposite of 'ancient'?", &["modern"]),
    (
        "What language is primarily spoken in Brazil?",
        &["Portuguese"],
    ),
    ("What is 7 + 8 * 2?", &["23"]),
    ("What is the capital of Japan?", &["Tokyo"]),
    ("How many continents are there?", &["7"]),
    ("What is H2O commonly called?", &["water"]),
    ("What is 15 percent of 200?", &["30"]),
    ("Who painted the Mona Lisa?", &["Leonardo"]),
    ("What is the smallest prime number?", &["2"]),
    ("How many legs does a spider have?", &["8"]),
    ("What is the capital of Canada?", &["Ottawa"]),
    ("What is the plural of 'mouse'?", &["mice"]),
    ("Which metal is liquid at room temperature?", &["mercury"]),
];

/// (question, facts the answer must contain)
const RESEARCH: [(&str, &[&str]); 30] = [
    (
        "Who created the Python programming language and in which year was it first released?",
        &["Guido van Rossum", "1991"],
    ),
    ("Who founded Microsoft?", &["Bill Gates", "Paul Allen"]),
    (
        "When was the first version of the Linux kernel released, and by whom?",
        &["1991", "Linus Torvalds"],
    ),
    (
        "Who proposed the theory of general relativity?",
        &["Einstein"],
    ),
    (
        "In which year did humans first land on the Moon?",
        &["1969"],
    ),
    ("Who invented the World Wide Web?", &["Tim Berners-Lee"]),
    (
        "What is the tallest mountain on Earth above sea level?",
        &["Everest"],
    ),
    ("Which element has the atomic number 1?", &["hydrogen"]),
    ("Who wrote the play 'Hamlet'?", &["Shakespeare"]),
    ("When did the Berlin Wall fall?", &["1989"]),
    ("Who discovered penicillin?", &["Fleming"]),
    ("What is the longest river in Africa?", &["Nile"]),
    (
        "Who developed the polio vaccine first licensed in 1955?",
        &["Salk"],
    ),
    (
        "In which year was the Rust programming language's 1.0 released?",
        &["2015"],
    ),
    (
        "Which company developed the Java programming language?",
        &["Sun Microsystems"],
    ),
    (
        "Who formulated the laws of motion and universal gravitation?",
        &["Newton"],
    ),
    (
        "What is the speed of light in vacuum, in km per second (approximately)?",
        &["299"],
    ),
    (
        "Which country hosted the 2016 Summer Olympics?",
        &["Brazil"],
    ),
    (
        "Who was the first woman to win a Nobel Prize?",
        &["Marie Curie"],
    ),
    ("What is the chemical formula of table salt?", &["NaCl"]),
    (
        "Who designed the C programming language?",
        &["Dennis Ritchie"],
    ),
    (
        "When was the Universal Declaration of Human Rights adopted?",
        &["1948"],
    ),
    (
        "What is the largest desert in the world by area (including polar deserts)?",
        &["Antarctic"],
    ),
    ("Who painted 'The Starry Night'?", &["van Gogh"]),
    (
        "In which city is the headquarters of the United Nations?",
        &["New York"],
    ),
    (
        "What particle carries a negative electric charge in an atom?",
        &["electron"],
    ),
    ("Who composed the 'Moonlight Sonata'?", &["Beethoven"]),
    (
        "Which planet has the most confirmed moons as of 2024?",
        &["Saturn"],
    ),
    ("What year did the Titanic sink?", &["1912"]),
    ("Who wrote 'On the Origin of Species'?", &["Darwin"]),
];

/// (prompt, function name, test cases as (args, output))
type CodeItem = (&'static str, &'static str, Vec<(Value, Value)>);

// The area item fixes pi to five decimals on purpose, so its expected values use them too.
#[allow(clippy::approx_constant)]
fn code_items() -> Vec<CodeItem> {
    vec![
        ("Write a Python function add(a, b) that returns the sum of a and b.", "add", vec![(json!([2, 3]), json!(5)), (json!([-1, 1]), json!(0))]),
        ("Write a Python function is_even(n) that returns True when n is even.", "is_even", vec![(json!([4]), json!(true)), (json!([7]), json!(false))]),
        ("Write a Python function factorial(n) returning n! for n >= 0.", "factorial", vec![(json!([0]), json!(1)), (json!([5]), json!(120))]),
        ("Write a Python function fib(n) returning the n-th Fibonacci number with fib(0) = 0 and fib(1) = 1.", "fib", vec![(json!([0]), json!(0)), (json!([10]), json!(55))]),
        ("Write a Python function reverse_string(s) that returns s reversed.", "reverse_string", vec![(json!(["abc"]), json!("cba")), (json!([""]), json!(""))]),
        ("Write a Python function is_palindrome(s) that returns True if s reads the same backwards (case-sensitive).", "is_palindrome", vec![(json!(["racecar"]), json!(true)), (json!(["abca"]), json!(false))]),
        ("Write a Python function max_of(items) returning the largest number of a non-empty list.", "max_of", vec![(json!([[3, 9, 2]]), json!(9)), (json!([[-5, -2]]), json!(-2))]),
        ("Write a Python function count_vowels(s) returning the number of vowels (a, e, i, o, u, any case) in s.", "count_vowels", vec![(json!(["Hello World"]), json!(3)), (json!(["xyz"]), json!(0))]),
        ("Write a Python function to_fahrenheit(celsius) converting Celsius to Fahrenheit.", "to_fahrenheit", vec![(json!([0]), json!(32)), (json!([100]), json!(212))]),
        ("Write a Python function gcd(a, b) returning the greatest common divisor.", "gcd", vec![(json!([12, 18]), json!(6)), (json!([7, 13]), json!(1))]),
        ("Write a Python function is_prime(n) returning True if n is a prime number.", "is_prime", vec![(json!([2]), json!(true)), (json!([15]), json!(false)), (json!([97]), json!(true))]),
        ("Write a Python function sum_digits(n) returning the sum of the decimal digits of a non-negative integer.", "sum_digits", vec![(json!([1234]), json!(10)), (json!([0]), json!(0))]),
        ("Write a Python function flatten(lists) that flattens one level of nesting: [[1, 2], [3]] becomes [1, 2, 3].", "flatten", vec![(json!([[[1, 2], [3]]]), json!([1, 2, 3])), (json!([[]]), json!([]))]),
        ("Write a Python function unique_sorted(items) returning the distinct items in ascending order.", "unique_sorted", vec![(json!([[3, 1, 3, 2]]), json!([1, 2, 3])), (json!([[]]), json!([]))]),
        ("Write a Python function word_count(s) returning the number of whitespace-separated words.", "word_count", vec![(json!(["the quick brown fox"]), json!(4)), (json!(["  "]), json!(0))]),
        ("Write a Python function clamp(x, lo, hi) that limits x to the range [lo, hi].", "clamp", vec![(json!([5, 0, 3]), json!(3)), (json!([-1, 0, 3]), json!(0)), (json!([2, 0, 3]), json!(2))]),
        ("Write a Python function median(values) returning the median of a non-empty list of numbers.", "median", vec![(json!([[3, 1, 2]]), json!(2)), (json!([[4, 1, 3, 2]]), json!(2.5))]),
        ("Write a Python function binary_to_int(s) converting a binary string like '101' to an integer.", "binary_to_int", vec![(json!(["101"]), json!(5)), (json!(["0"]), json!(0))]),
        ("Write a Python function to_roman(n) converting 1 <= n <= 3999 to a Roman numeral.", "to_roman", vec![(json!([4]), json!("IV")), (json!([1994]), json!("MCMXCIV"))]),
        ("Write a Python function is_anagram(a, b) returning True when a and b contain the same letters.", "is_anagram", vec![(json!(["listen", "silent"]), json!(true)), (json!(["abc", "abd"]), json!(false))]),
        ("Write a Python function rotate(items, k) rotating a list right by k positions.", "rotate", vec![(json!([[1, 2, 3, 4], 1]), json!([4, 1, 2, 3])), (json!([[1, 2], 2]), json!([1, 2]))]),
        ("Write a Python function second_largest(items) returning the second largest distinct number.", "second_largest", vec![(json!([[5, 1, 5, 3]]), json!(3)), (json!([[2, 9]]), json!(2))]),
        ("Write a Python function fizzbuzz(n) returning 'Fizz', 'Buzz', 'FizzBuzz' or str(n) as in the game.", "fizzbuzz", vec![(json!([3]), json!("Fizz")), (json!([10]), json!("Buzz")), (json!([15]), json!("FizzBuzz")), (json!([7]), json!("7"))]),
        ("Write a Python function mean(values) returning the arithmetic mean of a non-empty list.", "mean", vec![(json!([[1, 2, 3, 4]]), json!(2.5)), (json!([[5]]), json!(5))]),
        ("Write a Python function hamming(a, b) returning the number of differing positions of two equal-length strings.", "hamming", vec![(json!(["karolin", "kathrin"]), json!(3)), (json!(["abc", "abc"]), json!(0))]),
        ("Write a Python function lcm(a, b) returning the least common multiple.", "lcm", vec![(json!([4, 6]), json!(12)), (json!([5, 7]), json!(35))]),
        ("Write a Python function capitalize_words(s) capitalizing the first letter of every word.", "capitalize_words", vec![(json!(["hello big world"]), json!("Hello Big World"))]),
        ("Write a Python function area_circle(radius) returning the area using pi = 3.14159.", "area_circle", vec![(json!([1]), json!(3.14159)), (json!([2]), json!(12.56636))]),
        ("Write a Python function char_count(s, c) returning how often character c occurs in s.", "char_count", vec![(json!(["banana", "a"]), json!(3)), (json!(["", "x"]), json!(0))]),
        ("Write a Python function chunk(items, n) splitting a list into consecutive lists of size n (the last may be shorter).", "chunk", vec![(json!([[1, 2, 3, 4, 5], 2]), json!([[1, 2], [3, 4], [5]]))]),
    ]
}

/// (image, question, facts the answer must state)
fn multimodal_items() -> Vec<(Canvas, String, Vec<String>)> {
    let mut items = Vec::new();
    let shapes = ["circle", "square", "triangle"];
    let colours = ["red", "green", "blue", "yellow", "purple", "orange"];
    // 18 single shapes: every shape in every colour.
    for (i, colour) in colours.iter().enumerate() {
        for (j, shape) in shapes.iter().enumerate() {
            let mut c = Canvas::new(32, 32, "white");
            match *shape {
                "circle" => c.circle(16, 16, 11, colour),
                "square" => c.rect(6, 6, 20, 20, colour),
                _ => c.triangle(4, 5, 24, 22, colour),
            };
            let question = if (i + j) % 2 == 0 {
                "What shape is in this image, and what colour is it?"
            } else {
                "Describe the single object in the picture: its shape and its colour."
            };
            items.push((
                c,
                question.to_owned(),
                vec![(*colour).to_owned(), (*shape).to_owned()],
            ));
        }
    }
    // 6 counting images: n black dots.
    for n in 2..=7 {
        let mut c = Canvas::new(48, 16, "white");
        for k in 0..n {
            c.circle(4 + k * 6 + 1, 8, 2, "black");
        }
        items.push((
            c,
            "How many black dots are in this image? Answer with the number.".to_owned(),
            vec![n.to_string()],
        ));
    }
    // 3 bar charts: which colour's bar is tallest.
    for (tallest, heights) in [
        ("blue", [8, 14, 26]),
        ("red", [28, 12, 6]),
        ("green", [10, 24, 16]),
    ] {
        let mut c = Canvas::new(40, 32, "white");
        for (k, (colour, h)) in ["red", "green", "blue"].iter().zip(heights).enumerate() {
            c.rect(4 + k as i64 * 12, 30 - h, 8, h, colour);
        }
        items.push((
            c,
            "This is a bar chart. Which colour is the tallest bar?".to_owned(),
            vec![tallest.to_owned()],
        ));
    }
    // 3 text images.
    for word in ["CAT", "42", "SUN"] {
        let mut c = Canvas::new(8 + word.len() * 8, 14, "white");
        c.text(4, 2, word, 2, "black");
        items.push((
            c,
            "What text is written in this image?".to_owned(),
            vec![word.to_lowercase()],
        ));
    }
    items
}

fn tool(name: &str, description: &str, params: Value, required: &[&str]) -> Value {
    json!({"type": "function", "function": {"name": name, "description": description,
        "parameters": {"type": "object", "properties": params, "required": required}}})
}

fn tools() -> Vec<Value> {
    vec![
        tool(
            "get_weather",
            "Get current weather for a location",
            json!({"location": {"type": "string"}}),
            &["location"],
        ),
        tool(
            "search",
            "Search the web",
            json!({"query": {"type": "string"}}),
            &["query"],
        ),
        tool(
            "calculator",
            "Evaluate a math expression",
            json!({"expression": {"type": "string"}}),
            &["expression"],
        ),
        tool(
            "get_time",
            "Current time in a timezone",
            json!({"timezone": {"type": "string"}}),
            &["timezone"],
        ),
    ]
}

/// Agentic items: a tool call (`expected_call`) or a file back (`expected.artifacts`).
fn agentic_items() -> Vec<(Value, Value, Value)> {
    let calls = [
        (
            "Get the weather in Madrid.",
            "get_weather",
            json!({"location": "Madrid"}),
        ),
        (
            "What is the weather like in Oslo right now?",
            "get_weather",
            json!({"location": "Oslo"}),
        ),
        (
            "Search the web for the capital of New Zealand.",
            "search",
            json!({"query": "capital of New Zealand"}),
        ),
        (
            "Use the calculator to compute 64 / 8.",
            "calculator",
            json!({"expression": "64"}),
        ),
        (
            "What time is it in Asia/Singapore?",
            "get_time",
            json!({"timezone": "Asia/Singapore"}),
        ),
        (
            "Look up the weather for Cape Town.",
            "get_weather",
            json!({"location": "Cape Town"}),
        ),
        (
            "Search for the largest lake in Africa.",
            "search",
            json!({"query": "largest lake in Africa"}),
        ),
        (
            "Calculate 225 - 47 with the calculator.",
            "calculator",
            json!({"expression": "225"}),
        ),
        (
            "What is the current time in Europe/Berlin?",
            "get_time",
            json!({"timezone": "Europe/Berlin"}),
        ),
        (
            "Find the weather in Lima.",
            "get_weather",
            json!({"location": "Lima"}),
        ),
        (
            "Search the web for the year the C language was created.",
            "search",
            json!({"query": "C language"}),
        ),
        (
            "Use the calculator: 12 * 34.",
            "calculator",
            json!({"expression": "12"}),
        ),
        (
            "Tell me the time in America/New_York.",
            "get_time",
            json!({"timezone": "America/New_York"}),
        ),
        (
            "Check the weather in Nairobi.",
            "get_weather",
            json!({"location": "Nairobi"}),
        ),
        (
            "Search for who wrote War and Peace.",
            "search",
            json!({"query": "War and Peace"}),
        ),
    ];
    let files = [
        ("Create a file named notes.txt containing the word alpha. Send it as a file.", "notes.txt", "text/plain", "alpha"),
        ("Write a CSV file data.csv with a header row 'name,age' and one row for Ada aged 36. Send the file.", "data.csv", "text/csv", "name,age"),
        ("Make me a file hello.py that prints hello world.", "hello.py", "", "print"),
        ("Produce a file todo.md listing three tasks, the first being 'buy milk'. Attach the file.", "todo.md", "", "buy milk"),
        ("Generate a JSON file config.json with the key \"debug\" set to true. Send it as a file.", "config.json", "application/json", "debug"),
        ("Create a text file poem.txt with a two-line poem about the sea. Attach the file.", "poem.txt", "text/plain", "sea"),
        ("Save the numbers 1 to 5, one per line, in a file numbers.txt and send the file.", "numbers.txt", "text/plain", "5"),
        ("Write a file greeting.txt containing exactly: Hello, Janus! Send me the file.", "greeting.txt", "text/plain", "hello, janus"),
        ("Make a shell script file run.sh that echoes done. Attach the file.", "run.sh", "", "echo"),
        ("Create an HTML file index.html with a title 'Bench'. Send it as a file.", "index.html", "text/html", "bench"),
        ("Write a file list.txt naming three colours, including red. Attach the file.", "list.txt", "text/plain", "red"),
        ("Put the word omega in a file named last.txt and send the file.", "last.txt", "text/plain", "omega"),
        ("Create a file answer.txt that contains the number 42. Send the file.", "answer.txt", "text/plain", "42"),
        ("Write a Markdown file readme.md whose first line is '# Demo'. Attach the file.", "readme.md", "", "# demo"),
        ("Create a file empty-ish.txt containing just the letter x. Send it as a file.", "empty-ish.txt", "text/plain", "x"),
    ];
    let mut items = Vec::new();
    for (prompt, function, arguments) in calls {
        items.push((
            user(prompt),
            json!({"type": "tool_call", "requires_tool_use": true, "tools_expected": [function]}),
            json!({"available_tools": tools(), "tool_use_task_type": "function_calling",
                   "expected_call": {"function": function, "arguments": arguments}}),
        ));
    }
    for (prompt, name, mime, contains) in files {
        let mut artifact = json!({"name": name, "contains": [contains], "min_size": 1});
        if !mime.is_empty() {
            artifact["mime_type"] = json!(mime);
        }
        items.push((
            user(prompt),
            json!({"type": "artifact", "artifacts": [artifact]}),
            json!({}),
        ));
    }
    items
}

/// Splits `all` into (train, dev): every third item goes to dev until it has `dev_count`.
fn split<T: Clone>(all: &[T], train_count: usize, dev_count: usize) -> (Vec<T>, Vec<T>) {
    let (mut train, mut dev) = (Vec::new(), Vec::new());
    for (i, item) in all.iter().enumerate() {
        if i % 3 == 2 && dev.len() < dev_count {
            dev.push(item.clone());
        } else if train.len() < train_count {
            train.push(item.clone());
        } else if dev.len() < dev_count {
            dev.push(item.clone());
        }
    }
    (train, dev)
}

/// The two suites as JSONL text: (train, dev).
pub fn generate() -> (String, String) {
    let mut out = [Vec::<Value>::new(), Vec::new()];
    let names = ["train", "dev"];
    let chat: Vec<_> = CHAT.iter().collect();
    let (t, d) = split(&chat, 20, 10);
    for (s, group) in [t, d].into_iter().enumerate() {
        for (i, (question, contains)) in group.into_iter().enumerate() {
            let expected = if i % 4 == 3 {
                json!({"type": "text", "contains": contains, "min_length": 10, "max_latency_ms": 8000})
            } else {
                json!({"type": "text", "contains": contains, "max_latency_ms": 8000})
            };
            out[s].push(line(
                format!("chat_{}_{:03}", names[s], i + 1),
                "chat",
                user(question),
                expected,
                json!({}),
            ));
        }
    }
    let research: Vec<_> = RESEARCH.iter().collect();
    let (t, d) = split(&research, 20, 10);
    for (s, group) in [t, d].into_iter().enumerate() {
        for (i, (question, facts)) in group.into_iter().enumerate() {
            let prompt = format!("{question} Cite at least two sources.");
            out[s].push(line(
                format!("research_{}_{:03}", names[s], i + 1),
                "research",
                user(&prompt),
                json!({"type": "text", "contains": facts, "requires_citations": true, "min_sources": 2, "min_length": 80}),
                json!({}),
            ));
        }
    }
    let code = code_items();
    let (t, d) = split(&code, 20, 10);
    for (s, group) in [t, d].into_iter().enumerate() {
        for (i, (prompt, function, cases)) in group.into_iter().enumerate() {
            let cases: Vec<Value> = cases
                .into_iter()
                .map(|(input, output)| json!({"input": input, "output": output}))
                .collect();
            out[s].push(line(
                format!("code_{}_{:03}", names[s], i + 1),
                "code",
                user(&format!("{prompt} Answer with the code in a ```python block.")),
                json!({"type": "code", "language": "python", "function_name": function, "test_cases": cases, "must_execute": true}),
                json!({}),
            ));
        }
    }
    let multimodal = multimodal_items();
    let (t, d) = split(&multimodal, 20, 10);
    for (s, group) in [t, d].into_iter().enumerate() {
        for (i, (canvas, question, facts)) in group.into_iter().enumerate() {
            let input = json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": canvas.to_data_url()}},
            ]}]});
            out[s].push(line(
                format!("multimodal_{}_{:03}", names[s], i + 1),
                "multimodal",
                input,
                json!({"type": "multimodal", "contains": facts}),
                json!({}),
            ));
        }
    }
    let agentic = agentic_items();
    let (t, d) = split(&agentic, 20, 10);
    for (s, group) in [t, d].into_iter().enumerate() {
        for (i, (input, expected, extra)) in group.into_iter().enumerate() {
            out[s].push(line(
                format!("agentic_{}_{:03}", names[s], i + 1),
                "agentic",
                input,
                expected,
                extra,
            ));
        }
    }
    let text = |items: &[Value]| items.iter().map(|v| format!("{v}\n")).collect::<String>();
    (text(&out[0]), text(&out[1]))
}

#[allow(dead_code)] // `main` is unused when a test includes this file as a module.
fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/public");
    let (train, dev) = generate();
    std::fs::write(dir.join("train.jsonl"), train)?;
    std::fs::write(dir.join("dev.jsonl"), dev)?;
    println!("wrote {}", dir.display());
    Ok(())
}
