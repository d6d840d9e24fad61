// The Janus chat page. It talks to the gateway that served it and to nothing else:
// GET v1/models, POST v1/chat/completions (streamed with fetch + ReadableStream), and
// artifact URLs. Conversations and the API key live in localStorage. Model output is
// untrusted: it is rendered by JanusMarkdown (DOM nodes, never HTML) or set as textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, className, content) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  };

  const STORE_KEY = "janus.conversations.v1";
  const CURRENT_KEY = "janus.current";
  const API_KEY = "janus.apiKey";
  // Raw image bytes per upload; base64 adds a third, and the gateway accepts 10 MiB bodies.
  const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
  const IMAGE_TYPES = ["image/png", "image/jpeg"];

  const state = {
    conversations: [],
    currentId: null,
    models: [],
    defaultModel: null,
    pendingImages: [], // {name, type, size, url}
    active: null, // {conversationId, messageId, controller}
  };
  const views = new Map(); // message id → view of an assistant message on screen

  const uid = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

  // ---- persistence ----

  function load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
      if (Array.isArray(saved)) state.conversations = saved.filter((c) => c && c.id && Array.isArray(c.messages));
      // An answer that was still streaming when the page went away ends here.
      for (const c of state.conversations) {
        for (const m of c.messages) {
          if (m.role !== "assistant") continue;
          m.trace = Array.isArray(m.trace) ? m.trace : [];
          m.artifacts = Array.isArray(m.artifacts) ? m.artifacts : [];
          if (m.pending || m.waiting) {
            delete m.pending;
            m.waiting = false;
            if (!m.error && !m.stopped) m.error = { message: "Interrupted: the page was closed while the answer streamed.", code: "interrupted" };
          }
        }
      }
    } catch (_) {
      state.conversations = [];
    }
    state.currentId = localStorage.getItem(CURRENT_KEY);
    if (!current()) state.currentId = state.conversations[0] ? state.conversations[0].id : null;
  }

  function save() {
    const json = JSON.stringify(state.conversations);
    try {
      localStorage.setItem(STORE_KEY, json);
    } catch (_) {
      // Over the storage quota (images are large): keep the text, drop stored images.
      const slim = state.conversations.map((c) => ({
        ...c,
        messages: c.messages.map((m) => (m.images && m.images.length ? { ...m, images: [], imagesDropped: m.images.length } : m)),
      }));
      try {
        localStorage.setItem(STORE_KEY, JSON.stringify(slim));
        notice("Images were too large to keep in this browser's storage; the text is saved.");
      } catch (_) {
        notice("This browser's storage is full: the conversation is not saved.");
      }
    }
    if (state.currentId) localStorage.setItem(CURRENT_KEY, state.currentId);
    else localStorage.removeItem(CURRENT_KEY);
  }

  const current = () => state.conversations.find((c) => c.id === state.currentId) || null;

  function newConversation() {
    const conversation = { id: uid(), title: "New chat", titled: false, model: state.defaultModel, created: Date.now(), messages: [] };
    state.conversations.unshift(conversation);
    state.currentId = conversation.id;
    save();
    renderAll();
    $("input").focus();
    return conversation;
  }

  // ---- API ----

  const apiKey = () => localStorage.getItem(API_KEY) || "";
  function headers(json) {
    const h = {};
    if (json) h["content-type"] = "application/json";
    const key = apiKey();
    if (key) h["authorization"] = "Bearer " + key;
    return h;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return { message: body.error.message, code: body.error.code || null };
    } catch (_) { /* not JSON */ }
    return { message: `HTTP ${response.status} ${response.statusText}`.trim(), code: null };
  }

  async function loadModels() {
    let response;
    try {
      response = await fetch("v1/models", { headers: headers(false) });
    } catch (e) {
      notice("Cannot reach the gateway: " + e.message);
      return false;
    }
    if (response.status === 401) {
      askForKey(apiKey() ? "That key was refused." : null);
      return false;
    }
    if (!response.ok) {
      notice("Listing competitors failed: " + (await errorMessage(response)).message);
      return false;
    }
    const body = await response.json();
    state.models = (body.data || []).map((m) => ({ id: String(m.id), description: m.description || "", isDefault: !!(m.janus && m.janus.default) }));
    const marked = state.models.find((m) => m.isDefault);
    state.defaultModel = marked ? marked.id : state.models[0] ? state.models[0].id : null;
    hideKeyDialog();
    renderPicker();
    return true;
  }

  // ---- API key dialog ----

  function askForKey(error) {
    $("key-dialog").hidden = false;
    const err = $("key-error");
    err.hidden = !error;
    err.textContent = error || "";
    $("key-input").focus();
  }
  function hideKeyDialog() { $("key-dialog").hidden = true; }

  // ---- notices ----

  let noticeTimer = null;
  function notice(message) {
    const n = $("notice");
    n.textContent = message;
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 8000);
  }

  // ---- rendering: sidebar, picker ----

  function renderList() {
    const list = $("conversations");
    list.replaceChildren();
    for (const c of state.conversations) {
      const li = el("li", c.id === state.currentId ? "conversation current" : "conversation");
      li.dataset.id = c.id;
      const open = el("button", "open", c.title || "Untitled");
      open.type = "button";
      open.title = c.title || "Untitled";
      open.addEventListener("click", () => select(c.id));
      const rename = el("button", "icon rename", "✎");
      rename.type = "button";
      rename.setAttribute("aria-label", "Rename " + (c.title || "conversation"));
      rename.addEventListener("click", () => startRename(li, c));
      const remove = el("button", "icon delete", "✕");
      remove.type = "button";
      remove.setAttribute("aria-label", "Delete " + (c.title || "conversation"));
      remove.addEventListener("click", () => deleteConversation(c.id));
      li.append(open, rename, remove);
      list.append(li);
    }
  }

  function startRename(li, conversation) {
    const input = el("input", "rename-input");
    input.value = conversation.title;
    input.setAttribute("aria-label", "New name");
    let finished = false;
    const finish = (keep) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (keep && title) {
        conversation.title = title;
        conversation.titled = true;
        save();
      }
      renderList();
      renderTitle();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
    li.replaceChildren(input);
    input.focus();
    input.select();
  }

  function deleteConversation(id) {
    if (state.active && state.active.conversationId === id) state.active.controller.abort();
    state.conversations = state.conversations.filter((c) => c.id !== id);
    if (state.currentId === id) state.currentId = state.conversations[0] ? state.conversations[0].id : null;
    save();
    renderAll();
  }

  function select(id) {
    state.currentId = id;
    save();
    renderAll();
    document.body.classList.remove("sidebar-open");
  }

  function renderTitle() {
    const c = current();
    $("title").textContent = c ? c.title : "Janus";
    document.title = c && c.titled ? c.title + " · Janus" : "Janus";
  }

  function renderPicker() {
    const picker = $("model");
    picker.replaceChildren();
    const c = current();
    const chosen = c && c.model && state.models.some((m) => m.id === c.model) ? c.model : state.defaultModel;
    for (const m of state.models) {
      const option = el("option", null, m.id + (m.isDefault ? " (default)" : ""));
      option.value = m.id;
      if (m.description) option.title = m.description;
      option.selected = m.id === chosen;
      picker.append(option);
    }
    picker.disabled = state.models.length === 0;
  }

  // ---- rendering: messages ----

  function renderAll() {
    renderList();
    renderTitle();
    renderPicker();
    renderMessages();
    renderBusy();
  }

  function renderMessages() {
    const box = $("messages");
    box.replaceChildren();
    views.clear();
    const c = current();
    if (!c || c.messages.length === 0) {
      const empty = el("div", "empty");
      empty.append(el("h2", null, "Ask anything"), el("p", null, "Answers stream in from the competitor you pick above. Attach PNG or JPEG images with the paper clip or by pasting them."));
      box.append(empty);
      return;
    }
    for (const m of c.messages) box.append(m.role === "user" ? userView(m) : assistantView(m).root);
    box.scrollTop = box.scrollHeight;
  }

  function userView(m) {
    const root = el("article", "msg user");
    root.dataset.msgId = m.id;
    if (m.images && m.images.length) {
      const imgs = el("div", "msg-images");
      for (const url of m.images) {
        const img = el("img");
        img.src = url;
        img.alt = "attached image";
        imgs.append(img);
      }
      root.append(imgs);
    }
    if (m.imagesDropped) root.append(el("div", "muted", `${m.imagesDropped} image(s) not kept in storage`));
    root.append(el("div", "user-text", m.content));
    return root;
  }

  function assistantView(m) {
    const root = el("article", "msg assistant");
    root.dataset.msgId = m.id;
    const head = el("div", "msg-head", m.model || "");
    const reasoning = el("details", "reasoning");
    const summary = el("summary");
    const trace = el("ul", "trace");
    reasoning.append(summary, trace);
    const working = el("div", "working");
    working.append(el("span", "dots"), el("span", "working-text", "working…"));
    const content = el("div", "content markdown");
    const artifacts = el("div", "artifacts");
    const status = el("div", "status");
    root.append(head, reasoning, working, content, artifacts, status);
    const view = { root, reasoning, summary, trace, working, content, artifacts, status, rendered: { content: null, trace: 0, artifacts: 0 }, frame: 0 };
    views.set(m.id, view);
    updateView(m, view);
    return view;
  }

  function describe(step) {
    const p = step.payload || {};
    const name = p.tool || p.name || "";
    switch (step.event) {
      case "tool_start": return ["tool", `▶ ${name || "tool"} started`, p.input];
      case "tool_end": return [p.ok === false ? "tool failed" : "tool", `${p.ok === false ? "✗" : "✓"} ${name || "tool"} ${p.ok === false ? "failed" : "finished"}${p.duration_ms != null ? ` in ${p.duration_ms} ms` : ""}`, p.error];
      case "sandbox_start": return ["sandbox", `▣ sandbox ${p.sandbox_id || p.id || ""} started`.replace(/\s+/g, " "), null];
      case "sandbox_end": return ["sandbox", `▢ sandbox ${p.sandbox_id || p.id || ""} ended`.replace(/\s+/g, " "), p.exit_code != null ? { exit_code: p.exit_code } : null];
      case "artifacts": return ["artifact", `⬇ ${(p.items || []).map((a) => a.display_name || a.id).join(", ") || "artifact"}`, null];
      default: return ["event", `• ${step.event}`, Object.keys(p).length ? p : null];
    }
  }

  function traceItem(item) {
    if (item.kind === "text") return el("li", "trace-text", item.text);
    const [kind, label, detail] = describe(item);
    const li = el("li", "trace-step " + kind.replace(/\s+/g, "-"));
    li.dataset.event = item.event;
    li.append(el("span", "step-label", label));
    if (detail != null && detail !== "") {
      li.append(el("code", "step-detail", typeof detail === "string" ? detail : JSON.stringify(detail)));
    }
    return li;
  }

  function updateView(m, view) {
    const streaming = state.active && state.active.messageId === m.id;
    const steps = m.trace.filter((t) => t.kind === "event").length;
    const hasTrace = m.trace.length > 0;
    view.reasoning.hidden = !hasTrace;
    view.summary.textContent = `Reasoning${steps ? ` · ${steps} step${steps === 1 ? "" : "s"}` : ""}${streaming ? " · live" : ""}`;
    view.reasoning.classList.toggle("live", !!streaming);
    // Text items grow while streaming, so the last one is re-rendered; the rest are kept.
    const items = view.trace.children;
    const keep = Math.max(0, Math.min(view.rendered.trace, m.trace.length) - 1);
    while (items.length > keep) view.trace.lastChild.remove();
    for (let i = keep; i < m.trace.length; i++) view.trace.append(traceItem(m.trace[i]));
    view.rendered.trace = m.trace.length;

    view.working.hidden = !(streaming && m.waiting);
    if (streaming && m.waiting && m.waitingSince) {
      const seconds = Math.floor((Date.now() - m.waitingSince) / 1000);
      view.working.querySelector(".working-text").textContent = seconds >= 2 ? `working… ${seconds} s` : "working…";
    }
    if (view.rendered.content !== m.content) {
      window.JanusMarkdown.render(m.content || "", view.content);
      view.rendered.content = m.content;
    }
    if (view.rendered.artifacts !== m.artifacts.length) {
      for (let i = view.rendered.artifacts; i < m.artifacts.length; i++) view.artifacts.append(artifactCard(m.artifacts[i]));
      view.rendered.artifacts = m.artifacts.length;
    }
    view.status.replaceChildren();
    view.root.classList.toggle("failed", !!m.error);
    if (m.error) {
      const box = el("div", "error-box");
      box.setAttribute("role", "alert");
      box.append(el("span", "error-text", m.error.message));
      if (m.error.code) box.append(el("code", "error-code", m.error.code));
      box.append(retryButton(m));
      view.status.append(box);
    } else if (m.stopped) {
      const box = el("div", "stopped-box", "Stopped.");
      box.append(retryButton(m));
      view.status.append(box);
    }
  }

  function retryButton(m) {
    const b = el("button", "retry", "Retry");
    b.type = "button";
    b.disabled = !!state.active;
    b.addEventListener("click", () => retry(m.id));
    return b;
  }

  // Re-renders at most once per frame while deltas pour in.
  function scheduleUpdate(conversationId, m) {
    if (conversationId !== state.currentId) return;
    const view = views.get(m.id);
    if (!view || view.frame) return;
    view.frame = requestAnimationFrame(() => {
      view.frame = 0;
      const box = $("messages");
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      updateView(m, view);
      if (atBottom) box.scrollTop = box.scrollHeight;
    });
  }

  // ---- artifacts ----

  function humanSize(n) {
    if (typeof n !== "number" || !isFinite(n)) return "";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function dataUrlBytes(url) {
    const comma = url.indexOf(",");
    const meta = url.slice(5, comma);
    const payload = url.slice(comma + 1);
    if (/;base64$/i.test(meta)) {
      const bin = atob(payload);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return bytes;
    }
    return new TextEncoder().encode(decodeURIComponent(payload));
  }

  const toHex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");

  function artifactCard(a) {
    const card = el("div", "artifact-card");
    card.dataset.artifactId = a.id || "";
    const name = a.display_name || a.id || "artifact";
    const mime = a.mime_type || "application/octet-stream";
    const url = typeof a.url === "string" ? a.url.trim() : "";
    const isData = /^data:/i.test(url);
    let href = null;
    let sameOrigin = false;
    if (isData) {
      try {
        const bytes = dataUrlBytes(url);
        href = URL.createObjectURL(new Blob([bytes], { type: mime }));
        if (a.sha256 && window.crypto && crypto.subtle) {
          crypto.subtle.digest("SHA-256", bytes).then((d) => {
            const ok = toHex(d) === String(a.sha256).toLowerCase();
            const badge = card.querySelector(".verify");
            badge.textContent = ok ? "sha256 verified" : "sha256 mismatch";
            badge.classList.add(ok ? "ok" : "bad");
          });
        }
      } catch (_) {
        href = null;
      }
    } else {
      try {
        const parsed = new URL(url, location.href);
        if (parsed.protocol === "http:" || parsed.protocol === "https:") {
          href = parsed.href;
          sameOrigin = parsed.origin === location.origin;
        }
      } catch (_) {
        href = null;
      }
    }
    // Previews only where the page's policy lets images load: data: (as a blob) and this
    // gateway's own URLs.
    if (href && /^image\/(png|jpeg|gif|webp)$/i.test(mime) && (isData || sameOrigin)) {
      const img = el("img", "artifact-preview");
      img.src = href;
      img.alt = name;
      card.append(img);
    }
    const meta = el("div", "artifact-meta");
    meta.append(el("span", "artifact-name", name));
    meta.append(el("span", "artifact-type", [a.type, mime, humanSize(a.size_bytes)].filter(Boolean).join(" · ")));
    if (isData && a.sha256) meta.append(el("span", "verify", "verifying…"));
    card.append(meta);
    if (href) {
      const link = el("a", "download", "Download");
      link.href = href;
      link.setAttribute("download", name);
      link.rel = "noopener";
      card.append(link);
    } else {
      card.append(el("span", "error-text", "unsupported URL"));
    }
    return card;
  }

  // ---- sending and streaming ----

  function apiMessages(conversation, upTo) {
    const out = [];
    for (const m of conversation.messages.slice(0, upTo)) {
      if (m.role === "user") {
        if (m.images && m.images.length) {
          const parts = [];
          if (m.content) parts.push({ type: "text", text: m.content });
          for (const url of m.images) parts.push({ type: "image_url", image_url: { url } });
          out.push({ role: "user", content: parts });
        } else {
          out.push({ role: "user", content: m.content });
        }
      } else if (m.content && !m.error) {
        out.push({ role: "assistant", content: m.content });
      }
    }
    return out;
  }

  function send() {
    if (state.active) {
      // One answer streams at a time; Stop is in the conversation it belongs to.
      if (state.active.conversationId !== state.currentId) notice("An answer is still streaming in another conversation.");
      return;
    }
    const input = $("input");
    const textValue = input.value.trim();
    const images = state.pendingImages.map((p) => p.url);
    if (!textValue && images.length === 0) return;
    let c = current();
    if (!c) c = newConversation();
    if (!c.model) c.model = $("model").value || state.defaultModel;
    c.messages.push({ id: uid(), role: "user", content: textValue, images });
    if (!c.titled && c.messages.filter((m) => m.role === "user").length === 1) {
      c.title = (textValue || "Image").replace(/\s+/g, " ").slice(0, 48);
    }
    input.value = "";
    autosize();
    state.pendingImages = [];
    renderAttachments();
    startAnswer(c);
  }

  function retry(messageId) {
    if (state.active) return;
    const c = current();
    if (!c) return;
    const at = c.messages.findIndex((m) => m.id === messageId);
    if (at < 0) return;
    c.messages.splice(at, 1);
    startAnswer(c);
  }

  function startAnswer(c) {
    const m = { id: uid(), role: "assistant", model: c.model, content: "", trace: [], artifacts: [], error: null, stopped: false, pending: true, waiting: true, waitingSince: Date.now() };
    const history = apiMessages(c, c.messages.length);
    c.messages.push(m);
    save();
    const controller = new AbortController();
    state.active = { conversationId: c.id, messageId: m.id, controller };
    renderAll();
    stream(c, m, history, controller).finally(() => {
      state.active = null;
      m.waiting = false;
      delete m.pending;
      delete m.waitingSince;
      save();
      if (c.id === state.currentId) {
        const view = views.get(m.id);
        if (view) updateView(m, view);
      }
      renderBusy();
    });
  }

  function renderBusy() {
    const busy = !!state.active && state.active.conversationId === state.currentId;
    $("send").hidden = busy;
    $("stop").hidden = !busy;
    for (const b of document.querySelectorAll("button.retry")) b.disabled = !!state.active;
  }

  function applyEvent(m, data) {
    let obj;
    try { obj = JSON.parse(data); } catch (_) { return; }
    if (obj && obj.error) {
      m.error = { message: String(obj.error.message || "the competitor failed"), code: obj.error.code ? String(obj.error.code) : null };
      return;
    }
    if (obj && obj.usage) m.usage = obj.usage;
    const choice = obj && Array.isArray(obj.choices) ? obj.choices[0] : null;
    if (!choice) return;
    const delta = choice.delta || {};
    if (typeof delta.content === "string") m.content += delta.content;
    if (typeof delta.reasoning_content === "string" && delta.reasoning_content) {
      const last = m.trace[m.trace.length - 1];
      if (last && last.kind === "text") last.text += delta.reasoning_content;
      else m.trace.push({ kind: "text", text: delta.reasoning_content });
    }
    if (delta.janus && typeof delta.janus.event === "string") {
      const payload = delta.janus.payload && typeof delta.janus.payload === "object" ? delta.janus.payload : {};
      m.trace.push({ kind: "event", event: delta.janus.event, payload });
      if (delta.janus.event === "artifacts" && Array.isArray(payload.items)) {
        for (const item of payload.items) if (item && typeof item === "object") m.artifacts.push(item);
      }
    }
    if (choice.finish_reason) m.finish = choice.finish_reason;
  }

  async function stream(c, m, history, controller) {
    const body = { model: c.model || state.defaultModel || "default", stream: true, stream_options: { include_usage: true }, messages: history };
    const update = () => scheduleUpdate(c.id, m);
    let response;
    try {
      response = await fetch("v1/chat/completions", { method: "POST", headers: headers(true), body: JSON.stringify(body), signal: controller.signal });
    } catch (e) {
      if (controller.signal.aborted) m.stopped = true;
      else m.error = { message: "Could not reach the gateway: " + e.message, code: "connection_failed" };
      return;
    }
    if (!response.ok) {
      const err = await errorMessage(response);
      m.error = { message: err.message, code: err.code || String(response.status) };
      if (response.status === 401) askForKey(apiKey() ? "That key was refused." : null);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    const handle = (block) => {
      const data = [];
      let comment = false;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) comment = true;
        else if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
      }
      if (data.length === 0) {
        // Only keep-alives: the competitor is busy, say so.
        if (comment && !m.waiting) { m.waiting = true; m.waitingSince = Date.now(); }
        return;
      }
      m.waiting = false;
      const payload = data.join("\n");
      if (payload === "[DONE]") { done = true; return; }
      applyEvent(m, payload);
    };
    try {
      while (true) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        buffer += decoder.decode(value, { stream: true });
        // A lone "\r" at the end may be the first half of "\r\n": wait for the next read.
        const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
        let ready = buffer.slice(0, cut).replace(/\r\n?/g, "\n");
        buffer = buffer.slice(cut);
        let boundary;
        while ((boundary = ready.indexOf("\n\n")) >= 0) {
          handle(ready.slice(0, boundary));
          ready = ready.slice(boundary + 2);
        }
        buffer = ready + buffer;
        update();
      }
    } catch (e) {
      if (controller.signal.aborted) { m.stopped = true; return; }
      if (!m.error) m.error = { message: "The connection was lost: " + e.message, code: "connection_lost" };
      return;
    }
    if (!done && !m.error) m.error = { message: "The connection closed before the answer was finished.", code: "connection_lost" };
  }

  // ---- images ----

  function addImages(files) {
    const problems = [];
    for (const file of files) {
      if (!IMAGE_TYPES.includes(file.type)) {
        problems.push(`${file.name || "That file"} is not a PNG or JPEG image.`);
        continue;
      }
      if (file.size > MAX_IMAGE_BYTES) {
        problems.push(`${file.name || "The image"} is ${humanSize(file.size)}; images can be at most ${humanSize(MAX_IMAGE_BYTES)}.`);
        continue;
      }
      const reader = new FileReader();
      reader.onload = () => {
        state.pendingImages.push({ name: file.name || "pasted image", type: file.type, size: file.size, url: String(reader.result) });
        renderAttachments();
      };
      reader.onerror = () => showUploadError(`Could not read ${file.name || "the image"}.`);
      reader.readAsDataURL(file);
    }
    showUploadError(problems.join(" "));
  }

  function showUploadError(message) {
    const box = $("upload-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function renderAttachments() {
    const box = $("attachments");
    box.replaceChildren();
    state.pendingImages.forEach((p, i) => {
      const chip = el("div", "attachment");
      const img = el("img");
      img.src = p.url;
      img.alt = p.name;
      const remove = el("button", "icon", "✕");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + p.name);
      remove.addEventListener("click", () => { state.pendingImages.splice(i, 1); renderAttachments(); });
      chip.append(img, el("span", "attachment-name", `${p.name} · ${humanSize(p.size)}`), remove);
      box.append(chip);
    });
    box.hidden = state.pendingImages.length === 0;
  }

  // ---- composer ----

  function autosize() {
    const input = $("input");
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 220) + "px";
  }

  function wire() {
    $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
    $("input").addEventListener("keydown", (e) => {
      // Enter sends; Shift+Enter (and Enter while composing with an IME) is a new line.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    });
    $("input").addEventListener("input", autosize);
    $("input").addEventListener("paste", (e) => {
      const files = Array.from((e.clipboardData && e.clipboardData.items) || [])
        .filter((item) => item.kind === "file" && item.type.startsWith("image/"))
        .map((item) => item.getAsFile())
        .filter(Boolean);
      if (files.length) { e.preventDefault(); addImages(files); }
    });
    $("file").addEventListener("change", (e) => { addImages(Array.from(e.target.files || [])); e.target.value = ""; });
    $("stop").addEventListener("click", () => { if (state.active) state.active.controller.abort(); });
    $("new-chat").addEventListener("click", () => { newConversation(); document.body.classList.remove("sidebar-open"); });
    $("model").addEventListener("change", (e) => {
      const c = current();
      if (c) { c.model = e.target.value; save(); }
      else state.defaultModel = e.target.value;
    });
    $("open-sidebar").addEventListener("click", () => document.body.classList.add("sidebar-open"));
    $("close-sidebar").addEventListener("click", () => document.body.classList.remove("sidebar-open"));
    $("key-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      localStorage.setItem(API_KEY, key);
      $("key-input").value = "";
      await loadModels();
    });
    // Keeps the "working… N s" counter moving while only keep-alives arrive.
    setInterval(() => {
      if (!state.active) return;
      const c = state.conversations.find((x) => x.id === state.active.conversationId);
      const m = c && c.messages.find((x) => x.id === state.active.messageId);
      if (m && m.waiting) scheduleUpdate(c.id, m);
    }, 500);
  }

  load();
  wire();
  renderAll();
  loadModels();
})();
