//! The report as one self-contained HTML page: inline CSS and SVG, no script, no external
//! resource, so it opens anywhere and can be attached to a ticket.

use std::fmt::Write as _;

use crate::report::Report;

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Horizontal bars, one per `(label, value 0–100)`.
fn bars(rows: &[(String, f64)]) -> String {
    let height = rows.len() * 26 + 8;
    let mut svg = format!(
        r#"<svg class="bars" viewBox="0 0 520 {height}" width="520" height="{height}" role="img">"#
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = i * 26 + 4;
        let width = (value.clamp(0.0, 100.0) * 3.2).round();
        let _ = write!(
            svg,
            r#"<text x="0" y="{ty}">{label}</text><rect x="130" y="{y}" width="320" height="18" class="track"/><rect x="130" y="{y}" width="{width}" height="18" class="fill"/><text x="458" y="{ty}">{value:.1}</text>"#,
            ty = y + 14,
            label = esc(label),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of `values` (seconds) in `buckets` equal bins.
fn histogram(values: &[f64], buckets: usize, title: &str) -> String {
    if values.is_empty() {
        return format!("<p>{}: no data</p>", esc(title));
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-3);
    let mut counts = vec![0usize; buckets];
    for v in values {
        let i = ((v / max) * buckets as f64).floor() as usize;
        counts[i.min(buckets - 1)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1);
    let (w, h) = (520.0, 160.0);
    let bar = (w - 40.0) / buckets as f64;
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {w} {hh}" width="{w}" height="{hh}" role="img">"#,
        esc(title),
        hh = h + 30.0
    );
    for (i, count) in counts.iter().enumerate() {
        let bh = (*count as f64 / peak as f64) * h;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" class="fill"><title>{lo:.2}–{hi:.2} s: {count}</title></rect>"#,
            x = 20.0 + i as f64 * bar,
            y = h - bh,
            bw = (bar - 2.0).max(1.0),
            lo = max * i as f64 / buckets as f64,
            hi = max * (i + 1) as f64 / buckets as f64,
        );
    }
    let _ = write!(
        svg,
        r#"<text x="20" y="{ty}">0 s</text><text x="{tx}" y="{ty}" text-anchor="end">{max:.2} s</text></svg></figure>"#,
        ty = h + 20.0,
        tx = w - 20.0
    );
    svg
}

/// The page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("janus bench — {} on {}", report.suite, report.target_url);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}}
h1{{font-size:1.4em}} .big{{font-size:3em;font-weight:700}} .partial{{color:#b00;font-weight:700}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} .fail{{color:#b00}} .pass{{color:#070}}
svg text{{font-size:12px;fill:#222}} .track{{fill:#eee}} .fill{{fill:#3a6ea5}} figure{{margin:1em 0}}
</style></head><body>"#,
        esc(&title)
    );
    let _ = write!(
        page,
        "<h1>{}</h1><p>model <b>{}</b> · seed {} · subset {}% · suite hash <code>{}</code> · {} → {}</p>",
        esc(&title),
        esc(&report.model),
        report.seed,
        report.subset_percent,
        esc(report.suite_hash.get(..16).unwrap_or(&report.suite_hash)),
        esc(&report.started_at),
        esc(&report.completed_at)
    );
    if report.partial {
        let _ = write!(
            page,
            r#"<p class="partial">PARTIAL: interrupted after {} of {} tasks</p>"#,
            report.total_tasks, report.planned_tasks
        );
    }
    let _ = write!(
        page,
        r#"<div class="big">{:.1}</div><p>composite · {} tasks, {} passed, {} errors</p><h2>Components</h2>"#,
        report.composite_score, report.total_tasks, report.passed_tasks, report.errored_tasks
    );
    let weight = |n: &str| report.weights.get(n).copied().unwrap_or(0);
    page.push_str(&bars(&[
        (
            format!("quality ({}%)", weight("quality")),
            report.quality_score,
        ),
        (format!("speed ({}%)", weight("speed")), report.speed_score),
        (format!("cost ({}%)", weight("cost")), report.cost_score),
        (
            format!("streaming ({}%)", weight("streaming")),
            report.streaming_score,
        ),
        (
            format!("multimodal ({}%)", weight("multimodal")),
            report.multimodal_score,
        ),
    ]));
    page.push_str("<h2>Categories (composite)</h2>");
    let rows: Vec<(String, f64)> = report
        .categories
        .iter()
        .map(|(n, c)| {
            (
                format!("{n} ({}/{})", c.passed_tasks, c.total_tasks),
                c.composite_score,
            )
        })
        .collect();
    page.push_str(&bars(&rows));
    page.push_str("<h2>Distributions</h2>");
    let ttfts: Vec<f64> = report
        .results
        .iter()
        .filter(|r| r.streaming_metrics.first_token_received)
        .map(|r| r.streaming_metrics.ttft_seconds)
        .collect();
    let latencies: Vec<f64> = report.results.iter().map(|r| r.latency_seconds).collect();
    page.push_str(&histogram(&ttfts, 20, "time to first token"));
    page.push_str(&histogram(&latencies, 20, "total latency"));
    let _ = write!(
        page,
        "<p>latency avg {:.2} s, p50 {:.2} s · max gap {} · tokens {} · cost ${:.4}</p>",
        report.avg_latency_seconds,
        report.p50_latency_seconds,
        report
            .max_gap_seconds
            .map_or("-".to_owned(), |g| format!("{g:.2} s")),
        report.total_tokens,
        report.total_cost_usd
    );
    page.push_str("<h2>Tasks</h2><table><tr><th>task</th><th>category</th><th>result</th><th>composite</th><th>quality</th><th>latency</th><th>ttft</th><th>max gap</th><th>cost source</th><th>notes</th></tr>");
    for r in &report.results {
        let (class, status) = if r.success {
            ("pass", "pass")
        } else {
            ("fail", "fail")
        };
        let notes = r
            .error
            .clone()
            .into_iter()
            .chain(r.evaluation.notes.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td>{}</td><td class="{class}">{status}</td><td class="n">{:.1}</td><td class="n">{:.2}</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td>{:?}</td><td>{}</td></tr>"#,
            esc(&r.task_id),
            r.category,
            r.composite_score,
            r.quality_score,
            r.latency_seconds,
            r.streaming_metrics.ttft_seconds,
            r.streaming_metrics.max_gap_seconds,
            r.cost_source,
            esc(&notes.chars().take(300).collect::<String>())
        );
    }
    page.push_str("</table></body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
