// Billing and money-in pages: redeem a code, top up by card, copy the invite link, admin code batches.
// Uses `api` and `toast` of app.js (loaded before this file). No inline script anywhere (CSP).
"use strict";

function showFieldError(id, message) {
  const box = document.getElementById(id);
  box.textContent = message;
  box.hidden = !message;
}

const redeemForm = document.getElementById("redeem-form");
if (redeemForm) {
  redeemForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showFieldError("redeem-error", "");
    const code = document.getElementById("redeem-code").value.trim();
    if (!code) { showFieldError("redeem-error", "Enter a code"); return; }
    try {
      const done = await api("POST", "/api/user/redeem", { code });
      toast(done.plan ? `Plan ${done.plan} granted` : `Redeemed $${done.amountUsd}`);
      setTimeout(() => location.reload(), 600);
    } catch (error) {
      if (!error.handled) showFieldError("redeem-error", error.message);
    }
  });
}

async function checkout(body) {
  showFieldError("topup-error", "");
  try {
    const started = await api("POST", "/api/user/checkout", body);
    location.assign(started.url);
  } catch (error) {
    if (!error.handled) showFieldError("topup-error", error.message);
  }
}

const topupForm = document.getElementById("topup-form");
if (topupForm) {
  topupForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = document.getElementById("topup-amount").value.trim();
    const amount = Number(text);
    if (!text || !Number.isFinite(amount)) { showFieldError("topup-error", "Enter an amount in USD, e.g. 20"); return; }
    checkout({ amountUsd: amount });
  });
}

document.addEventListener("click", async (event) => {
  const preset = event.target.closest("[data-topup]");
  if (preset) checkout({ amountUsd: Number(preset.dataset.topup) });
  const plan = event.target.closest("[data-buy-plan]");
  if (plan) checkout({ plan: plan.dataset.buyPlan });
  if (event.target.closest("[data-copy-invite]")) {
    await navigator.clipboard.writeText(document.getElementById("invite-url").textContent.trim());
    toast("Invite link copied");
  }
});

// Admin: void a batch's unused codes (or the one typed), once the page's confirmation dialog (admin.js) was
// accepted: admin.js stops the first submit and sends it again marked `confirmed`.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.voidBatch) return;
  event.preventDefault();
  if (form.dataset.confirmed !== "yes") return;
  const batch = form.dataset.voidBatch;
  const code = document.getElementById(`void-code-${batch}`).value.trim();
  try {
    const result = await api("POST", `/api/admin/redemption-codes/${batch}/void`, code ? { code } : {});
    toast(`${result.voided} code(s) voided`);
    setTimeout(() => location.reload(), 600);
  } catch (error) {
    if (!error.handled) toast(error.message);
  }
});

// Admin: create a batch; its codes are shown once, with a CSV made in the browser from that answer.
const batchForm = document.getElementById("batch-form");
if (batchForm) {
  batchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showFieldError("batch-error", "");
    const value = (name) => batchForm.elements[name].value.trim();
    const body = { count: Number(value("count")), balance: value("balance"), note: value("note") };
    if (value("plan")) body.plan = value("plan"); else body.amountUsd = Number(value("amountUsd"));
    if (value("expiresAt")) body.expiresAt = new Date(value("expiresAt")).toISOString();
    try {
      const created = await api("POST", "/api/admin/redemption-codes", body);
      const rows = ["code,batchId", ...created.codes.map((code) => `${code},${created.batchId}`)];
      const link = document.getElementById("batch-download");
      link.href = URL.createObjectURL(new Blob([rows.join("\n") + "\n"], { type: "text/csv" }));
      link.download = `redemption-codes-${created.batchId}.csv`;
      document.getElementById("batch-codes").textContent = created.codes.join("\n");
      document.getElementById("batch-created").hidden = false;
      document.getElementById("batch-created-title").textContent = `Batch ${created.batchId}: ${created.codes.length} code(s), shown once`;
    } catch (error) {
      if (!error.handled) showFieldError("batch-error", error.field ? `${error.field}: ${error.message}` : error.message);
    }
  });
}
