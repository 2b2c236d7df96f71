"use strict";
// The editor page: one item in, topics, quality score, key terms and suggestions out.
// Plain JavaScript with no dependencies, so the page works on machines without internet.

const SAMPLE = {
  title: "青溪县多措并举推动招商引资提质增效",
  text:
    "今年以来，青溪县坚持把招商引资作为经济工作的“一号工程”，1至5月新签约项目21个，协议总投资48.6亿元，同比增长23.5%。\n" +
    "一是强化产业链招商。围绕农产品加工、新型建材两条主导产业链，梳理缺链补链项目28个，绘制招商图谱，由县级领导带队赴长三角、珠三角开展精准招商12批次。\n" +
    "二是创新以商招商。依托在外青溪商会举办推介会3场，引导返乡企业家投资兴业，签约项目12个、总投资36.5亿元。\n" +
    "三是优化营商环境。推行项目审批“一窗受理、并联审批”，平均审批时限压缩40%，为落地企业协调解决用地、用工问题37个。\n" +
    "目前仍存在项目落地转化慢、要素保障不足、专业招商人才缺乏等问题。下一步，该县将建立在谈项目台账，实行县级领导包联、周调度、月通报，" +
    "推动签约项目早开工、早投产。",
};

const TOPIC_CLASSES = ["industry", "investment", "rural", "hot_issue", "emergency"];
const $ = (id) => document.getElementById(id);

function topicClass(label) {
  return "t-" + (TOPIC_CLASSES.includes(label) ? label : "other");
}

function showMessage(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = "message" + (kind === "info" ? " info" : "");
  box.hidden = false;
}

function hideMessage() {
  $("message").hidden = true;
}

function updateCounter() {
  const n = $("text").value.length;
  $("counter").textContent = n.toLocaleString("zh-CN") + " 字" + (n > 20000 ? "（超过 2 万字的部分不参与分析）" : "");
}

async function loadModelInfo() {
  try {
    const response = await fetch("/v1/models/active");
    if (!response.ok) throw new Error(String(response.status));
    const model = await response.json();
    $("model-info").textContent = "模型 " + model.version;
  } catch (error) {
    $("model-info").textContent = "模型：尚未就绪";
  }
}

function errorText(status, body) {
  const error = body && body.error;
  if (error && error.message_zh) {
    return error.message_zh + "（" + error.code + (error.request_id ? "，请求编号 " + error.request_id : "") + "）";
  }
  return "服务返回错误（HTTP " + status + "），请稍后重试。";
}

async function analyze(event) {
  event.preventDefault();
  hideMessage();
  const title = $("title").value.trim();
  const text = $("text").value;
  if (!text.trim()) {
    showMessage("请先粘贴或输入信息正文，再点击“分析”。", "info");
    $("text").focus();
    return;
  }
  // "page": the service keeps this scoring for the review queue (待审).
  const headers = { "Content-Type": "application/json", "X-Xinxi-Source": "page" };
  const key = $("api-key").value.trim() || sessionStorage.getItem("xinxi-key");
  if (key) headers.Authorization = "Bearer " + key;
  const button = $("analyze-button");
  button.disabled = true;
  button.textContent = "分析中…";
  try {
    const response = await fetch("/v1/predict", {
      method: "POST",
      headers,
      body: JSON.stringify({ items: [{ id: "editor", title: title || null, text }] }),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (parseError) {
      body = null;
    }
    if (!response.ok) {
      if (response.status === 401) $("key-row").hidden = false;
      showMessage(errorText(response.status, body));
      return;
    }
    if (key) sessionStorage.setItem("xinxi-key", key);
    render(body.results[0], title, text);
    $("result-meta").textContent = "模型 " + body.model_version;
    scored = { result: body.results[0], title, text, version: body.model_version };
    $("correct-form").hidden = true;
    $("record-status").hidden = true;
  } catch (networkError) {
    showMessage("无法连接分析服务，请检查网络或联系管理员。");
  } finally {
    button.disabled = false;
    button.textContent = "分析";
  }
}

function render(result, title, text) {
  $("empty-state").hidden = true;
  $("result-body").hidden = false;

  const score = result.quality_score;
  const isAnalysis = result.kind && result.kind.label === "analysis";
  $("gauge").classList.toggle("analysis", Boolean(isAnalysis));
  $("gauge").setAttribute("aria-label", "质量分 " + (score === null ? "无" : score));
  $("gauge-value").style.strokeDasharray = (score === null ? 0 : score) + " 100";
  $("score").textContent = score === null ? "–" : String(score);
  $("grade").textContent = result.grade || "";

  const kindTerms = $("kind-terms");
  kindTerms.replaceChildren();
  if (result.kind && result.kind.terms.length) {
    const label = document.createElement("span");
    label.className = "muted";
    label.textContent = (isAnalysis ? "综合类特征：" : "动态类特征：");
    kindTerms.append(label);
    for (const term of result.kind.terms) {
      const mark = document.createElement("mark");
      mark.className = "t-analysis";
      mark.textContent = term;
      kindTerms.append(mark);
    }
  }

  const chips = $("chips");
  chips.replaceChildren();
  const topics = [...result.topics].sort((a, b) => (b.selected - a.selected) || (b.probability - a.probability));
  if (!topics.some((t) => t.selected)) {
    const none = document.createElement("span");
    none.className = "chip none selected t-other";
    none.dataset.label = "none";
    none.textContent = "无明确主题";
    chips.append(none);
  }
  for (const topic of topics) {
    const chip = document.createElement("span");
    chip.className = "chip " + topicClass(topic.label) + (topic.selected ? " selected" : "");
    chip.dataset.label = topic.label;
    chip.title = topic.terms.length ? "依据：" + topic.terms.join("、") : "";
    const name = document.createElement("span");
    name.textContent = topic.name;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.round(topic.probability * 100) + "%";
    bar.append(fill);
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = Math.round(topic.probability * 100) + "%";
    chip.append(name, bar, prob);
    chips.append(chip);
  }

  fillList($("suggestions"), result.suggestions, "✓ 结构较完整，暂无修改建议。");
  fillList($("warnings"), result.warnings);

  highlight(result, title, text);
}

function highlight(result, title, text) {
  // Terms of the selected topics, then those of the kind; a longer term wins over the shorter one inside it.
  const classes = new Map();
  const legend = $("legend");
  legend.replaceChildren();
  const addLegend = (cls, name) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.className = cls;
    item.append(swatch, name);
    legend.append(item);
  };
  for (const topic of result.topics.filter((t) => t.selected)) {
    for (const term of topic.terms) if (!classes.has(term)) classes.set(term, topicClass(topic.label));
    addLegend(topicClass(topic.label), topic.name);
  }
  if (result.kind) {
    for (const term of result.kind.terms) if (!classes.has(term)) classes.set(term, "t-analysis");
    addLegend("t-analysis", result.kind.name + "特征");
  }
  const target = $("highlighted");
  target.replaceChildren();
  if (title) {
    const heading = document.createElement("span");
    heading.className = "doc-title";
    appendMarked(heading, title, classes);
    target.append(heading);
  }
  appendMarked(target, text, classes);
}

function appendMarked(parent, text, classes) {
  const terms = [...classes.keys()].filter((t) => t).sort((a, b) => b.length - a.length);
  if (!terms.length) {
    parent.append(text);
    return;
  }
  const pattern = new RegExp(terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.className = classes.get(match[0]);
    mark.textContent = match[0];
    parent.append(mark);
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

// Batch jobs: upload a file, follow the job until it is done, then download the result or open the report.
let batchJob = null;

function authHeaders() {
  const key = $("api-key").value.trim() || $("review-key").value.trim() || sessionStorage.getItem("xinxi-key");
  return key ? { Authorization: "Bearer " + key } : {};
}

function showBatch(text, done) {
  const status = $("batch-status");
  status.textContent = text;
  status.className = "batch-status" + (done ? " done" : "");
  status.hidden = false;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch (parseError) {
    return null;
  }
}

async function uploadBatch(event) {
  event.preventDefault();
  const file = $("batch-file").files[0];
  $("batch-links").hidden = true;
  if (!file) {
    showBatch("请先选择要评分的文件。");
    return;
  }
  const form = new FormData();
  form.append("file", file);
  const button = $("batch-button");
  button.disabled = true;
  showBatch("正在上传 " + file.name + " …");
  try {
    const headers = authHeaders();
    const response = await fetch("/v1/batch", { method: "POST", headers, body: form });
    const body = await readJson(response);
    if (!response.ok) {
      if (response.status === 401) {
        $("key-row").hidden = false;
        showBatch("批量评分需要 API 密钥：请在上方“API 密钥”中填写后重新上传。");
      } else {
        showBatch(errorText(response.status, body));
      }
      return;
    }
    if (headers.Authorization) sessionStorage.setItem("xinxi-key", headers.Authorization.slice(7));
    batchJob = body;
    await followBatch(body.id);
  } catch (networkError) {
    showBatch("无法连接分析服务，请检查网络或联系管理员。");
  } finally {
    button.disabled = false;
  }
}

async function followBatch(id) {
  for (;;) {
    const response = await fetch("/v1/batch/" + encodeURIComponent(id), { headers: authHeaders() });
    const job = await readJson(response);
    if (!response.ok) {
      showBatch(errorText(response.status, job));
      return;
    }
    batchJob = job;
    if (job.state === "done") {
      const s = job.summary;
      showBatch("完成：" + job.filename + " 共 " + s.rows.toLocaleString("zh-CN") + " 行，已评分 " +
        s.scored.toLocaleString("zh-CN") + " 行" + (s.errors ? "，" + s.errors + " 行未能评分（见 xinxi_error 列）" : "") +
        "，用时 " + s.seconds + " 秒。", true);
      $("batch-links").hidden = false;
      return;
    }
    if (job.state === "failed") {
      showBatch("任务失败：" + (job.error || "未知原因"));
      return;
    }
    const share = job.progress ? "（" + Math.round(job.progress * 100) + "%）" : "";
    showBatch((job.state === "running" ? "正在评分：已完成 " + job.rows.toLocaleString("zh-CN") + " 行" : "排队中") + share);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function fetchBlob(url) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new Error(errorText(response.status, await readJson(response)));
  return response.blob();
}

async function downloadBatch() {
  if (!batchJob) return;
  try {
    const blob = await fetchBlob(batchJob.result_url);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = batchJob.filename.replace(/\.[^.]*$/, "") + "-xinxi." + batchJob.output_format;
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    showBatch(String(error.message || error));
  }
}

async function openReport() {
  if (!batchJob) return;
  try {
    const blob = await fetchBlob(batchJob.report_url);
    window.open(URL.createObjectURL(new Blob([blob], { type: "text/html" })), "_blank");
  } catch (error) {
    showBatch(String(error.message || error));
  }
}

// Recording: 采用 (adopted, with its level) and 更正 (the right topics and kind) of the scored item,
// and the review queue (待审). All need the API key, as batch jobs do.
const TOPIC_LABELS = [
  ["industry", "产业发展"], ["investment", "招商引资"], ["rural", "农村发展"], ["hot_issue", "热点难点"],
  ["emergency", "突发事件"],
];
const KIND_LABELS = [["news", "动态类"], ["analysis", "综合类"]];
const LEVEL_NAMES = { county: "县级", city: "市级", province: "省级", none: "未采用" };
let scored = null;

function showStatus(element, text, done) {
  element.textContent = text;
  element.className = "record-status" + (done ? " done" : "");
  element.hidden = false;
}

// POST JSON with the key; null (and the reason shown in ``status``) when it did not work.
async function keyedPost(url, body, status, keyRow) {
  const headers = { ...authHeaders(), "Content-Type": "application/json", "X-Xinxi-Source": "page" };
  try {
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await readJson(response);
    if (response.status === 401) {
      $(keyRow).hidden = false;
      showStatus(status, "需要 API 密钥：请在“API 密钥”中填写后重试。");
      return null;
    }
    if (!response.ok) {
      showStatus(status, errorText(response.status, answer));
      return null;
    }
    if (headers.Authorization) sessionStorage.setItem("xinxi-key", headers.Authorization.slice(7));
    return answer;
  } catch (networkError) {
    showStatus(status, "无法连接分析服务，请检查网络或联系管理员。");
    return null;
  }
}

// Record title and text (with ``extra`` fields); the stored item's result, or null.
async function recordItem(title, text, extra, status, keyRow) {
  const answer = await keyedPost("/v1/items", { title: title || null, text, ...extra }, status, keyRow);
  if (!answer) return null;
  const result = answer.results[0];
  if (result.status === "rejected") {
    showStatus(status, "未能记录：" + result.reason);
    return null;
  }
  return result;
}

function labelControls(topicsBox, kindBox, name, topics, kind) {
  topicsBox.replaceChildren();
  kindBox.replaceChildren();
  for (const [label, title] of TOPIC_LABELS) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = label;
    box.checked = topics.includes(label);
    const wrap = document.createElement("label");
    wrap.append(box, title);
    topicsBox.append(wrap);
  }
  for (const [label, title] of KIND_LABELS) {
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = name;
    radio.value = label;
    radio.checked = label === kind;
    const wrap = document.createElement("label");
    wrap.append(radio, title);
    kindBox.append(wrap);
  }
}

function readLabels(topicsBox, kindBox) {
  const topics = [...topicsBox.querySelectorAll("input:checked")].map((box) => box.value);
  const kind = kindBox.querySelector("input:checked");
  return { topics, kind: kind ? kind.value : null };
}

function predictedOf(result) {
  const probabilities = {};
  for (const topic of result.topics) probabilities[topic.label] = topic.probability;
  if (result.kind) probabilities.analysis = result.kind.analysis_probability;
  return {
    predicted_topics: result.topics.filter((t) => t.selected).map((t) => t.label),
    predicted_kind: result.kind ? result.kind.label : null,
    probabilities,
  };
}

function labelNames(topics, kind) {
  const names = TOPIC_LABELS.filter(([label]) => topics.includes(label)).map(([, title]) => title);
  const kindName = KIND_LABELS.find(([label]) => label === kind);
  return "主题 " + (names.length ? names.join("、") : "无") + "，类型 " + (kindName ? kindName[1] : "");
}

async function adoptScored() {
  if (!scored) return;
  const level = $("adopt-level").value;
  const result = await recordItem(scored.title, scored.text, { adopted_level: level }, $("record-status"), "key-row");
  if (!result) return;
  showStatus($("record-status"), (level === "none" ? "已记录（未采用）" : "已采用（" + LEVEL_NAMES[level] + "）") +
    "，信息库编号 " + result.id, true);
}

function openCorrection() {
  if (!scored) return;
  const predicted = predictedOf(scored.result);
  labelControls($("correct-topics"), $("correct-kind"), "correct-kind", predicted.predicted_topics,
    predicted.predicted_kind);
  $("correct-form").hidden = false;
}

async function saveCorrection(event) {
  event.preventDefault();
  if (!scored) return;
  const labels = readLabels($("correct-topics"), $("correct-kind"));
  if (!labels.kind) {
    showStatus($("record-status"), "请选择类型（动态类或综合类）。");
    return;
  }
  const status = $("record-status");
  const item = await recordItem(scored.title, scored.text, {}, status, "key-row");
  if (!item) return;
  const correction = { ...labels, ...predictedOf(scored.result), model_version: scored.version };
  const saved = await keyedPost("/v1/items/" + item.id + "/corrections", correction, status, "key-row");
  if (!saved) return;
  $("correct-form").hidden = true;
  showStatus(status, "已更正：" + labelNames(saved.topics, saved.kind) + "（信息库编号 " + item.id + "）", true);
}

function showTab(name) {
  const review = name === "review";
  $("analyze-view").hidden = review;
  $("review-view").hidden = !review;
  $("tab-analyze").classList.toggle("active", !review);
  $("tab-review").classList.toggle("active", review);
  $("tab-analyze").setAttribute("aria-selected", String(!review));
  $("tab-review").setAttribute("aria-selected", String(review));
  if (review) loadReview();
}

async function loadReview() {
  const status = $("review-status");
  const list = $("review-list");
  try {
    const response = await fetch("/v1/review?limit=20", { headers: authHeaders() });
    const body = await readJson(response);
    if (response.status === 401) {
      $("review-key-row").hidden = false;
      showStatus(status, "待审队列需要 API 密钥：请填写后点击“刷新”。");
      return;
    }
    if (!response.ok) {
      showStatus(status, errorText(response.status, body));
      return;
    }
    const headers = authHeaders();
    if (headers.Authorization) sessionStorage.setItem("xinxi-key", headers.Authorization.slice(7));
    list.replaceChildren();
    for (const [index, entry] of body.items.entries()) list.append(reviewEntry(entry, index));
    showStatus(status, body.items.length ? "共 " + body.items.length + " 条待审（模型 " + body.model_version + "）"
      : "暂无待审条目。", true);
  } catch (networkError) {
    showStatus(status, "无法连接分析服务，请检查网络或联系管理员。");
  }
}

function reviewEntry(entry, index) {
  const li = document.createElement("li");
  li.className = "review-entry";
  li.dataset.hash = entry.content_hash;
  const title = document.createElement("strong");
  title.textContent = entry.title || "（无标题）";
  const excerpt = document.createElement("p");
  excerpt.className = "excerpt";
  excerpt.textContent = entry.text.length > 160 ? entry.text.slice(0, 160) + "…" : entry.text;
  const meta = document.createElement("p");
  meta.className = "muted";
  const selected = entry.topics.filter((t) => t.selected).map((t) => t.label);
  meta.textContent = (entry.source === "item" ? "已记录未标注" : "最近分析") + " · 不确定度 " +
    entry.priority.toFixed(2) + " · 模型判断：" + labelNames(selected, entry.kind ? entry.kind.label : null);
  const form = document.createElement("form");
  form.className = "label-form";
  const topics = document.createElement("div");
  topics.className = "label-topics";
  const kinds = document.createElement("div");
  kinds.className = "label-kind";
  labelControls(topics, kinds, "review-kind-" + index, selected, entry.kind ? entry.kind.label : null);
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "primary review-save";
  save.textContent = "保存标注";
  form.append(topics, kinds, save);
  form.addEventListener("submit", (event) => saveReview(event, entry, li, topics, kinds));
  li.append(title, excerpt, meta, form);
  return li;
}

async function saveReview(event, entry, li, topics, kinds) {
  event.preventDefault();
  const status = $("review-status");
  const labels = readLabels(topics, kinds);
  if (!labels.kind) {
    showStatus(status, "请选择类型（动态类或综合类）。");
    return;
  }
  let id = entry.item_id;
  if (id === null) {
    const item = await recordItem(entry.title, entry.text, {}, status, "review-key-row");
    if (!item) return;
    id = item.id;
  }
  const probabilities = {};
  for (const topic of entry.topics) probabilities[topic.label] = topic.probability;
  if (entry.kind) probabilities.analysis = entry.kind.analysis_probability;
  const correction = {
    ...labels,
    predicted_topics: entry.topics.filter((t) => t.selected).map((t) => t.label),
    predicted_kind: entry.kind ? entry.kind.label : null,
    probabilities,
    model_version: entry.model_version,
  };
  const saved = await keyedPost("/v1/items/" + id + "/corrections", correction, status, "review-key-row");
  if (!saved) return;
  const done = document.createElement("span");
  done.className = "labelled";
  done.textContent = "已标注：" + labelNames(saved.topics, saved.kind);
  li.querySelector("form").replaceWith(done);
  showStatus(status, "已保存标注（信息库编号 " + id + "）", true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("item-form").addEventListener("submit", analyze);
  $("adopt-button").addEventListener("click", adoptScored);
  $("correct-button").addEventListener("click", openCorrection);
  $("correct-form").addEventListener("submit", saveCorrection);
  $("tab-analyze").addEventListener("click", () => showTab("analyze"));
  $("tab-review").addEventListener("click", () => showTab("review"));
  $("review-refresh").addEventListener("click", loadReview);
  $("batch-form").addEventListener("submit", uploadBatch);
  $("batch-download").addEventListener("click", downloadBatch);
  $("batch-report").addEventListener("click", openReport);
  $("text").addEventListener("input", updateCounter);
  $("sample-button").addEventListener("click", () => {
    $("title").value = SAMPLE.title;
    $("text").value = SAMPLE.text;
    updateCounter();
    hideMessage();
  });
  $("clear-button").addEventListener("click", () => {
    $("title").value = "";
    $("text").value = "";
    updateCounter();
    hideMessage();
    $("result-body").hidden = true;
    $("empty-state").hidden = false;
    $("result-meta").textContent = "";
  });
  updateCounter();
  loadModelInfo();
});

// One <li> per entry; an empty list shows ``emptyText`` (class "ok") when given.
function fillList(list, entries, emptyText) {
  list.replaceChildren();
  const lines = entries.length || !emptyText ? entries : [emptyText];
  for (const line of lines) {
    const li = document.createElement("li");
    if (!entries.length) li.className = "ok";
    li.textContent = line;
    list.append(li);
  }
}
