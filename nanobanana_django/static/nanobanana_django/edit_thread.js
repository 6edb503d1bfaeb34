// Reload the thread while a version is being made, unless an instruction is being written.
(function () {
  "use strict";
  var thread = document.querySelector("[data-nanobanana-refresh]");
  if (!thread) {
    return;
  }
  var seconds = Number(thread.getAttribute("data-nanobanana-refresh")) || 3;
  function reload() {
    var field = thread.querySelector("textarea");
    if (field && field.value.trim()) {
      window.setTimeout(reload, seconds * 1000);
      return;
    }
    window.location.reload();
  }
  window.setTimeout(reload, seconds * 1000);
})();
