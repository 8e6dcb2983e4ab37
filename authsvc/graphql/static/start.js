// GraphiQL against this server's /graphql. `?query=` and `?headers=` preset the editors
// (a link can carry `{"Authorization": "Bearer …"}` for `me`).
(function () {
  var params = new URLSearchParams(window.location.search);
  var fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: params.get("query") || "{ me { id email createdAt } }",
      defaultHeaders: params.get("headers") || '{"Authorization": "Bearer <access token>"}',
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    })
  );
})();
