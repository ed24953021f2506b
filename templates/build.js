// The build page of a running build: follows its log and status live through the
// server-sent events of /builds/{id}/events, keeping the reader at the bottom if they
// were there, and reloads the page when the build ends. (Loaded from a file: pages
// carry no inline script.)
(function () {
  var log = document.getElementById("log");
  var status = document.getElementById("status");
  if (!log || !window.EventSource) return;
  var source = new EventSource("/builds/" + log.dataset.build + "/events?offset=" + log.dataset.offset);
  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }
  source.addEventListener("log", function (event) {
    var piece = JSON.parse(event.data);
    var follow = atBottom();
    // The server escaped the text and turned ANSI colours into spans.
    log.insertAdjacentHTML("beforeend", piece.html);
    log.dataset.offset = event.lastEventId;
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  });
  source.addEventListener("status", function (event) {
    var build = JSON.parse(event.data);
    status.textContent = build.status;
    status.className = "badge status-" + build.status;
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
})();
