// TrollLLM pages: the few live actions (reveal, copy, rotate) over the JSON API with the CSRF header.
"use strict";

// The session's CSRF token: the page states it (bound to the session, whatever the cookie's name).
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) return meta.content;
  const match = document.cookie.match(/(?:^|; )(?:__Host-)?trollllm_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

const UPGRADE_TEXT = "Your plan does not include API access.";

// The upgrade prompt shown instead of a free_tier_restricted error (SPEC §8: never raw).
function showUpgrade() {
  let banner = document.getElementById("upgrade-banner");
  if (!banner) {
    banner = document.createElement("div");
    banner.id = "upgrade-banner";
    banner.className = "banner info";
    banner.setAttribute("role", "alert");
    const link = document.createElement("a");
    link.href = "/dashboard/subscription";
    link.textContent = "See the plans and upgrade";
    banner.append(`${UPGRADE_TEXT} Upgrade your plan to use the API. `, link);
    const main = document.querySelector("main") || document.body;
    main.prepend(banner);
  }
  banner.hidden = false;
  banner.scrollIntoView({ block: "nearest" });
}

// Every page fetch goes through here: JSON in and out, the CSRF header, and errors as Error objects whose
// message is safe to show; `free_tier_restricted` becomes the upgrade banner (error.handled).
async function api(method, path, body, extraHeaders = {}) {
  const headers = { ...extraHeaders, "x-csrf-token": csrfToken(), accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (answer && answer.error) || {};
    if (detail.type === "free_tier_restricted") {
      showUpgrade();
      const error = new Error(UPGRADE_TEXT);
      error.handled = true;
      throw error;
    }
    const error = new Error(typeof detail.message === "string" ? detail.message : `Request failed (${response.status})`);
    error.field = detail.field;
    throw error;
  }
  return answer;
}

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, 2500);
}

const REVEAL_MS = 30000;

// Show reveals a key for 30 s (SPEC §8) and reads Hide meanwhile; Hide, or the 30 s, puts the mask back.
async function toggleReveal(button, shown, fetchKey) {
  if (button.dataset.revealed === "true") {
    hideKey(button, shown);
    return;
  }
  shown.textContent = await fetchKey();
  button.dataset.revealed = "true";
  button.textContent = "Hide";
  clearTimeout(button.hideTimer);
  button.hideTimer = setTimeout(() => hideKey(button, shown), REVEAL_MS);
}

function hideKey(button, shown) {
  clearTimeout(button.hideTimer);
  shown.textContent = shown.dataset.masked;
  button.dataset.revealed = "false";
  button.textContent = "Show";
}

async function fullKey() {
  return (await api("GET", "/api/user/api-key")).apiKey;
}

const actions = {
  async "reveal-key"(button) {
    await toggleReveal(button, document.getElementById("api-key"), fullKey);
  },
  async "copy-key"() {
    await navigator.clipboard.writeText(await fullKey());
    toast("API key copied");
  },
  async "copy-snippet"(button) {
    await navigator.clipboard.writeText(document.getElementById(button.dataset.target).textContent);
    toast("Example copied");
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

async function fullFriendKey() {
  return (await api("GET", "/api/user/friend-key/reveal")).friendKey;
}

function showNewFriendKey(fullKey) {
  document.getElementById("new-friend-key").textContent = fullKey;
  document.getElementById("new-key-box").hidden = false;
}

Object.assign(actions, {
  async "create-friend-key"() {
    const created = await api("POST", "/api/user/friend-key");
    sessionStorage.setItem("trollllm-new-friend-key", created.friendKey);
    location.reload();
  },
  "rotate-friend-key"() {
    document.getElementById("rotate-friend-dialog").showModal();
  },
  async "confirm-rotate-friend-key"(button) {
    button.closest("dialog").close();
    const rotated = await api("POST", "/api/user/friend-key/rotate");
    showNewFriendKey(rotated.newFriendKey);
    const shown = document.getElementById("friend-key");
    shown.dataset.masked = `sk-trollllm-friend-****...****${rotated.newFriendKey.slice(-4)}`;
    shown.textContent = shown.dataset.masked;
    toast("Friend Key rotated: the old key no longer works");
  },
  // Show ⇄ Hide: the full key while shown, the masked one again on Hide or after 30 s.
  async "reveal-friend-key"(button) {
    toggleReveal(button, document.getElementById("friend-key"), fullFriendKey);
  },
  async "copy-friend-key"() {
    await navigator.clipboard.writeText(await fullFriendKey());
    toast("Friend Key copied");
  },
  async "copy-new-key"() {
    await navigator.clipboard.writeText(document.getElementById("new-friend-key").textContent);
    toast("Friend Key copied");
  },
  async "toggle-friend-key"(button) {
    const active = button.dataset.active === "true";
    await api("PATCH", "/api/user/friend-key", { isActive: !active });
    toast(active ? "Friend Key paused: it is refused until resumed" : "Friend Key resumed");
    setTimeout(() => location.reload(), 600);
  },
  "delete-friend-key"() {
    document.getElementById("delete-dialog").showModal();
  },
  async "confirm-delete-friend-key"(button) {
    button.closest("dialog").close();
    await api("DELETE", "/api/user/friend-key");
    location.reload();
  },
});

// The API Keys page: delete a provider key behind a confirmation.
Object.assign(actions, {
  "delete-provider-key"(button) {
    const dialog = document.getElementById("delete-provider-key-dialog");
    dialog.dataset.provider = button.dataset.provider;
    document.getElementById("delete-provider-key-label").textContent = button.dataset.label;
    dialog.showModal();
  },
  async "confirm-delete-provider-key"(button) {
    const dialog = button.closest("dialog");
    dialog.close();
    await api("DELETE", `/api/user/provider-keys/${encodeURIComponent(dialog.dataset.provider)}`);
    toast("Key deleted");
    setTimeout(() => location.reload(), 600);
  },
});

// Add a key: PUT it, then reload to show its last 4 (the key itself is never shown again).
const providerKeyForm = document.getElementById("provider-key-form");
if (providerKeyForm) {
  providerKeyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("provider-key-value");
    const formError = document.getElementById("provider-key-error");
    formError.hidden = true;
    const provider = document.getElementById("provider-key-provider").value;
    const apiKey = input.value.trim();
    if (!apiKey) {
      formError.textContent = "Paste your provider's API key";
      formError.hidden = false;
      return;
    }
    try {
      await api("PUT", `/api/user/provider-keys/${encodeURIComponent(provider)}`, { apiKey });
      input.value = "";
      toast("Key saved");
      setTimeout(() => location.reload(), 600);
    } catch (error) {
      if (error.handled) return;
      formError.textContent = error.field === "apiKey" || /apiKey/.test(error.message)
        ? "This does not look like an API key (8 to 512 characters, no spaces)"
        : error.message;
      formError.hidden = false;
    }
  });
}

// A key just generated is shown once, after the reload that brings in its limits table.
const justCreated = sessionStorage.getItem("trollllm-new-friend-key");
if (justCreated && document.getElementById("new-key-box")) {
  sessionStorage.removeItem("trollllm-new-friend-key");
  showNewFriendKey(justCreated);
}

// Save Limits: every row at once; a refused row gets its error next to its input.
const limitsForm = document.getElementById("limits-form");
if (limitsForm) {
  limitsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const inputs = [...limitsForm.querySelectorAll(".limit-input")];
    inputs.forEach((input) => {
      input.removeAttribute("aria-invalid");
      input.nextElementSibling.hidden = true;
    });
    const formError = document.getElementById("limits-error");
    formError.hidden = true;
    const sent = inputs.filter((input) => input.value.trim() !== "");
    const periodOf = (input) => input.closest("tr").querySelector(".period-input")?.value || "none";
    const modelLimits = sent.map((input) => ({
      modelId: input.name, limitUsd: Number(input.value.trim()), enabled: true, resetPeriod: periodOf(input),
    }));
    const bad = sent.find((input) => !Number.isFinite(Number(input.value.trim())));
    if (bad) {
      bad.setAttribute("aria-invalid", "true");
      bad.nextElementSibling.textContent = "Enter an amount in USD, e.g. 5 or 12.50";
      bad.nextElementSibling.hidden = false;
      return;
    }
    try {
      await api("PUT", "/api/user/friend-key/limits", { modelLimits });
      toast("Limits saved");
      setTimeout(() => location.reload(), 600);
    } catch (error) {
      if (error.handled) return;
      const row = /^modelLimits\[(\d+)\]/.exec(error.field || "");
      const input = row && sent[Number(row[1])];
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.nextElementSibling.textContent = error.message.replace(/^modelLimits\[\d+\]\.limitUsd /, "");
        input.nextElementSibling.hidden = false;
        input.focus();
      } else {
        formError.textContent = error.message;
        formError.hidden = false;
      }
    }
  });
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-action]");
  if (!button || !(button.dataset.action in actions)) return;
  try {
    await actions[button.dataset.action](button);
  } catch (error) {
    if (!error.handled) toast(error.message);
  }
});

// The Alerts page: save channels and thresholds; empty fields turn them off; a refused field gets its error.
const alertsForm = document.getElementById("alerts-form");
if (alertsForm) {
  alertsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    alertsForm.querySelectorAll(".field-error, .form-error").forEach((element) => { element.hidden = true; });
    const value = (name) => alertsForm.elements[name].value.trim();
    // What is not a number is sent as typed, so the API refuses it naming the field (NaN would become null).
    const asNumber = (text) => (Number.isFinite(Number(text)) ? Number(text) : text);
    const number = (text) => (text === "" ? null : asNumber(text));
    const body = {
      email: value("email") || null,
      webhookUrl: value("webhookUrl") || null,
      lowBalanceUsd: number(value("lowBalanceUsd")),
      planExpiryDays: number(value("planExpiryDays")),
      usagePercents: value("usagePercents") === "" ? [] : value("usagePercents").split(/[\s,]+/).filter(Boolean).map(asNumber),
    };
    try {
      const saved = await api("PUT", "/api/user/alerts", body);
      if (saved.webhookSecret) {
        document.getElementById("webhook-secret").textContent = saved.webhookSecret;
        document.getElementById("webhook-secret-box").hidden = false;
      }
      toast("Alerts saved");
    } catch (error) {
      if (error.handled) return;
      const name = (error.field || "").replace(/\[\d+\]$/, "");
      const slot = alertsForm.querySelector(`.field-error[data-field="${name}"]`);
      const target = slot || document.getElementById("alerts-error");
      target.textContent = error.message;
      target.hidden = false;
    }
  });
}
