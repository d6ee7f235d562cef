// Progressive touches only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "/" jumps to the search box, as on many sites, unless the reader is typing somewhere.
  document.addEventListener("keydown", (event) => {
    const search = document.getElementById("q");
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
    if (event.key === "/" && search && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      search.focus();
    }
  });
  // A re-drive of many dead letters asks first; the text comes from the server (escaped there).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
