// mwplu-gateway's GraphiQL page: reads its settings from the page's JSON block (no inline
// script, so the page's Content-Security-Policy allows scripts from the gateway only).
// Queries and mutations go through GraphiQL's own fetcher; a subscription is streamed over
// Server-Sent Events (graphql-sse, distinct connections), which needs no client library.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("graphiql-config").textContent);
  var url = window.location.pathname;
  var http = GraphiQL.createFetcher({ url: url });

  // The type of each operation of a document, by name ("" for an anonymous one): the words
  // before each top-level "{", strings and comments left out.
  function operations(document) {
    var found = {};
    var depth = 0;
    var words = [];
    var i = 0;
    while (i < document.length) {
      var c = document[i];
      if (c === "#") {
        while (i < document.length && document[i] !== "\n") i++;
      } else if (document.startsWith('"""', i)) {
        var end = document.indexOf('"""', i + 3);
        i = end < 0 ? document.length : end + 2;
      } else if (c === '"') {
        i++;
        while (i < document.length && document[i] !== '"') i += document[i] === "\\" ? 2 : 1;
      } else if (c === "{") {
        if (depth === 0) {
          var kind = words[0] === "fragment" ? null : words[0] || "query";
          if (kind) found[["query", "mutation", "subscription"].indexOf(kind) >= 0 && words[1] &&
            /^[_A-Za-z]/.test(words[1]) ? words[1] : ""] = kind;
          words = [];
        }
        depth++;
      } else if (c === "}") {
        depth--;
      } else if (depth === 0 && /[_A-Za-z]/.test(c)) {
        var word = /^[_0-9A-Za-z]+/.exec(document.slice(i))[0];
        words.push(word);
        i += word.length - 1;
      } else if (depth === 0 && c === "(") {
        while (i < document.length && document[i] !== ")") i++;
      }
      i++;
    }
    return found;
  }

  function isSubscription(params) {
    var found = operations(params.query || "");
    var names = Object.keys(found);
    var name = params.operationName || (names.length === 1 ? names[0] : null);
    return name !== null && found[name] === "subscription";
  }

  // One subscription's results as an async iterable (GraphiQL shows each as it comes, and
  // closes the iterator, hence the request, when the user stops it).
  function streamed(params, opts) {
    return {
      [Symbol.asyncIterator]: async function* () {
        var controller = new AbortController();
        var headers = Object.assign(
          { "Content-Type": "application/json", Accept: "text/event-stream" },
          (opts && opts.headers) || {}
        );
        try {
          var response = await fetch(url, {
            method: "POST", headers: headers, body: JSON.stringify(params),
            signal: controller.signal,
          });
          if (!response.ok || !response.body) {
            yield await response.json();
            return;
          }
          var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          var buffer = "";
          for (;;) {
            var chunk = await reader.read();
            if (chunk.done) return;
            buffer += chunk.value;
            var blocks = buffer.split(/\r?\n\r?\n/);
            buffer = blocks.pop();
            for (var b = 0; b < blocks.length; b++) {
              var event = null;
              var data = "";
              blocks[b].split(/\r?\n/).forEach(function (line) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
              });
              if (event === "complete") return;
              if (event === "next" && data) yield JSON.parse(data);
            }
          }
        } finally {
          controller.abort();
        }
      },
    };
  }

  function fetcher(params, opts) {
    return isSubscription(params) ? streamed(params, opts) : http(params, opts);
  }

  var props = {
    fetcher: fetcher,
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    defaultEditorToolsVisibility: true,
    // Headers (a token) stay out of the browser's storage.
    shouldPersistHeaders: false,
    defaultQuery: config.query,
    query: config.query,
    variables: config.variables,
  };
  if (config.headers) {
    props.headers = config.headers;
    props.defaultHeaders = config.headers;
  }
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, props)
  );
})();
