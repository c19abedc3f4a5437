// The grain page: the app in the frame may ask the shell, by postMessage, to show
// a path (setPath) or a title (setTitle). Only messages from the session's own
// origin are heard; anything else is ignored.
(function () {
  "use strict";
  var frame = document.getElementById("grain-frame");
  if (!frame) return;
  var origin = frame.dataset.origin;
  var grainId = frame.dataset.grain;
  var heading = document.getElementById("grain-title");
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || typeof data !== "object") return;
    // Anonymous views of a sharing link have no grain page to point at.
    if (grainId && typeof data.setPath === "string" && data.setPath.charAt(0) === "/" &&
        data.setPath.length < 2000) {
      var url = "/grains/" + encodeURIComponent(grainId) + "?path=" +
        encodeURIComponent(data.setPath);
      window.history.replaceState(null, "", url);
    }
    if (typeof data.setTitle === "string" && data.setTitle.length < 500) {
      document.title = data.setTitle + " · Sandhaven";
      if (heading) heading.textContent = data.setTitle;
    }
  });
})();
