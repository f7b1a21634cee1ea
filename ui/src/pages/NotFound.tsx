// Shown for client-side paths no page claims (the server sends index.html for
// every non-API path, so unknown deep links land here instead of a bare 404).
import { linkClick } from "../router";

export function NotFound(props: { path: string }) {
  return (
    <div class="page" data-testid="not-found-page">
      <div class="page-header">
        <div>
          <h1 class="page-title">Page not found</h1>
          <p class="page-subtitle">
            No dashboard page lives at <code data-testid="not-found-path">{props.path}</code>.
          </p>
        </div>
      </div>
      <p>
        <a href="/" onClick={(e) => linkClick(e, "/")}>
          Go to the overview
        </a>
      </p>
    </div>
  );
}
