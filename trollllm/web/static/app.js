// TrollLLM pages: the few live actions (reveal, copy, rotate) over the JSON API with the CSRF header.
"use strict";

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )trollllm_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "x-csrf-token": csrfToken(), accept: "application/json" },
  });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    throw new Error((body && body.error && body.error.message) || `Request failed (${response.status})`);
  }
  return body;
}

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, 2500);
}

const REVEAL_MS = 30000;

async function fullKey() {
  return (await api("GET", "/api/user/api-key")).apiKey;
}

const actions = {
  async "reveal-key"(button) {
    const shown = document.getElementById("api-key");
    shown.textContent = await fullKey();
    button.disabled = true;
    setTimeout(() => { shown.textContent = shown.dataset.masked; button.disabled = false; }, REVEAL_MS);
  },
  async "copy-key"() {
    await navigator.clipboard.writeText(await fullKey());
    toast("API key copied");
  },
  "rotate-key"() {
    document.getElementById("rotate-dialog").showModal();
  },
  cancel(button) {
    button.closest("dialog").close();
  },
  async "confirm-rotate"(button) {
    button.closest("dialog").close();
    const rotated = await api("POST", "/api/user/api-key/rotate");
    const box = document.getElementById("new-key");
    box.textContent = `Your new key (shown once): ${rotated.newApiKey}`;
    box.hidden = false;
    const masked = `sk-trollllm-****...****${rotated.newApiKey.slice(-4)}`;
    const shown = document.getElementById("api-key");
    if (shown) { shown.dataset.masked = masked; shown.textContent = masked; }
    toast("API key rotated");
  },
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-action]");
  if (!button || !(button.dataset.action in actions)) return;
  try {
    await actions[button.dataset.action](button);
  } catch (error) {
    toast(error.message);
  }
});

// Times are stored and sent in UTC; show them in the browser's timezone as YYYY-MM-DD HH:mm:ss.
function localTime(iso) {
  const moment = new Date(iso);
  const pad = (value) => String(value).padStart(2, "0");
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())} ` +
    `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}`;
}
document.querySelectorAll("time[data-local]").forEach((element) => {
  element.textContent = localTime(element.getAttribute("datetime"));
  element.title = `${element.getAttribute("datetime")} (UTC)`;
});
