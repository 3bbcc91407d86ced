// The qasearch page: a client of POST /qasearch, nothing else.
// Every piece of text from the corpus or the API is put in the page with textContent
// or text nodes, never innerHTML: a passage holding "<script>" shows as text.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask");
  const question = $("question");
  const keyBox = $("key-box");
  const keyInput = $("api-key");
  const statusLine = $("status");
  const errorLine = $("error");
  const warningLine = $("warning");
  const noAnswerLine = $("no-answer");
  const summary = $("summary");
  const summaryList = $("summary-list");
  const answers = $("answers");
  const results = $("results");

  // Fields the page lays out itself; any other field a newer gateway sends is still
  // shown, as "name: value", so nothing the API says is hidden.
  const KNOWN_BODY = ["search", "results", "took_ms", "shards", "model", "warning", "cached",
                      "no_answer"];
  const KNOWN_ANSWER = ["answer", "score", "start", "end", "sentence", "sentencekey",
                        "title", "doc_id", "partition", "similarity", "answerkey"];

  let inflight = null;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function show(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  }

  function fixed(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : String(value);
  }

  function plain(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function addTerm(list, term, value, id) {
    const dt = el("dt", term);
    const dd = el("dd", value);
    if (id) dd.id = id;
    list.append(dt, dd);
    return dd;
  }

  function clear() {
    show(errorLine, "");
    show(warningLine, "");
    summaryList.replaceChildren();
    results.replaceChildren();
    summary.hidden = true;
    answers.hidden = true;
  }

  function intField(id) {
    const raw = $(id).value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  function requestBody() {
    // Only what the user set: the gateway's defaults apply to the rest.
    const body = { search: question.value };
    const extra = { num_results: intField("num-results"), top_k: intField("top-k"),
                    timeout_ms: intField("timeout-ms") };
    for (const [name, value] of Object.entries(extra)) {
      if (value !== undefined) body[name] = value;
    }
    if (!$("use-cache").checked) body.cache = false;
    return body;
  }

  // Python's offsets count code points; JavaScript strings count UTF-16 units, so
  // slicing by code point keeps the highlight on the answer past any emoji.
  function highlighted(sentence, start, end) {
    const chars = Array.from(sentence || "");
    const passage = el("p", null, "passage");
    passage.append(document.createTextNode(chars.slice(0, start).join("")));
    passage.append(el("mark", chars.slice(start, end).join("")));
    passage.append(document.createTextNode(chars.slice(end).join("")));
    return passage;
  }

  function renderAnswer(answer, rank) {
    const item = el("li", null, "answer");
    item.append(el("h3", answer.title || "(untitled)", "title"));
    item.append(highlighted(answer.sentence, answer.start, answer.end));
    const meta = el("dl", null, "meta");
    addTerm(meta, "Answer", answer.answer).className = "answer-text";
    addTerm(meta, "Document", answer.doc_id).className = "doc-id";
    addTerm(meta, "Partition", answer.partition).className = "partition";
    addTerm(meta, "Score", fixed(answer.score, 4)).className = "score";
    addTerm(meta, "Similarity", fixed(answer.similarity, 4)).className = "similarity";
    for (const [name, value] of Object.entries(answer)) {
      if (!KNOWN_ANSWER.includes(name)) addTerm(meta, name, plain(value));
    }
    item.append(meta);
    item.setAttribute("aria-label", "Answer " + rank);
    return item;
  }

  function renderSummary(body) {
    const shards = body.shards || {};
    const parts = shards.partitions;
    const failed = shards.failed || [];
    addTerm(summaryList, "Latency", fixed(body.took_ms, 1) + " ms", "took-ms");
    addTerm(summaryList, "Cached", body.cached ? "yes" : "no", "cached");
    addTerm(summaryList, "Shards", shards.answered + " of " + shards.total + " answered",
            "shards");
    if (parts) {
      addTerm(summaryList, "Partitions", parts.answered + " of " + parts.total + " answered",
              "partitions");
      const missing = parts.missing || [];
      addTerm(summaryList, "Missing partitions", missing.length ? missing.join(", ") : "none",
              "missing").classList.toggle("bad", missing.length > 0);
    }
    if (failed.length) {
      const dd = addTerm(summaryList, "Failed shards", null, "failed");
      const list = el("ul");
      for (const f of failed) {
        list.append(el("li", f.node + ": " + f.reason +
                              " (partitions " + (f.partitions || []).join(", ") + ")"));
      }
      dd.append(list);
      dd.classList.add("bad");
    }
    const model = body.model || {};
    addTerm(summaryList, "Model", model.version, "model-version");
    addTerm(summaryList, "Reader trained", model.trained ? "yes" : "no", "trained");
    if (model.shard_versions) {
      addTerm(summaryList, "Shard model versions", model.shard_versions.join(", "));
    }
    for (const [name, value] of Object.entries(body)) {
      if (!KNOWN_BODY.includes(name)) addTerm(summaryList, name, plain(value));
    }
    summary.hidden = false;
  }

  function renderAnswers(body) {
    renderSummary(body);
    show(warningLine, body.warning || "");
    const list = body.results || [];
    show(noAnswerLine, body.no_answer
      ? "The reader finds no answer to this question in the passages it read." +
        (list.length ? " Its best guesses are listed below, ranked." : "")
      : "");
    list.forEach((answer, i) => results.append(renderAnswer(answer, i + 1)));
    answers.hidden = false;
    const partial = body.shards && body.shards.partitions &&
                    (body.shards.partitions.missing || []).length > 0;
    statusLine.textContent = list.length + (list.length === 1 ? " answer" : " answers") +
                             " in " + fixed(body.took_ms, 1) + " ms" +
                             (partial ? " (partial: some partitions missing)" : "");
  }

  async function readError(response) {
    try {
      const body = await response.json();
      return body && body.error ? String(body.error) : JSON.stringify(body);
    } catch (_) {
      return response.statusText || "no message";
    }
  }

  async function renderError(response) {
    const message = await readError(response);
    if (response.status === 401) {
      keyBox.hidden = false;
      show(errorLine, "401: " + message + ". Enter the API key and ask again.");
      statusLine.textContent = "An API key is needed.";
      keyInput.focus();
    } else if (response.status === 503) {
      const after = response.headers.get("Retry-After");
      show(errorLine, "503: " + message +
                      (after ? " (retry after " + after + " s)" : ""));
      statusLine.textContent = "The gateway cannot answer now.";
    } else {
      show(errorLine, response.status + ": " + message);
      statusLine.textContent = "The request was refused.";
    }
  }

  async function ask(event) {
    event.preventDefault();
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    clear();
    statusLine.textContent = "Asking…";
    form.setAttribute("aria-busy", "true");
    const headers = { "Content-Type": "application/json" };
    if (keyInput.value) headers["X-API-Key"] = keyInput.value;
    try {
      const response = await fetch("/qasearch", {
        method: "POST", headers: headers, body: JSON.stringify(requestBody()),
        signal: controller.signal,
      });
      if (response.ok) {
        renderAnswers(await response.json());
      } else {
        await renderError(response);
      }
    } catch (exc) {
      if (controller.signal.aborted) return;  // a newer question replaced this one
      show(errorLine, "Network failure: the gateway could not be reached (" + exc.message + ")");
      statusLine.textContent = "No answer.";
    } finally {
      if (inflight === controller) {
        inflight = null;
        form.removeAttribute("aria-busy");
      }
    }
  }

  form.addEventListener("submit", ask);
})();
