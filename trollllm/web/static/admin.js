// Admin pages: every destructive form asks first, in the page's one confirmation dialog (the pattern of
// the dashboard's Rotate: a <dialog> opened with showModal; Cancel or Escape closes it, nothing is sent).
// A form opts in with data-confirm (the question), data-confirm-text and data-confirm-button. No inline
// script anywhere (CSP).
"use strict";

const confirmDialog = document.getElementById("confirm-dialog");
if (confirmDialog) {
  let pending = null;
  const accept = confirmDialog.querySelector("[data-confirm-accept]");

  // A form with data-confirm-negative="field" asks only when that field holds a negative amount (a deduction),
  // with data-negative-confirm, data-negative-confirm-text and data-negative-confirm-button.
  const deducts = (form) => {
    const field = form.dataset.confirmNegative && form.elements[form.dataset.confirmNegative];
    return Boolean(field) && field.value.trim().startsWith("-");
  };

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const deduction = !form.dataset.confirm && deducts(form);
    if (!form.dataset.confirm && !deduction) return;
    if (form.dataset.confirmed === "yes") return;
    event.preventDefault();
    pending = form;
    const asked = deduction
      ? [form.dataset.negativeConfirm, form.dataset.negativeConfirmText, form.dataset.negativeConfirmButton]
      : [form.dataset.confirm, form.dataset.confirmText, form.dataset.confirmButton];
    document.getElementById("confirm-dialog-title").textContent = asked[0];
    document.getElementById("confirm-dialog-text").textContent = asked[1] || "";
    accept.textContent = asked[2] || "Confirm";
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
