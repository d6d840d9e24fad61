//! The streaming relay: byte-exact, keep-alives at boundaries, exactly one [DONE].

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn relays_a_recorded_stream_byte_for_byte() {
    // A recorded stream with a role chunk, reasoning, a janus event, content, comments from
    // the competitor, CRLF line endings in one event, usage and [DONE].
    let recorded: Vec<String> = vec![
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n".into(),
        ": competitor comment\n\n".into(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"thinking\"}}]}\r\n\r\n".into(),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"janus\":{\"event\":\"tool_start\",\"payload\":{\"tool\":\"x\"}}}}]}\n\n".into(),
        chunk("Hello"),
        chunk(", wörld"),
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n".into(),
        "data: [DONE]\n\n".into(),
    ];
    let expected: Vec<u8> = recorded.concat().into_bytes();
    // Split the recording at awkward places: inside events, inside a CRLF, inside UTF-8.
    let mut steps = Vec::new();
    for piece in expected.chunks(37) {
        steps.push(send(piece));
    }
    let competitor = Competitor::start(move |_, _| Script::sse(steps.clone())).await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    assert_eq!(response.headers["cache-control"], "no-cache");
    assert_eq!(response.bytes(), expected, "relay changed the bytes");
    assert!(response.error.is_none());
}

#[tokio::test]
async fn keeps_a_silent_stream_alive_without_gaps_over_two_seconds() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("before")),
            wait_ms(5000),
            send(chunk("after")),
            send("data: [DONE]\n\n"),
        ])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&stream_body("m"))).await;
    let gap = response.max_gap();
    assert!(
        gap <= Duration::from_secs(2),
        "gap of {gap:?} seen by the client"
    );
    let pings = response.comments().iter().filter(|c| *c == "ping").count();
    assert!(pings >= 3, "expected at least 3 pings in 5 s, got {pings}");
    assert_eq!(
        response.data_events(),
        vec![
            payload(&chunk("before")),
            payload(&chunk("after")),
            "[DONE]".to_owned()
        ]
    );
}

#[tokio::test]
async fn pings_before_the_competitor_answers() {
    let competitor = Competitor::start(|_, _| {
        let mut script = Script::sse(vec![send(chunk("late")), send("data: [DONE]\n\n")]);
        script.head_delay = Duration::from_millis(3500);
        script
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(response.status, 200);
    // Headers came at once; the first frame is a ping after ~1.5 s.
    assert!(
        response.frames[0].0 < Duration::from_millis(1900),
        "{:?}",
        response.frames[0].0
    );
    assert_eq!(&response.frames[0].1[..], b": ping\n\n");
    assert!(response.max_gap() <= Duration::from_secs(2));
    assert!(response.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_half_event_that_stalls_arrives_intact_with_pings_only_between_events() {
    let event = chunk("split across a stall");
    let (head, tail) = event.split_at(30);
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let competitor = Competitor::start(move |_, _| {
        Script::sse(vec![
            send(&head),
            wait_ms(3000),
            send(&tail),
            send("data: [DONE]\n\n"),
        ])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&stream_body("m"))).await;
    // The client sees pings during the stall and then the event whole.
    let text = response.text();
    assert!(text.starts_with(": ping\n\n"), "{text:?}");
    assert!(text.contains(&event), "event corrupted: {text:?}");
    assert!(
        text.ends_with(&format!("{event}data: [DONE]\n\n")),
        "{text:?}"
    );
    assert!(
        response.max_gap() <= Duration::from_secs(2),
        "{:?}",
        response.max_gap()
    );
    // Every frame ends at an event boundary.
    for (_, frame) in &response.frames {
        assert!(frame.ends_with(b"\n\n"), "frame ends mid-event: {frame:?}");
    }
}

#[tokio::test]
async fn appends_done_when_missing_and_never_doubles_it() {
    let competitor = Competitor::start(|n, _| match n {
        0 => Script::sse(vec![send(chunk("no done"))]),
        _ => Script::sse(vec![
            send(chunk("x")),
            send("data: [DONE]\n\n"),
            send(chunk("after done")),
            send("data: [DONE]\n\n"),
        ]),
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;

    let missing = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(
        missing.text(),
        format!("{}data: [DONE]\n\n", chunk("no done"))
    );

    let doubled = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(doubled.text(), format!("{}data: [DONE]\n\n", chunk("x")));
}

#[tokio::test]
async fn done_inside_one_read_with_trailing_events_is_cut_exactly() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![send(format!(
            "{}data: [DONE]\n\n{}",
            chunk("a"),
            chunk("b")
        ))])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(response.text(), format!("{}data: [DONE]\n\n", chunk("a")));
}
