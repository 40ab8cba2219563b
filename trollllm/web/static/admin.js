// Admin pages: every destructive form asks first, in the page's one confirmation dialog (the pattern of
// the dashboard's Rotate: a <dialog> opened with showModal; Cancel or Escape closes it, nothing is sent).
// A form opts in with data-confirm (the question), data-confirm-text and data-confirm-button. No inline
// script anywhere (CSP).
"use strict";

const confirmDialog = document.getElementById("confirm-dialog");
if (confirmDialog) {
  let pending = null;
  const accept = confirmDialog.querySelector("[data-confirm-accept]");

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (form.dataset.confirmed === "yes") return;
    event.preventDefault();
    pending = form;
    document.getElementById("confirm-dialog-title").textContent = form.dataset.confirm;
    document.getElementById("confirm-dialog-text").textContent = form.dataset.confirmText || "";
    accept.textContent = form.dataset.confirmButton || "Confirm";
    accept.disabled = false;  // a form answered by script (no page load) may ask again
    confirmDialog.showModal();
  });

  confirmDialog.querySelector("[data-confirm-cancel]").addEventListener("click", () => confirmDialog.close());
  confirmDialog.addEventListener("close", () => { pending = null; });

  accept.addEventListener("click", () => {
    const form = pending;
    confirmDialog.close();
    if (!form) return;
    form.dataset.confirmed = "yes";
    accept.disabled = true;  // one click sends one request
    form.requestSubmit();  // dispatched at once: every submit listener has seen it marked
    delete form.dataset.confirmed;  // the next submit asks again
  });
}
