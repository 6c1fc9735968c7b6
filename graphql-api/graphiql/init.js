'use strict';
// Starts GraphiQL against this server's API: queries and mutations over POST /graphql,
// subscriptions over a graphql-transport-ws socket on the same path. A credential goes in the
// Headers pane as {"Authorization": "Bearer <API key or access token>"}; the socket presents
// the same headers in its connection_init.
(function start() {
  const url = new URL('/graphql', window.location.href);
  const socket = new URL(url);
  socket.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const headers = () => {
    try {
      const pane = JSON.parse(window.localStorage.getItem('graphiql:headers') || '{}');
      return pane && typeof pane === 'object' ? pane : {};
    } catch (e) {
      return {};
    }
  };
  const fetcher = GraphiQL.createFetcher({
    url: url.toString(),
    subscriptionUrl: socket.toString(),
    wsConnectionParams: headers,
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }),
  );
}());
