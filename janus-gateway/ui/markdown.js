// A small Markdown renderer for model output, which is untrusted.
//
// It never parses HTML: every piece of text becomes a Text node (textContent), and every
// element is created with createElement, so `<script>` or `<img onerror=…>` in a reply is
// shown as the characters it is made of. URLs are checked against an allowlist of schemes
// before they become an href or src. What it supports: paragraphs, headings, emphasis,
// strikethrough, inline code, links, images, autolinks, block quotes, ordered and
// unordered lists (nested by indentation), horizontal rules, GFM tables with alignment, and
// fenced code blocks with a copy button. An unterminated fence renders as code, so a
// stream that is still arriving looks right.
"use strict";

(function () {
  const el = (tag, className) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  };
  const text = (s) => document.createTextNode(s);

  // Links: web, mail, same-origin relative paths; `data:` only as a download. Images:
  // web, relative, and base64 raster images. Anything else (javascript:, vbscript:, …)
  // is dropped and the link text stays as plain text.
  function safeUrl(raw, forImage) {
    const url = String(raw).trim();
    // Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
    const squeezed = url.replace(/[\u0000-\u0020\u007f]/g, "").toLowerCase();
    if (/^https?:\/\//.test(squeezed)) return url;
    if (!forImage && /^mailto:/.test(squeezed)) return url;
    if (/^data:image\/(png|jpeg|gif|webp);base64,[a-z0-9+/=]*$/i.test(squeezed)) return url;
    if (!forImage && /^data:[a-z0-9.+-]+\/[a-z0-9.+-]+(;[a-z0-9=.+-]+)*;base64,/.test(squeezed)) return url;
    // No scheme at all: a relative reference ("/v1/…", "#x", "file.txt").
    if (!/^[a-z][a-z0-9+.-]*:/.test(squeezed)) return url;
    return null;
  }

  // ---- inline ----

  // Finds the closing `delim` for an opening at `from`, not directly after it.
  function findClose(s, delim, from) {
    let i = from;
    while (true) {
      i = s.indexOf(delim, i);
      if (i < 0) return -1;
      if (s[i - 1] !== "\\" && i > from) return i;
      i += 1;
    }
  }

  // Index of the `]` matching the `[` at `open`, honouring nesting and escapes.
  function matchBracket(s, open) {
    let depth = 0;
    for (let i = open; i < s.length; i++) {
      const c = s[i];
      if (c === "\\") { i++; continue; }
      if (c === "[") depth++;
      else if (c === "]") { depth--; if (depth === 0) return i; }
    }
    return -1;
  }

  // `(url "title")` after a `]`: returns [url, end index] or null.
  function linkTarget(s, at) {
    if (s[at] !== "(") return null;
    let depth = 0;
    for (let i = at; i < s.length; i++) {
      if (s[i] === "(") depth++;
      else if (s[i] === ")") {
        depth--;
        if (depth === 0) {
          let inner = s.slice(at + 1, i).trim();
          const titled = inner.match(/^(\S+)\s+["'].*["']$/);
          if (titled) inner = titled[1];
          if (inner.startsWith("<") && inner.endsWith(">")) inner = inner.slice(1, -1);
          return [inner, i + 1];
        }
      }
    }
    return null;
  }

  function link(href, children) {
    const a = el("a");
    a.href = href;
    if (/^data:/i.test(href)) {
      // A data: URL cannot be opened as a page; it can be saved.
      a.setAttribute("download", "");
    } else {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    a.append(children);
    return a;
  }

  const EMPHASIS = [
    ["**", "strong"], ["__", "strong"], ["~~", "del"], ["*", "em"], ["_", "em"],
  ];

  function inline(s) {
    const out = document.createDocumentFragment();
    let buf = "";
    const flush = () => { if (buf) { out.append(text(buf)); buf = ""; } };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === "\\" && i + 1 < s.length && /[\\`*_{}\[\]()#+\-.!|~<>]/.test(s[i + 1])) {
        buf += s[i + 1]; i += 2; continue;
      }
      if (c === "\\" && s[i + 1] === "\n") { flush(); out.append(el("br")); i += 2; continue; }
      if (c === "\n") {
        // Two trailing spaces make a hard break; otherwise a newline is a space.
        if (buf.endsWith("  ")) { buf = buf.replace(/ +$/, ""); flush(); out.append(el("br")); }
        else buf += "\n";
        i++; continue;
      }
      if (c === "`") {
        let ticks = 1;
        while (s[i + ticks] === "`") ticks++;
        const fence = "`".repeat(ticks);
        const end = s.indexOf(fence, i + ticks);
        if (end > 0) {
          flush();
          const code = el("code");
          let body = s.slice(i + ticks, end);
          if (/^ .* $/.test(body)) body = body.slice(1, -1);
          code.textContent = body;
          out.append(code);
          i = end + ticks; continue;
        }
        buf += fence; i += ticks; continue;
      }
      if ((c === "!" && s[i + 1] === "[") || c === "[") {
        const open = c === "!" ? i + 1 : i;
        const close = matchBracket(s, open);
        const target = close > 0 ? linkTarget(s, close + 1) : null;
        if (target) {
          const label = s.slice(open + 1, close);
          const url = safeUrl(target[0], c === "!");
          flush();
          if (c === "!" && url) {
            const img = el("img");
            img.alt = label;
            img.src = url;
            img.loading = "lazy";
            out.append(img);
          } else if (c !== "!" && url) {
            out.append(link(url, inline(label)));
          } else {
            // An unsafe target: keep the visible words, drop the link.
            out.append(inline(label));
          }
          i = target[1]; continue;
        }
      }
      if (c === "<") {
        const m = s.slice(i).match(/^<(https?:\/\/[^\s<>]+)>/i);
        if (m) { flush(); out.append(link(m[1], text(m[1]))); i += m[0].length; continue; }
      }
      if ((c === "h" || c === "H") && /[\s(]/.test(s[i - 1] || " ")) {
        const m = s.slice(i).match(/^https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/i);
        if (m) { flush(); out.append(link(m[0], text(m[0]))); i += m[0].length; continue; }
      }
      let matched = false;
      for (const [delim, tag] of EMPHASIS) {
        if (!s.startsWith(delim, i)) continue;
        const next = s[i + delim.length];
        if (!next || /\s/.test(next)) continue;
        // `_` inside a word (snake_case) is not emphasis.
        if (delim[0] === "_" && /\w/.test(s[i - 1] || "")) continue;
        const end = findClose(s, delim, i + delim.length);
        if (end < 0 || /\s/.test(s[end - 1])) continue;
        flush();
        const node = el(tag);
        node.append(inline(s.slice(i + delim.length, end)));
        out.append(node);
        i = end + delim.length;
        matched = true;
        break;
      }
      if (matched) continue;
      buf += c; i++;
    }
    flush();
    return out;
  }

  // ---- blocks ----

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const cells = [];
    let cur = "";
    for (let i = 0; i < s.length; i++) {
      if (s[i] === "\\" && s[i + 1] === "|") { cur += "|"; i++; continue; }
      if (s[i] === "|") { cells.push(cur.trim()); cur = ""; continue; }
      cur += s[i];
    }
    cells.push(cur.trim());
    return cells;
  }

  function codeBlock(lang, body) {
    const wrap = el("div", "code-block");
    const head = el("div", "code-head");
    const label = el("span", "code-lang");
    label.textContent = lang || "code";
    const copy = el("button", "copy");
    copy.type = "button";
    copy.textContent = "Copy";
    copy.addEventListener("click", () => copyText(body, copy));
    head.append(label, copy);
    const pre = el("pre");
    const code = el("code");
    if (lang && /^[\w+-]+$/.test(lang)) code.className = "language-" + lang;
    code.textContent = body;
    pre.append(code);
    wrap.append(head, pre);
    return wrap;
  }

  function copyText(body, button) {
    const done = (ok) => {
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(body).then(() => done(true), () => done(fallbackCopy(body)));
    } else {
      done(fallbackCopy(body));
    }
  }

  // Without the async clipboard API (an insecure origin), copy through a hidden textarea.
  function fallbackCopy(body) {
    const area = el("textarea", "visually-hidden");
    area.value = body;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    area.remove();
    return ok;
  }

  function table(header, aligns, rows) {
    const wrap = el("div", "table-wrap");
    const t = el("table");
    const thead = el("thead");
    const tr = el("tr");
    header.forEach((cell, i) => {
      const th = el("th");
      if (aligns[i]) th.className = "align-" + aligns[i];
      th.append(inline(cell));
      tr.append(th);
    });
    thead.append(tr);
    const tbody = el("tbody");
    for (const row of rows) {
      const r = el("tr");
      for (let i = 0; i < header.length; i++) {
        const td = el("td");
        if (aligns[i]) td.className = "align-" + aligns[i];
        td.append(inline(row[i] || ""));
        r.append(td);
      }
      tbody.append(r);
    }
    t.append(thead, tbody);
    wrap.append(t);
    return wrap;
  }

  function startsBlock(line, next) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      ITEM.test(line) || (line.includes("|") && next !== undefined && TABLE_SEP.test(next) && next.includes("-"));
  }

  function blocks(lines) {
    const out = document.createDocumentFragment();
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i++; continue; }

      let m = line.match(FENCE);
      if (m) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !(lines[i].trim().startsWith(fence) && /^[`~]+$/.test(lines[i].trim()))) {
          body.push(lines[i]);
          i++;
        }
        i++; // the closing fence (or the end of a still-streaming reply)
        out.append(codeBlock(m[2], body.join("\n")));
        continue;
      }
      if ((m = line.match(HEADING))) {
        const h = el("h" + m[1].length);
        h.append(inline(m[2] || ""));
        out.append(h);
        i++; continue;
      }
      if (RULE.test(line)) { out.append(el("hr")); i++; continue; }
      if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
          inner.push(lines[i].match(QUOTE)[1]);
          i++;
        }
        const q = el("blockquote");
        q.append(blocks(inner));
        out.append(q);
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        const header = splitRow(line);
        const aligns = splitRow(lines[i + 1]).map((c) =>
          c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : "");
        i += 2;
        const rows = [];
        while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
          rows.push(splitRow(lines[i]));
          i++;
        }
        out.append(table(header, aligns, rows));
        continue;
      }
      if ((m = line.match(ITEM))) {
        const indent = m[1].length;
        const ordered = /\d/.test(m[2]);
        const list = el(ordered ? "ol" : "ul");
        if (ordered) {
          const start = parseInt(m[2], 10);
          if (start !== 1) list.start = start;
        }
        while (i < lines.length) {
          const im = lines[i].match(ITEM);
          if (!im || im[1].length !== indent || /\d/.test(im[2]) !== ordered) break;
          const body = [im[3]];
          i++;
          // Continuation: lines indented deeper than the marker (nested lists included),
          // and blank lines followed by such a line.
          while (i < lines.length) {
            const l = lines[i];
            const depth = l.match(/^\s*/)[0].length;
            if (l.trim() && depth > indent) { body.push(l.slice(Math.min(depth, indent + 2))); i++; continue; }
            if (!l.trim() && i + 1 < lines.length && lines[i + 1].trim() &&
                lines[i + 1].match(/^\s*/)[0].length > indent) { body.push(""); i++; continue; }
            break;
          }
          const li = el("li");
          const task = body[0].match(/^\[( |x|X)\]\s+(.*)$/);
          if (task) {
            const box = el("input");
            box.type = "checkbox";
            box.disabled = true;
            box.checked = task[1] !== " ";
            li.append(box, text(" "));
            body[0] = task[2];
          }
          if (body.length === 1) li.append(inline(body[0]));
          else {
            // A first line followed by a nested block: keep the first line tight.
            const rest = body.slice(1);
            li.append(inline(body[0]));
            li.append(blocks(rest));
          }
          list.append(li);
          if (i < lines.length && !lines[i].trim()) {
            // A blank line between items of the same list keeps the list going.
            const nm = i + 1 < lines.length ? lines[i + 1].match(ITEM) : null;
            if (nm && nm[1].length === indent && /\d/.test(nm[2]) === ordered) i++;
          }
        }
        out.append(list);
        continue;
      }
      const para = [line];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i], lines[i + 1])) {
        para.push(lines[i]);
        i++;
      }
      const p = el("p");
      p.append(inline(para.join("\n").trim()));
      out.append(p);
    }
    return out;
  }

  // Replaces the children of `container` with the rendering of `source`.
  function render(source, container) {
    const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
    container.replaceChildren(blocks(lines));
  }

  window.JanusMarkdown = Object.freeze({ render, safeUrl, inline });
})();
