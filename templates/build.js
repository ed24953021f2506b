// The build page's log. For a running build it follows the log and status live
// through the server-sent events of /builds/{id}/events, numbering new lines as the
// server numbered the first ones, and keeps the reader where they are unless they were
// at the bottom (then it stays at the bottom); when the build ends it reloads, unless
// the reader is already leaving for another page. On every build page it offers a
// search within the log. (Loaded from a file: pages carry no inline script.)
(function () {
  var log = document.getElementById("log");
  if (!log) return;

  // Line numbers, as lines.rs writes them.
  var nextLine = parseInt(log.dataset.nextLine, 10) || 1;
  var openLine = log.dataset.openLine === "true";
  var page = log.dataset.page || "";
  function numbered(html) {
    var pieces = html.split("\n");
    var out = "";
    for (var i = 0; i < pieces.length; i++) {
      var last = i === pieces.length - 1;
      if (last && pieces[i] === "") break;
      var starts = i > 0 || !openLine;
      if (starts) {
        out += '<a class="ln" id="L' + nextLine + '" href="' + page + "#L" + nextLine + '">' + nextLine + "</a>";
        nextLine++;
      }
      out += pieces[i] + (last ? "" : "\n");
    }
    openLine = pieces[pieces.length - 1] !== "";
    return out;
  }

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  if (log.dataset.live === "true" && window.EventSource) {
    var status = document.getElementById("status");
    var source = new EventSource("/builds/" + log.dataset.build + "/events?offset=" + log.dataset.offset);
    source.addEventListener("log", function (event) {
      var piece = JSON.parse(event.data);
      var follow = atBottom();
      // The server escaped the text and turned ANSI colours into spans.
      log.insertAdjacentHTML("beforeend", numbered(piece.html));
      log.dataset.offset = event.lastEventId;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    });
    source.addEventListener("status", function (event) {
      var build = JSON.parse(event.data);
      status.textContent = build.status;
      status.className = "badge status-" + build.status;
    });
    // A reader who has just followed a link is on their way: the reload would cancel it.
    var leaving = false;
    window.addEventListener("beforeunload", function () {
      leaving = true;
    });
    source.addEventListener("end", function () {
      source.close();
      if (!leaving) window.location.reload();
    });
  }

  // Search: marks every match of the text in the log; Enter (or Next) goes to the next.
  var form = document.getElementById("log-search");
  var input = document.getElementById("log-find");
  var count = document.getElementById("log-matches");
  if (!form || !input) return;
  form.hidden = false;
  var marks = [];
  var current = -1;
  var searched = null;
  function clear() {
    for (var i = 0; i < marks.length; i++) {
      var mark = marks[i];
      var parent = mark.parentNode;
      if (!parent) continue;
      parent.replaceChild(document.createTextNode(mark.textContent), mark);
      parent.normalize();
    }
    marks = [];
    current = -1;
  }
  function search(text) {
    clear();
    searched = text;
    if (!text) { count.textContent = ""; return; }
    var needle = text.toLowerCase();
    var walker = document.createTreeWalker(log, NodeFilter.SHOW_TEXT, {
      acceptNode: function (node) {
        return node.parentNode.classList && node.parentNode.classList.contains("ln")
          ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
      }
    });
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var at = node.data.toLowerCase().indexOf(needle);
      while (at !== -1) {
        var match = node.splitText(at);
        node = match.splitText(text.length);
        var mark = document.createElement("mark");
        match.parentNode.replaceChild(mark, match);
        mark.appendChild(match);
        marks.push(mark);
        at = node.data.toLowerCase().indexOf(needle);
      }
    }
    count.textContent = marks.length === 1 ? "1 match" : marks.length + " matches";
  }
  function next() {
    if (!marks.length) return;
    if (current >= 0) marks[current].classList.remove("current");
    current = (current + 1) % marks.length;
    marks[current].classList.add("current");
    marks[current].scrollIntoView({ block: "center" });
    count.textContent = (current + 1) + " of " + marks.length;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.value !== searched) search(input.value);
    next();
  });
})();
