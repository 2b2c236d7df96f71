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
  const headers = { "Content-Type": "application/json" };
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
  const key = $("api-key").value.trim() || sessionStorage.getItem("xinxi-key");
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

document.addEventListener("DOMContentLoaded", () => {
  $("item-form").addEventListener("submit", analyze);
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
