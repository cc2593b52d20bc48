// mwplu-gateway's GraphiQL page: reads its settings from the page's JSON block (no inline
// script, so the page's Content-Security-Policy allows scripts from the gateway only).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("graphiql-config").textContent);
  var fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
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
