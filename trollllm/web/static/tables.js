// Every table on a phone: under 640 px each row becomes a card whose cells carry their column's name
// (app.css `table.stack`). The name comes from the header cell above it, so no template repeats it.
"use strict";

document.querySelectorAll(".table-wrap table").forEach((table) => {
  const headers = [...table.querySelectorAll("thead th")].map((cell) => cell.textContent.trim());
  if (!headers.length) return;
  table.classList.add("stack");
  table.querySelectorAll("tbody tr").forEach((row) => {
    let column = 0;
    [...row.cells].forEach((cell) => {
      const name = headers[column] || "";
      if (name && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", name);
      column += cell.colSpan || 1;
    });
  });
});
